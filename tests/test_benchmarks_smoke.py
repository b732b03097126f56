"""The benchmark harness still runs end to end (short smoke mode; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ROW_KEYS = {
    "target",
    "scenario",
    "db",
    "concurrency",
    "turns",
    "completed",
    "errors",
    "overhead_ms",
    "turns_per_s",
    "peak_rss_mb",
    "rss_per_call_kb",
    "cpu_ms_per_turn",
}


def run_module(module: str, *args: str, timeout: float) -> str:
    """Run `python -m module args…` from the repository; its stdout. Fails on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def test_benchmark_smoke_mode_runs_gateway_and_baseline(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run_module("benchmarks.run", "--smoke", "--out", str(out), timeout=300)
    report = json.loads(out.read_text())
    assert {"meta", "results", "ratios", "targets", "table_markdown"} <= report.keys()
    rows = report["results"]
    targets = {r["target"] for r in rows}
    assert targets == {"gateway", "baseline"}
    assert {r["scenario"] for r in rows} == {"notool", "tool"}
    for row in rows:
        assert ROW_KEYS <= row.keys(), row
        assert {"p50", "p95", "p99"} <= row["overhead_ms"].keys()
        assert row["errors"] == 0, row
        assert row["completed"] == row["turns"], row
        assert row["ari_spec_violations"] == 0, row
    assert report["ratios"], "gateway/baseline ratios missing"
    assert "| gateway |" in report["table_markdown"]
    assert report["startup"]["median"]["restart"]["parked_continued_s"] > 0


def test_http_transport_benchmark_runs() -> None:
    stdout = run_module("benchmarks.http_transport", "--requests", "100", timeout=120)
    rows = [line for line in stdout.splitlines() if "CPU ms/request" in line]
    assert len(rows) == 6  # three client stacks, at 1 and 50 requests in flight
    assert all(float(row.split(":")[1].split()[0]) > 0 for row in rows)


def test_startup_benchmark_reports_every_milestone(tmp_path: Path) -> None:
    """One cold start on a fresh SQLite file and one restart: the parked channel is continued."""
    out = tmp_path / "startup.json"
    stdout = run_module("benchmarks.startup", "--db", "sqlite", "--runs", "1", "--out", str(out), timeout=300)
    report = json.loads(out.read_text())
    assert report["import_s"] > 0
    for case in ("first_start", "restart"):
        figures = report["median"][case]
        assert set(figures) == {"healthz_s", "connected_s", "parked_continued_s"}, figures
        # A channel parked before start is continued only once the Stasis application is connected.
        assert 0 < figures["connected_s"] <= figures["parked_continued_s"], figures
    assert "parked channel continued" in stdout


def test_voice_benchmark_smoke_mode_completes_every_call(tmp_path: Path) -> None:
    """Two voice calls through the gateway process: every figure reported, every call ended OK."""
    out = tmp_path / "voice.json"
    stdout = run_module("benchmarks.voice", "--smoke", "--out", str(out), timeout=300)
    report = json.loads(out.read_text())
    assert report["warm_up"]["ok"], report["warm_up"]
    [level] = report["levels"]
    assert level["calls"] == level["completed_ok"] == 2, level
    for key in ("greeting_ms", "mouth_to_ear_ms", "gateway_share_ms", "barge_in_ms"):
        assert {"p50", "p95"} <= level[key].keys(), key
        assert level[key]["p50"] == level[key]["p50"], f"{key} is NaN"  # every call measured it
    assert level["cpu_ms_per_call_s"] > 0
    assert "| calls | OK |" in stdout
