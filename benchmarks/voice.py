"""Voice-mode benchmark: the real gateway process, scripted callers, stand-in providers.

    .venv/bin/python -m benchmarks.voice                 # 1, 10 and 50 simultaneous calls
    .venv/bin/python -m benchmarks.voice --smoke         # one level of 2 calls (CI)

Processes: the gateway runs as ``uvicorn app.main:create_app`` in its own process (SQLite,
real Redis); this process runs the fake Asterisk with its media WebSocket peer
(`app.testing.fake_ari`, `app.testing.chan_websocket`), the scripted callers
(`app.testing.fake_caller`), the OpenAI chat stand-in (first token after ``--llm-ms``) and
the OpenAI audio stand-in (final transcript ``--stt-ms`` after the upload, first speech
byte after ``--tts-ms``). Every caller: hears the greeting, asks a question, talks over
the (long) answer, says goodbye; the agent ends the call with ``end_call``.

Figures per call (caller-side clock, this process):

* time to greeting: ``StasisStart`` → first greeting frame at the caller's ear;
* mouth-to-ear: the caller's end of speech (last voiced 20 ms frame sent) → first answer
  frame at the caller's ear;
* gateway share: mouth-to-ear − (STT + LLM + TTS stand-in latencies) − end-of-turn window
  (VAD stop 0.2 s + the prompt's ``end_of_turn_ms``);
* barge-in reaction: the caller starts talking over the answer → answer audio stops
  reaching the caller's ear (and, in the JSON, → ``FLUSH_MEDIA`` received by Asterisk);
* gaps: stretches ≥ 100 ms without frames inside the greeting and the answer.

Per level: CPU ms of the gateway process per call-second, and its RSS growth per call.
The level's calls arrive ``--stagger-ms`` apart (default 100 ms: 10 new calls per second)
and are then all in progress at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from app.testing import fake_voice
from app.testing.chan_websocket import PTIME_MS
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_caller import FakeCaller, synthesize
from app.testing.fake_llm import FakeLLMServer, LLMRequest, Reply, TextReply, ToolCallReply
from app.testing.fake_voice import FakeVoiceServer
from benchmarks import procs

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROMPT = "bench_voice"
GREETING = "Hello, this is the order line. How can I help?"
QUESTION = "where is my order forty two please"
INTERRUPTION = "okay bye"
ANSWER = (
    "Your order 42 left our warehouse yesterday afternoon. "
    "The carrier expects to deliver it within two working days. "
    "You will get a text message with a tracking link as soon as it is out for delivery."
)
GOODBYE = "Goodbye, have a nice day."
END_OF_TURN_MS = 400
VAD_STOP_MS = 200  # `pipeline.build_worker`: Silero VAD stop_secs
MIN_GAP_MS = 100


# --------------------------------------------------------------------------- stand-ins


class BenchVoiceServer(FakeVoiceServer):
    """The OpenAI audio stand-in with a fixed transcript (no pocketsphinx CPU in this process)."""

    async def transcript_of(self, pcm: bytes, sample_rate_hz: int) -> str:
        """Every utterance is transcribed as `QUESTION` (the model's script counts turns)."""
        return QUESTION


def _cache_speech() -> None:
    """Synthesise each distinct text once in the stand-in (its latency is the knob, not espeak)."""
    synthesize_once = fake_voice.asynthesize
    cache: dict[tuple[str, int], bytes] = {}

    async def cached(text: str, *, sample_rate_hz: int = 16000, **kwargs: Any) -> bytes:
        key = (text, sample_rate_hz)
        if key not in cache:
            cache[key] = await synthesize_once(text, sample_rate_hz=sample_rate_hz, **kwargs)
        return cache[key]

    fake_voice.asynthesize = cached  # type: ignore[assignment]


def responder(request: LLMRequest) -> Reply:
    """The long answer to the first question; ``end_call`` then `GOODBYE` after the caller's next words."""
    last = request.messages[-1] if request.messages else None
    if last is not None and last.role == "tool":
        return TextReply(GOODBYE)
    if len(request.user_texts) > 1:  # the caller spoke again (over the answer)
        return ToolCallReply([("end_call", {"reason": "caller said goodbye"})])
    return TextReply(ANSWER)


# --------------------------------------------------------------------------- the gateway


async def start_gateway(
    ari: FakeAriServer,
    llm: FakeLLMServer,
    voice: FakeVoiceServer,
    workdir: Path,
    redis_url: str,
    profile: Path | None = None,
) -> tuple[procs.Child, str]:
    """Start the gateway process and seed the voice prompt; (child, admin base URL)."""
    port, media_port = procs._free_port(), procs._free_port()
    audio = {"openai_api_key": "bench-audio", "openai_base_url": voice.openai_base_url}
    env = {
        "ASTERISK_ARI_URL": ari.base_url,
        "ASTERISK_ARI_USERNAME": ari.username,
        "ASTERISK_ARI_PASSWORD": ari.password,
        "ASTERISK_APP_NAME": procs.GATEWAY_APP,
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": llm.openai_base_url,
        "DEFAULT_AI_MODEL": "openai",
        "DATABASE_URL": f"sqlite:///{workdir}/voice-bench.db",
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"aigw-vbench-{port}:",
        "MAX_CONCURRENT_CALLS": "500",
        "LOG_LEVEL": "WARNING",
        "WEB_UI_PASSWORD": procs.ADMIN_PASSWORD,
        "SECRET_KEY": procs.SECRET_KEY,
        "AI_TURN_TIMEOUT_SECONDS": "30",
        "VOICE_MEDIA_LISTEN_HOST": "127.0.0.1",
        "VOICE_MEDIA_LISTEN_PORT": str(media_port),
        "VOICE_STT_PROVIDER": "openai",
        "VOICE_TTS_PROVIDER": "openai",
        "PROVIDER_OVERRIDES": json.dumps({"stt:openai": audio, "tts:openai": audio}),
    }
    args = ["app.main:create_app", "--factory", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    if profile is None:
        args = ["-m", "uvicorn", *args]
    else:  # pyinstrument, armed by SIGUSR1/SIGUSR2 around the measured levels
        args = ["-m", "benchmarks.profiled_gateway", str(profile), *args]
    child = await procs._spawn(f"voice-gateway-{port}", args, env, workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        await procs._wait_ws(_FakesView(ari), child, procs.GATEWAY_APP, 120)
        await _seed_prompt(base, child)
    except BaseException:
        await child.stop(10)
        raise
    ari.media.websocket_clients["media_connection1"] = f"ws://127.0.0.1:{media_port}/media"
    return child, base


@dataclass
class _FakesView:
    """What `procs._wait_ws` reads (``fakes.ari``)."""

    ari: FakeAriServer


async def _seed_prompt(base: str, child: procs.Child) -> None:
    voice = {
        "greeting": GREETING,
        "stt_provider": "openai",
        "tts_provider": "openai",
        "end_of_turn_ms": END_OF_TURN_MS,
        "barge_in_min_speech_ms": 150,
        "reprompt_after_s": 30.0,
    }
    body = {"name": PROMPT, "content": "You are the order line of Example Shop.", "voice": voice}
    async with httpx.AsyncClient(base_url=base, auth=("admin", procs.ADMIN_PASSWORD), timeout=30) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                (await http.get("/api/v1/prompts")).raise_for_status()
                break
            except httpx.HTTPError:
                if not child.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"admin API not reachable:\n{child.log_tail()}") from None
                await asyncio.sleep(0.1)
        response = await http.post("/api/v1/prompts", json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"seeding the prompt failed: {response.status_code} {response.text[:300]}")


# --------------------------------------------------------------------------- one call


@dataclass
class CallFigures:
    """What one caller measured (s, or counts)."""

    ok: bool = False
    status: str = ""
    error: str = ""
    greeting_s: float = math.nan
    mouth_to_ear_s: float = math.nan
    barge_in_s: float = math.nan
    flush_s: float = math.nan
    gaps: int = 0
    gap_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0


def _voiced(caller: FakeCaller, since: float) -> list[float]:
    """Send times of the caller's voiced frames after `since` (s)."""
    return [f.time for f in caller.recording.said if f.time >= since and f.is_speech]


def _end_of_speech(caller: FakeCaller, since: float) -> float:
    """When the caller's last voiced frame after `since` ended (s)."""
    voiced = _voiced(caller, since)
    return voiced[-1] + PTIME_MS / 1000 if voiced else since


async def _heard_after(caller: FakeCaller, moment: float, timeout: float) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        started = caller.recording.audio_started_after(moment)
        if started is not None:
            return started
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no agent speech after t={moment:.2f}")


async def _quiet_after(caller: FakeCaller, moment: float, timeout: float) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        stopped = caller.recording.audio_stopped_after(moment, quiet_ms=400)
        if stopped and loop.time() - stopped > 0.45:
            return stopped
        await asyncio.sleep(0.05)
    raise TimeoutError("the agent kept talking")


def _media_sessions(ari: FakeAriServer, chan: Any) -> list[Any]:
    """The media sessions of the external channels bridged with the caller's channel."""
    peers = [ari.media.session_for(peer.id) for peer in ari.bridges.peers(chan.id)]
    return [s for s in peers if s is not None]


async def run_call(ari: FakeAriServer, n: int) -> CallFigures:
    """One scripted caller from `StasisStart` to the dialplan."""
    figures = CallFigures()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    chan = await ari.place_call(f"ai_ari_app,AI_MODE=voice,AI_PROMPT_NAME={PROMPT},UNIQUEID=V{n}")
    caller = FakeCaller(ari, chan)
    try:
        greeting_at = await _heard_after(caller, t0, 30)
        figures.greeting_s = greeting_at - t0
        greeting_end = await _quiet_after(caller, greeting_at, 30)
        asked = await caller.say(QUESTION)
        eos = _end_of_speech(caller, asked)
        answer_at = await _heard_after(caller, eos, 30)
        figures.mouth_to_ear_s = answer_at - eos
        await asyncio.sleep(max(0.0, answer_at + 1.5 - loop.time()))
        barged = await caller.say(INTERRUPTION)
        talking = (_voiced(caller, barged) or [barged])[0]  # the first voiced frame
        figures.barge_in_s = caller.recording.audio_stopped_after(talking, quiet_ms=200) - talking
        flushes = [t for s in _media_sessions(ari, chan) for t in s.command_times_of("FLUSH_MEDIA")]
        figures.flush_s = min((t for t in flushes if t >= talking), default=math.nan) - talking
        rec = caller.recording
        gaps = rec.gaps(greeting_at, greeting_end, min_gap_ms=MIN_GAP_MS)
        gaps += rec.gaps(answer_at, barged, min_gap_ms=MIN_GAP_MS)
        figures.gaps, figures.gap_ms = len(gaps), [round(g.ms) for g in gaps]
        await chan.wait_left_stasis(30)
        variables = {op[1]: op[2] for op in chan.operations if op[0] == "setvar"}
        figures.status = str(variables.get("AI_STATUS"))
        figures.ok = figures.status == "OK"
    except TimeoutError as exc:
        figures.error = str(exc) or type(exc).__name__
        with contextlib.suppress(Exception):
            await caller.hangup()
    figures.duration_s = loop.time() - t0
    return figures


# --------------------------------------------------------------------------- levels


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return math.nan
    pos = (len(values) - 1) * q / 100.0
    lo, hi = math.floor(pos), min(math.floor(pos) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


async def run_level(
    ari: FakeAriServer,
    child: procs.Child,
    calls: int,
    first_n: int,
    stagger_s: float,
    stand_ins: tuple[float, float, float],
) -> dict[str, Any]:
    """`calls` callers at once (placed `stagger_s` apart); the level's figures."""
    ps = child.ps
    rss_before = ps.memory_info().rss
    cpu_before = child.cpu_seconds()
    peak = rss_before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak = max(peak, ps.memory_info().rss)
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    tasks = []
    for i in range(calls):
        tasks.append(asyncio.create_task(run_call(ari, first_n + i)))
        await asyncio.sleep(stagger_s)
    results: list[CallFigures] = await asyncio.gather(*tasks)
    done.set()
    await sampler
    cpu_s = child.cpu_seconds() - cpu_before
    call_seconds = sum(r.duration_s for r in results)
    eot_s = (VAD_STOP_MS + END_OF_TURN_MS) / 1000
    m2e = [r.mouth_to_ear_s for r in results]
    stt_s, llm_s, tts_s = stand_ins
    share = [(v - stt_s - llm_s - tts_s - eot_s) * 1000 for v in m2e]
    # The STT request starts at the VAD's stop and runs inside the end-of-turn timeout, so
    # only the part of it longer than that timeout is on the caller's critical path.
    on_path = llm_s + tts_s + max(0.0, stt_s - END_OF_TURN_MS / 1000)
    share_overlap = [(v - on_path - eot_s) * 1000 for v in m2e]

    def stats(values: list[float], scale: float = 1000.0) -> dict[str, float]:
        scaled = [v * scale for v in values]
        return {"p50": round(percentile(scaled, 50), 1), "p95": round(percentile(scaled, 95), 1)}

    return {
        "calls": calls,
        "completed_ok": sum(r.ok for r in results),
        "errors": [r.error or r.status for r in results if not r.ok],
        "greeting_ms": stats([r.greeting_s for r in results]),
        "mouth_to_ear_ms": stats(m2e),
        "gateway_share_ms": stats(share, 1.0),
        "gateway_share_stt_overlapped_ms": stats(share_overlap, 1.0),
        "barge_in_ms": stats([r.barge_in_s for r in results]),
        "flush_media_ms": stats([r.flush_s for r in results]),
        "gaps": sum(r.gaps for r in results),
        "gap_ms": [g for r in results for g in r.gap_ms],
        "cpu_ms_per_call_s": round(cpu_s * 1000 / call_seconds, 1) if call_seconds else math.nan,
        "rss_per_call_kb": round((peak - rss_before) / 1024 / calls, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def table(levels: list[dict[str, Any]]) -> str:
    """The levels as a Markdown table."""
    head = (
        "| calls | OK | greeting p50/p95 ms | mouth-to-ear p50/p95 ms | gateway share p50/p95 ms "
        "| share, STT overlapped, p50/p95 ms | barge-in p50/p95 ms | gaps | CPU ms per call-s "
        "| RSS per call KB |\n"
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
    )
    rows = []
    for lv in levels:

        def pair(key: str, lv: dict[str, Any] = lv) -> str:
            return f"{lv[key]['p50']:.0f} / {lv[key]['p95']:.0f}"

        rows.append(
            f"| {lv['calls']} | {lv['completed_ok']} | {pair('greeting_ms')} | {pair('mouth_to_ear_ms')} "
            f"| {pair('gateway_share_ms')} | {pair('gateway_share_stt_overlapped_ms')} "
            f"| {pair('barge_in_ms')} | {lv['gaps']} "
            f"| {lv['cpu_ms_per_call_s']:.1f} | {lv['rss_per_call_kb']:.0f} |"
        )
    return head + "\n".join(rows)


async def main_async(args: argparse.Namespace) -> int:
    """Run the levels; write the JSON report; 1 when a call did not end with ``AI_STATUS=OK``."""
    _cache_speech()
    for text in (QUESTION, INTERRUPTION):
        await asyncio.to_thread(synthesize, text)
    levels_wanted = [2] if args.smoke else [int(c) for c in args.calls.split(",")]
    workdir = procs.new_workdir()
    ari = FakeAriServer(asterisk_version="23.4.0")
    llm = FakeLLMServer(latency_ms=args.llm_ms)
    llm.set_responder(responder)
    voice = BenchVoiceServer(stt_final_delay_ms=args.stt_ms, tts_first_byte_ms=args.tts_ms)
    await ari.start()
    await llm.start()
    await voice.start()
    child: procs.Child | None = None
    report: dict[str, Any] = {"levels": []}
    try:
        child, _ = await start_gateway(ari, llm, voice, workdir, args.redis_url, args.profile)
        stand_ins = (args.stt_ms / 1000, args.llm_ms / 1000, args.tts_ms / 1000)
        warm = await run_call(ari, 0)  # synthesises and caches the greeting; not measured
        report["warm_up"] = asdict(warm)
        first_n = 1
        if args.profile is not None:
            child.signal(signal.SIGUSR1)
        for calls in levels_wanted:
            level = await run_level(ari, child, calls, first_n, args.stagger_ms / 1000, stand_ins)
            level["stagger_ms"] = args.stagger_ms
            first_n += calls
            report["levels"].append(level)
            print(json.dumps(level), flush=True)
            ari.requests.clear()
            ari.events.clear()
            llm.requests.clear()
            voice.requests.clear()
        if args.profile is not None:
            child.signal(signal.SIGUSR2)
            await asyncio.sleep(5)  # the profile is written before the gateway stops
    finally:
        if child is not None:
            await child.stop(20)
        await voice.stop()
        await llm.stop()
        await ari.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report["meta"] = {
        "stt_ms": args.stt_ms,
        "llm_ms": args.llm_ms,
        "tts_ms": args.tts_ms,
        "end_of_turn_window_ms": VAD_STOP_MS + END_OF_TURN_MS,
        "min_gap_ms": MIN_GAP_MS,
        "cpus": psutil.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    report["table_markdown"] = table(report["levels"])
    print(report["table_markdown"])
    out = Path(args.out or RESULTS_DIR / ("voice-smoke.json" if args.smoke else "voice.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    failed = sum(lv["calls"] - lv["completed_ok"] for lv in report["levels"])
    return 1 if failed or not report["warm_up"]["ok"] else 0


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="1,10,50", help="simultaneous calls per level")
    parser.add_argument("--smoke", action="store_true", help="one level of 2 calls")
    parser.add_argument(
        "--stagger-ms", type=float, default=100.0, help="between call arrivals in a level (100: 10 calls/s)"
    )
    parser.add_argument("--stt-ms", type=float, default=150.0)
    parser.add_argument("--llm-ms", type=float, default=300.0)
    parser.add_argument("--tts-ms", type=float, default=150.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--profile", type=Path, default=None, help="profile the gateway (pyinstrument) into PREFIX.txt"
    )
    parser.add_argument("--out", default=None, help="JSON report (default results/voice.json)")
    args = parser.parse_args(argv)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
