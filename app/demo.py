"""``ai-gateway demo``: the real gateway against the fake Asterisk, a tool on loopback, one call.

Text mode places ``Stasis(ai_ari_app,USER_INPUT=…)`` calls and prints what the caller hears and
the channel variables the dialplan gets. Voice mode (``--voice``) places an ``AI_MODE=voice``
call on the fake PBX's media side: a synthetic caller (espeak-ng, real time) asks about order
42; the STT, the model, the ``check_order`` tool and the TTS answer; the transcript is printed
with per-turn latencies from the call log (``turns.details``) and the whole call (both sides) is
written to a WAV file. With no keys the offline engines run (pocketsphinx, the offline stand-in
model, espeak-ng); with keys the configured vendors do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import uvicorn

from app.core.config import Settings


def _demo_tool_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def order(request: Request) -> JSONResponse:
        order_id = request.path_params["order_id"]
        return JSONResponse({"order_id": order_id, "status": "shipped", "carrier": "DHL", "eta_days": 2})

    return Starlette(routes=[Route("/orders/{order_id}", order)])


async def _start_server(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "off", port: int = 0
) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server failed to start")
        await asyncio.sleep(0.02)
    return server, task, int(server.servers[0].sockets[0].getsockname()[1])


async def _stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 15)


async def _seed_demo(app: Any, tool_url: str, voice: dict[str, Any] | None = None) -> None:
    """Create the ``demo`` prompt with its ``check_order`` tool (once); set its voice settings."""
    from sqlalchemy import select

    from app.models import Prompt, Tool

    sessions = app.state.gateway.session_factory
    async with sessions() as session:
        existing = (await session.scalars(select(Prompt).where(Prompt.name == "demo"))).first()
        if existing is not None:
            if voice is not None and existing.voice != voice:
                existing.voice = voice
                await session.commit()
            return
        tool = Tool(
            name="check_order",
            description="Look up the delivery status of an order by its number.",
            parameters={
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}},
                "required": ["order_id"],
            },
            url=tool_url + "/orders/{order_id}",
            method="GET",
            headers={"X-Caller": "{caller_id_number}"},
            timeout_seconds=3.0,
        )
        session.add(
            Prompt(
                name="demo",
                content="You are the order hotline of Example Shop. Use check_order to answer "
                "questions about orders.",
                fallback_text="Sorry, the order hotline is unavailable. Please call back later.",
                tools=[tool],
                voice=voice,
            )
        )
        await session.commit()


def _demo_login(base: Settings, workdir: Path, overrides: dict[str, Any]) -> str:
    """Give the demo a usable admin login; return how to log in (the password is never logged).

    Without a strong `WEB_UI_PASSWORD`, a password is generated for this run, shown on
    stderr and kept in `<workdir>/admin-password` (mode 0600).
    """
    if base.admin_password_problem is None:
        return f"as {base.web_ui_username} with your WEB_UI_PASSWORD"
    from app.services.admin.dev_login import announce_dev_login, generate_dev_password

    password = generate_dev_password()
    overrides["web_ui_password"] = password
    where = announce_dev_login(
        base.web_ui_username,
        password,
        f"demo: {base.admin_password_problem}",
        path=workdir / "admin-password",
    )
    return f"as {base.web_ui_username} with the password shown above (also in {where})"


def _say(text: str = "") -> None:
    """One line of the demo's console output (stdout, flushed)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class _DemoEnv:
    """The running demo: the gateway app, its settings, the fake PBX and what to print."""

    app: Any
    settings: Settings
    fake_ari: Any  # FakeAriServer
    offline: Any  # FakeLLMServer | None
    tool_url: str
    port: int
    model_label: str
    login_note: str


@contextlib.asynccontextmanager
async def _demo_env(args: argparse.Namespace, extra: dict[str, Any]) -> AsyncIterator[_DemoEnv]:
    """Start the fake ARI server, the demo tool, the offline model (no key) and the gateway."""
    from app.cli import _offline_settings, _real_llm_configured
    from app.main import create_app
    from app.testing.fake_ari import FakeAriServer
    from app.testing.fake_llm import FakeLLMServer

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    base = Settings()
    workdir = Path(tempfile.mkdtemp(prefix="aigw-demo-"))
    fake_ari = FakeAriServer(asterisk_version="23.4.0")
    await fake_ari.start()
    tool_server, tool_task, tool_port = await _start_server(_demo_tool_app())
    overrides: dict[str, Any] = {
        "asterisk_ari_url": fake_ari.base_url,
        "asterisk_ari_username": fake_ari.username,
        "asterisk_ari_password": fake_ari.password,
        "tool_allowed_hosts": ["127.0.0.1"],
        "ari_reconnect_min_seconds": 0.1,
        "log_level": "INFO" if args.verbose else "WARNING",
        **extra,
    }
    if "DATABASE_URL" not in os.environ:
        overrides["database_url"] = f"sqlite:///{workdir}/demo.db"
    offline: FakeLLMServer | None = None
    if not _real_llm_configured():
        offline = FakeLLMServer()
        await offline.start()
        overrides.update(_offline_settings(base, offline.openai_base_url))
        overrides["provider_overrides"].update(extra.get("provider_overrides", {}))
        model_label = "OFFLINE STAND-IN (canned answers, not a real model; set an LLM key to use one)"
    else:
        model_label = base.default_ai_model
    login_note = _demo_login(base, workdir, overrides)
    settings = Settings(**overrides)
    app = create_app(settings)
    gateway_server, gateway_task, gateway_port = await _start_server(app, lifespan="on", port=args.port)
    try:
        await fake_ari.wait_for_ws(settings.asterisk_app_name, timeout=10)
        yield _DemoEnv(
            app,
            settings,
            fake_ari,
            offline,
            f"http://127.0.0.1:{tool_port}",
            gateway_port,
            model_label,
            login_note,
        )
    finally:
        await _stop_server(gateway_server, gateway_task)
        await _stop_server(tool_server, tool_task)
        await fake_ari.stop()
        if offline is not None:
            await offline.stop()


def _print_header(env: _DemoEnv) -> None:
    _say(f"Gateway:  http://127.0.0.1:{env.port}  (admin UI at /ui, API docs at /docs)")
    _say(f"Login:    {env.login_note}")
    _say(f"Asterisk: fake ARI server at {env.fake_ari.ari_url}")
    _say(f"Model:    {env.model_label}")


async def _keep_running(env: _DemoEnv) -> None:
    _say(f"\nRunning; open http://127.0.0.1:{env.port}/ui and log in {env.login_note}.")
    _say("Press Ctrl-C to stop.")
    await asyncio.Event().wait()


async def run_demo(args: argparse.Namespace) -> int:
    """Run ``ai-gateway demo`` (text, or voice with ``--voice``); return the exit code."""
    if args.voice:
        return await _demo_voice(args)
    exit_code = 0
    async with _demo_env(args, {}) as env:
        app, settings, fake_ari = env.app, env.settings, env.fake_ari
        await _seed_demo(app, env.tool_url)
        _print_header(env)
        _say()
        for i, said in enumerate(args.say or ["Hi, can you check order 42 for me?"]):
            app_data = (
                f"{settings.asterisk_app_name},USER_INPUT={said},UNIQUEID={args.uniqueid},"
                f"AI_PROMPT_NAME={args.prompt}"
            )
            if args.model:
                app_data += f",AI_MODEL={args.model}"
            _say(f"[turn {i + 1}] exten => 100,n,Stasis({app_data})")
            chan = await fake_ari.place_call(
                app_data,
                caller_number="5551234",
                caller_name="Demo Caller",
                channel_vars={"USER_INPUT": said},
            )
            await chan.wait_left_stasis(settings.ai_turn_timeout_seconds + 10)
            variables = {op[1]: op[2] for op in chan.operations if op[0] == "setvar"}
            _say(f"  caller said:   {said}")
            _say(f"  caller hears:  {variables.get('AI_RESPONSE', '')}")
            for name in ("AI_STATUS", "AI_ERROR"):
                _say(f"  {name + ':':<14} {variables.get(name, '')}")
            _say(f"  then:          {' -> '.join(op[0] for op in chan.operations if op[0] != 'setvar')}")
            if variables.get("AI_STATUS") != "OK":
                exit_code = 1
        await app.state.gateway.call_log.flush()
        calls = await _recent_turn_records(app)
        if calls:
            _say("\nCall log (last turn):")
            _say(json.dumps(calls, indent=2, default=str))
        if args.keep_running:
            await _keep_running(env)
    return exit_code


def _voice_provider(capability: str, preferred: str, offline: str) -> tuple[str, str]:
    """The demo's STT or TTS: a vendor when its key is set, else the offline engine.

    Order: `preferred` (``VOICE_STT_PROVIDER``/``VOICE_TTS_PROVIDER``) unless it is the
    offline default, then ``openai``, ``deepgram``, then `offline`; the first configured wins.

    Returns:
        ``(registry name, label)``, e.g. ``("pocketsphinx", "pocketsphinx (offline, low accuracy)")``.
    """
    from app.services.providers.base import Capability
    from app.services.providers.registry import ProviderRegistry

    registry = ProviderRegistry.builtin()
    cap = Capability(capability)
    candidates = ("openai", "deepgram", offline)
    for name in candidates if preferred == offline else (preferred, *candidates):
        if name in registry.names(cap) and registry.get(cap, name).is_configured():
            return name, str(getattr(registry.get(cap, name), "label", name))
    return offline, offline


def _quiet_pipecat(verbose: bool) -> None:
    """Pipecat logs through loguru at DEBUG to stderr; keep warnings only unless `verbose`."""
    from loguru import logger as loguru_logger

    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level="DEBUG" if verbose else "WARNING")


async def _wait_idle(app: Any, timeout_s: float = 20.0) -> None:
    """Wait until the gateway has no call session in flight (the call log is then filed)."""
    sessions = app.state.gateway.sessions
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while sessions is not None and sessions.in_flight and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def _wav_path(given: str | None) -> Path:
    """Where the voice demo writes its WAV: `given`, or a new temporary folder."""
    if given:
        return Path(given).resolve()
    return Path(tempfile.mkdtemp(prefix="aigw-voice-")) / "demo-call.wav"


async def _demo_voice(args: argparse.Namespace) -> int:
    """One voice call: a synthetic caller asks about order 42; print the transcript, write a WAV."""
    from app.testing.voice_demo import (
        VOICE_DEMO_GREETING,
        VOICE_DEMO_LINES,
        VOICE_DEMO_SETTINGS,
        demo_responder,
        run_voice_call,
        transcript_lines,
    )

    _quiet_pipecat(args.verbose)
    base = Settings()
    stt, stt_label = _voice_provider("stt", base.voice_stt_provider, "pocketsphinx")
    tts, tts_label = _voice_provider("tts", base.voice_tts_provider, "espeak")
    extra = {
        "voice_media_listen_host": "127.0.0.1",
        "voice_media_listen_port": 0,
        "voice_codec": args.codec,
        "voice_stt_provider": stt,
        "voice_tts_provider": tts,
    }
    lines = args.say or VOICE_DEMO_LINES
    wav_path = _wav_path(args.wav)
    async with _demo_env(args, extra) as env:
        if env.offline is not None:
            env.offline.set_responder(demo_responder)
        voice = env.app.state.gateway.voice
        if voice is None or voice.listener is None:
            sys.stderr.write("Voice mode is not available in this gateway (no media listener).\n")
            return 1
        env.fake_ari.media.websocket_clients["media_connection1"] = (
            f"ws://127.0.0.1:{voice.listener.port}/media"
        )
        voice_settings = {**VOICE_DEMO_SETTINGS, "stt_provider": stt, "tts_provider": tts}
        await _seed_demo(env.app, env.tool_url, voice=voice_settings)
        _print_header(env)
        if env.offline is not None:
            _say("          (demo rules: a transcript naming an order and a number calls check_order;")
            _say("           'bye' calls end_call)")
        _say(f"Speech:   STT {stt_label}; TTS {tts_label}; codec {args.codec}")
        _say("Caller:   synthetic (espeak-ng), speaking in real time; the STT hears the audio\n")
        app_data = (
            f"{env.settings.asterisk_app_name},AI_MODE=voice,AI_PROMPT_NAME={args.prompt},"
            f"UNIQUEID={args.uniqueid}"
        )
        _say(f"exten => 200,n,Stasis({app_data})\n")
        result = await run_voice_call(env.fake_ari, app_data, lines)
        await _wait_idle(env.app)
        await env.app.state.gateway.call_log.flush()
        turns = await _call_turns(env.app, result.channel.id)
        _say("Transcript:")
        for line in transcript_lines(VOICE_DEMO_GREETING, lines, turns, result.variables):
            _say(line)
        result.caller.recording.wav(wav_path, both_sides=True)
        _say(f"\nRecording (both sides, 16 kHz WAV): {wav_path}")
        if args.keep_running:
            await _keep_running(env)
    return 0 if result.variables.get("AI_STATUS") == "OK" else 1


async def _call_turns(app: Any, channel_id: str) -> list[dict[str, Any]]:
    """The call log's turns of the call on `channel_id`, oldest first."""
    from sqlalchemy import select

    from app.models import Call, Turn

    async with app.state.gateway.session_factory() as session:
        rows = await session.scalars(
            select(Turn).join(Call).where(Call.channel_id == channel_id).order_by(Turn.id)
        )
        return [
            {
                "user_input": t.user_input,
                "response": t.response,
                "tool_calls": t.tool_calls,
                "details": t.details or {},
            }
            for t in rows
        ]


async def _recent_turn_records(app: Any) -> dict[str, Any]:
    from sqlalchemy import select

    from app.models import Turn

    async with app.state.gateway.session_factory() as session:
        turn = (await session.scalars(select(Turn).order_by(Turn.id.desc()).limit(1))).first()
        if turn is None:
            return {}
        return {
            "status": turn.status,
            "model": turn.model,
            "latency_ms": turn.latency_ms,
            "llm_latency_ms": turn.llm_latency_ms,
            "tool_calls": [
                {k: c.get(k) for k in ("name", "args", "outcome", "status_code", "latency_ms")}
                for c in turn.tool_calls
            ],
            "token_usage": turn.token_usage,
        }
