"""Command line: `ai-gateway serve`, `ai-gateway migrate`, and `ai-gateway demo` (a call with no PBX).

`serve` runs the service.

`migrate` runs `alembic upgrade head` and seeds the default prompt, under the same
database lock the serving process takes at start-up (`app.core.database.prepare_database`),
then exits: run it once per deploy, before starting the gateway processes.

The demo starts the real gateway (the same ASGI app and lifespan as `serve`) against
the project's fake Asterisk ARI server, seeds a prompt with one HTTP tool served on
loopback, places a call with `Stasis(ai_ari_app,USER_INPUT=…,UNIQUEID=…,AI_PROMPT_NAME=demo)`
and prints what the caller would hear and the channel variables the dialplan gets.
With no LLM key set, `serve` and `demo` start the project's offline stand-in in this
process and make it the default model (provider `offline`, answers labelled
"[offline model]"), so prompts and tools can be tried at once; with a key they use the
configured vendor for real.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
from typing import Any

import uvicorn

from app import __version__
from app.core.config import Settings


def _real_llm_configured() -> bool:
    """True when some LLM provider other than the offline stand-in is configured."""
    from app.services.providers.base import Capability
    from app.services.providers.registry import ProviderRegistry

    return any(
        p.is_configured() for p in ProviderRegistry.builtin().all(Capability.LLM) if p.name != "offline"
    )


def _offline_settings(base: Settings, offline_url: str) -> dict[str, Any]:
    """Settings overrides that make the offline stand-in at `offline_url` the default model."""
    return {
        "default_ai_model": "offline",
        "provider_overrides": {**base.provider_overrides, "llm:offline": {"base_url": offline_url}},
    }


OFFLINE_NOTICE = (
    "No LLM key is set: using the OFFLINE STAND-IN model (canned answers, not a real model) at {url}.\n"
    "Set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or OPENAI_COMPATIBLE_BASE_URL in .env "
    "(see .env.example) and restart to use a real model.\n"
)


async def _serve_offline(args: argparse.Namespace) -> None:
    """Serve with the offline stand-in (started in this process) as the default model."""
    from app.main import create_app
    from app.testing.fake_llm import FakeLLMServer

    offline = FakeLLMServer()
    await offline.start()
    try:
        settings = Settings(**_offline_settings(Settings(), offline.openai_base_url))
        sys.stdout.write(OFFLINE_NOTICE.format(url=offline.openai_base_url))
        sys.stdout.flush()
        config = uvicorn.Config(
            create_app(settings), host=args.host, port=args.port, log_level="info", proxy_headers=True
        )
        await uvicorn.Server(config).serve()
    finally:
        await offline.stop()


def _serve(args: argparse.Namespace) -> None:
    if not _real_llm_configured():
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_offline(args))
        return
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level="info",
        proxy_headers=True,
    )


async def _migrate() -> int:
    from app.core.database import create_engine, create_session_factory, prepare_database
    from app.services.agent.catalog import ensure_default_prompt

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    engine = create_engine(settings.async_database_url)
    try:
        sessions = create_session_factory(engine)
        migrated = await prepare_database(engine, functools.partial(ensure_default_prompt, sessions))
    finally:
        await engine.dispose()
    logging.getLogger("app.cli").info(
        "database %s", "migrated to the newest revision" if migrated else "already at the newest revision"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `ai-gateway` command."""
    parser = argparse.ArgumentParser(prog="ai-gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the gateway (admin UI, API, ARI client)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port of the admin UI, API and probes")
    sub.add_parser("migrate", help="upgrade the database schema and seed the default prompt, then exit")
    demo = sub.add_parser("demo", help="place a call through a fake Asterisk and print the result")
    demo.add_argument("--say", action="append", help="the caller's words (repeat for more turns)")
    demo.add_argument("--prompt", default="demo", help="AI_PROMPT_NAME (default: demo)")
    demo.add_argument(
        "--model", default=None, help="AI_MODEL, e.g. openai, anthropic or gemini:gemini-2.5-flash"
    )
    demo.add_argument("--uniqueid", default="demo-conversation-1", help="UNIQUEID conversation key")
    demo.add_argument("--port", type=int, default=0, help="port for the gateway's HTTP server")
    demo.add_argument("--keep-running", action="store_true", help="keep the gateway up after the call")
    demo.add_argument("--verbose", action="store_true", help="show the gateway's INFO logs")
    demo.add_argument(
        "--voice", action="store_true", help="a voice call (AI_MODE=voice): a synthetic caller speaks"
    )
    demo.add_argument("--codec", choices=["ulaw", "slin16"], default="slin16", help="voice: the media codec")
    demo.add_argument("--wav", default=None, help="voice: where to write the call's WAV")
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "migrate":
        sys.exit(asyncio.run(_migrate()))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            from app.demo import run_demo

            sys.exit(asyncio.run(run_demo(args)))


if __name__ == "__main__":
    main()
