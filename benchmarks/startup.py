"""Cold start: how long a freshly started gateway process takes to be useful.

    .venv/bin/python -m benchmarks.startup                # PostgreSQL, 3 runs each, medians
    .venv/bin/python -m benchmarks.startup --db sqlite --runs 1

Figures (seconds, from the moment the benchmark spawns `python -m uvicorn app.main:create_app`):

* import: `import app.main` alone, in a fresh interpreter (measured in its own process);
* healthz: the first `GET /healthz` answered 200;
* connected: the gateway's WebSocket to the fake Asterisk is up (Stasis application registered);
* parked continued: a channel that entered Stasis before the gateway started (as after a
  crash) got `POST /channels/{id}/continue`.

Each run is made twice: "first start" on an empty database (migrations and the default
prompt are created) and "restart" on the database the first start left (the case of a
crashed or redeployed gateway). The fake Asterisk keeps the application registered
(`apps_known`), so `Stasis()` parks the channel while no gateway is connected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer
from benchmarks import procs

APP = procs.GATEWAY_APP
FIGURES = ("healthz_s", "connected_s", "parked_continued_s")


def measure_import(runs: int) -> tuple[float, float]:
    """Medians of (wall s, CPU s) of `import app.main` in a fresh interpreter (its own start excluded).

    CPU time (user + system) moves less than wall time when other processes share the machine.
    """
    code = (
        "import os, time, sys; t = time.perf_counter(); c = sum(os.times()[:2]); import app.main; "
        "sys.stdout.write(f'{time.perf_counter() - t} {sum(os.times()[:2]) - c}')"
    )
    walls, cpus = [], []
    for _ in range(runs):
        out = subprocess.run(
            [procs.PYTHON, "-c", code], cwd=procs.REPO, capture_output=True, text=True, check=True
        )
        wall, cpu = out.stdout.split()
        walls.append(float(wall))
        cpus.append(float(cpu))
    return statistics.median(walls), statistics.median(cpus)


async def one_start(
    ari: FakeAriServer, llm: FakeLLMServer, db: procs.Database, workdir: Path, redis_url: str
) -> dict[str, float]:
    """Start one gateway process with one parked channel waiting; the seconds to each milestone."""
    parked = await ari.place_call(f"{APP},USER_INPUT=parked before start,UNIQUEID=startup")
    assert parked.in_stasis, "the fake Asterisk did not park the channel"
    port = procs._free_port()
    env = {
        "ASTERISK_ARI_URL": ari.base_url,
        "ASTERISK_ARI_USERNAME": ari.username,
        "ASTERISK_ARI_PASSWORD": ari.password,
        "ASTERISK_APP_NAME": APP,
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": llm.openai_base_url,
        "DEFAULT_AI_MODEL": "openai",
        "DATABASE_URL": db.url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"aigw-startup-{port}:",
        "LOG_LEVEL": "WARNING",
        "WEB_UI_PASSWORD": procs.ADMIN_PASSWORD,
        "SECRET_KEY": procs.SECRET_KEY,
        "ARI_RECONNECT_MIN_SECONDS": "0.1",
    }
    args = ["-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    t0 = time.perf_counter()
    child = await procs._spawn(f"startup-{port}", args, env, workdir)
    marks: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            while len(marks) < len(FIGURES):
                if not child.alive():
                    raise RuntimeError(f"gateway exited ({child.proc.returncode}):\n{child.log_tail()}")
                now = time.perf_counter() - t0
                if now > 60:
                    raise RuntimeError(f"gateway not ready after 60 s ({marks}):\n{child.log_tail()}")
                if "healthz_s" not in marks:
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            marks["healthz_s"] = time.perf_counter() - t0
                    except httpx.HTTPError:
                        pass
                if "connected_s" not in marks and ari.ws_count(APP) > 0:
                    marks["connected_s"] = now
                if "parked_continued_s" not in marks and parked.left_stasis.is_set():
                    marks["parked_continued_s"] = now
                await asyncio.sleep(0.005)
        ops = [op[0] for op in parked.operations]
        if "continue" not in ops:
            raise RuntimeError(f"parked channel left Stasis without continue: {ops}")
    finally:
        await child.stop(20)
    return {k: round(v, 3) for k, v in marks.items()}


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    """Run the measurements; the report (also printed)."""
    import_s, import_cpu_s = await asyncio.to_thread(measure_import, args.runs)
    ari = FakeAriServer(apps_known=[APP], asterisk_version="23.4.0")
    llm = FakeLLMServer()
    await ari.start()
    await llm.start()
    workdir = procs.new_workdir()
    runs: dict[str, list[dict[str, float]]] = {"first_start": [], "restart": []}
    try:
        for _ in range(args.runs):
            db = await procs.make_database(args.db, workdir, args.postgres_url)
            try:
                runs["first_start"].append(await one_start(ari, llm, db, workdir, args.redis_url))
                runs["restart"].append(await one_start(ari, llm, db, workdir, args.redis_url))
            finally:
                await db.drop()
    finally:
        await ari.stop()
        await llm.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {
        case: {f: round(statistics.median(r[f] for r in rows), 3) for f in FIGURES}
        for case, rows in runs.items()
    }
    report: dict[str, Any] = {"db": args.db, "runs": args.runs, "import_s": round(import_s, 3)}
    report["import_cpu_s"] = round(import_cpu_s, 3)
    report.update(median=medians, all=runs)
    print(summary_line(report))
    for case, m in medians.items():
        print(f"  {case:<12} " + "  ".join(f"{k}={v:.2f}" for k, v in m.items()))
    return report


def summary_line(report: dict[str, Any]) -> str:
    """One line for `benchmarks.run`: import time and the restart's milestones (medians, s)."""
    m = report["median"]["restart"]
    return (
        f"Start-up ({report['db']}, median of {report['runs']}): import app.main {report['import_s']:.2f} s "
        f"({report['import_cpu_s']:.2f} s CPU); "
        f"restart: /healthz {m['healthz_s']:.2f} s, Stasis application connected {m['connected_s']:.2f} s, "
        f"parked channel continued {m['parked_continued_s']:.2f} s"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    p.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--out", type=Path, default=None, help="also write the report as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m benchmarks.startup`."""
    args = parse_args(argv)
    report = asyncio.run(amain(args))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
