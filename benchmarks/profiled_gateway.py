"""Run the gateway (uvicorn, `app.main:create_app`) with pyinstrument armed by signals.

    python -m benchmarks.profiled_gateway OUT_PREFIX [uvicorn args...]

`SIGUSR1` starts sampling, `SIGUSR2` stops it and writes `OUT_PREFIX.txt` (the call
tree) and `OUT_PREFIX.json` (`benchmarks.profile_summary.summarise` of it).
So only the measured level is profiled, not start-up.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

from benchmarks.profile_summary import summarise


def main() -> None:
    out = Path(sys.argv[1])
    uvicorn_args = sys.argv[2:]
    profiler = Profiler(interval=0.0005, async_mode="disabled")

    def start(_sig: int, _frame: Any) -> None:
        if not profiler.is_running:
            profiler.start()

    def stop(_sig: int, _frame: Any) -> None:
        if not profiler.is_running:
            return
        session = profiler.stop()
        out.with_suffix(".txt").write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        session.save(str(out.with_suffix(".pyisession")))  # for `pyinstrument --load …`
        root = session.root_frame()
        summary = summarise(root) if root is not None else {}
        out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
        out.with_suffix(".done").write_text("ok")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    from uvicorn.main import main as uvicorn_main

    sys.argv = ["uvicorn", *uvicorn_args]
    uvicorn_main()


if __name__ == "__main__":
    main()
