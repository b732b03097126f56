"""The composition root of the services: what the lifespan builds, starts and closes.

`open_gateway` builds the storage, the agent and the admin helpers and returns the typed
`GatewayState`; `start_telephony` connects the Stasis application (sessions, text and voice
modes, the supervised event reader); `start_preload` warms what start-up left out. Every
long-lived object is registered on the caller's `AsyncExitStack`, so it closes in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from redis.asyncio import Redis

from app.core.config import Settings
from app.core.database import create_engine, create_session_factory, prepare_database
from app.core.logging import RedactSecrets
from app.core.metrics import Metrics
from app.core.redis import create_redis
from app.core.security import SecretBox
from app.services.admin.dev_login import announce_dev_login, generate_dev_password
from app.services.admin.login_limiter import LoginLimiter
from app.services.agent.call_log import CallLogWriter
from app.services.agent.catalog import Catalog, ensure_default_prompt
from app.services.agent.host_policy import HostPolicy
from app.services.agent.memory import ConversationMemory
from app.services.agent.runner import AiService, preload_agent_machinery
from app.services.agent.tools import ToolExecutor, create_tool_http_client
from app.services.agent.turns import TurnService
from app.services.gateway import GatewayState
from app.services.media.setup import Voice, start_voice
from app.services.providers.llm import ModelFactory
from app.services.providers.registry import ProviderRegistry
from app.services.telephony.ari_client import AriClient, create_ari_http_client
from app.services.telephony.claims import ChannelClaims
from app.services.telephony.event_source import AriEventStream
from app.services.telephony.modes import default_modes
from app.services.telephony.sessions import SessionManager
from app.services.telephony.supervisor import supervise

logger = logging.getLogger("app")


def _secret_key(settings: Settings) -> str:
    """`SECRET_KEY`, or (when unset) a key kept in `.gateway-secret-key` so restarts can decrypt."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = Path(".gateway-secret-key")
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    path.write_text(key)
    path.chmod(0o600)
    logger.warning("SECRET_KEY is not set: generated one in %s (set SECRET_KEY in production)", path)
    return key


async def _on_connected(sessions: SessionManager, voice: Voice, ari: AriClient) -> int:
    """After each (re)connect: continue parked channels first, then check the Asterisk version."""
    recovered = await sessions.recover_parked_channels()
    await voice.support.check(ari)
    return recovered


async def _preload_when_connected(
    models: ModelFactory, settings: Settings, connected: asyncio.Event | None
) -> None:
    """Import the agent machinery and the default/fallback models' SDKs once ARI is connected.

    Off the start-up path (or after 10 s without ARI), in worker threads: the first call
    then does not wait for them, and SDKs of providers no setting names are never imported.
    """
    if connected is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), 10)
    try:
        await preload_agent_machinery()
    except Exception:  # an import error shows again, with its cause, on the first turn
        logger.exception("could not preload the agent machinery")
    await models.preload([settings.default_ai_model, settings.fallback_ai_model])


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def open_gateway(
    settings: Settings, providers: ProviderRegistry, stack: AsyncExitStack
) -> GatewayState:
    """Database (migrated and seeded under a lock), Redis, tools, models, memory, call log, turns.

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached at start.
    """
    engine = create_engine(settings.async_database_url)
    stack.push_async_callback(engine.dispose)
    session_factory = create_session_factory(engine)
    await prepare_database(engine, functools.partial(ensure_default_prompt, session_factory))
    metrics = Metrics()
    catalog = Catalog(
        session_factory, SecretBox(_secret_key(settings)), ttl_seconds=settings.prompt_cache_ttl_seconds
    )
    redis = create_redis(
        settings.effective_redis_url,
        timeout_seconds=settings.redis_timeout_seconds,
        max_connections=min(settings.max_concurrent_calls + 20, 1000),
    )
    stack.push_async_callback(redis.aclose)
    call_log = CallLogWriter(session_factory, metrics=metrics)
    call_log.start()
    stack.push_async_callback(call_log.stop)
    http, executor, models, turns = _open_agent(settings, providers, stack, catalog, redis, call_log, metrics)
    limiter = LoginLimiter(
        redis,
        prefix=settings.redis_key_prefix,
        max_failures=settings.login_max_failures,
        window_seconds=settings.login_window_seconds,
    )
    _notice_if_no_llm(models)
    return GatewayState(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        redis=redis,
        http=http,
        metrics=metrics,
        catalog=catalog,
        tool_executor=executor,
        turn_service=turns,
        call_log=call_log,
        providers=providers,
        login_limiter=limiter,
        models=models,
    )


def _open_agent(
    settings: Settings,
    providers: ProviderRegistry,
    stack: AsyncExitStack,
    catalog: Catalog,
    redis: Redis,
    call_log: CallLogWriter,
    metrics: Metrics,
) -> tuple[httpx.AsyncClient, ToolExecutor, ModelFactory, TurnService]:
    """The tools' HTTP client and executor, the model factory, memory and the turn service."""
    host_policy = HostPolicy(settings.tool_allowed_hosts)
    http = create_tool_http_client(
        host_policy, max_connections=200, timeout=httpx.Timeout(settings.tool_default_timeout_seconds)
    )
    stack.push_async_callback(http.aclose)
    executor = ToolExecutor(
        http, max_response_bytes=settings.tool_max_response_bytes, policy=host_policy, metrics=metrics
    )
    stack.push_async_callback(providers.aclose)
    models = ModelFactory(
        providers, timeout_s=settings.llm_request_timeout_seconds, max_retries=settings.llm_max_retries
    )
    stack.push_async_callback(models.aclose)
    memory = ConversationMemory(
        redis,
        prefix=settings.redis_key_prefix,
        ttl_seconds=settings.conversation_ttl_seconds,
        max_turns=settings.conversation_max_turns,
    )
    turns = TurnService(settings, catalog, AiService(models, executor), memory, call_log, metrics)
    stack.push_async_callback(turns.aclose)
    return http, executor, models, turns


def _notice_if_no_llm(models: ModelFactory) -> None:
    if not any(models.configured().values()):
        logger.warning(
            "NOTICE: no LLM is configured (set one of %s). Calls will continue with the "
            "fallback text and AI_STATUS=ERROR, AI_ERROR=llm_not_configured. `ai-gateway serve` "
            "(make run) starts the offline stand-in model when no key is set.",
            ", ".join(p.key_env for p in models.providers() if p.key_env and p.name != "offline"),
        )


def announce_admin_login(state: GatewayState, redact: RedactSecrets) -> None:
    """Dev mode with no strong `WEB_UI_PASSWORD`: generate one and show it once on the console.

    The password is added to the log filter's `redact` set, so no log record ever holds it.
    """
    settings = state.settings
    if settings.admin_password_problem and settings.dev_mode:
        state.admin_password = generate_dev_password()
        redact.add(state.admin_password)
        where = announce_dev_login(
            settings.web_ui_username,
            state.admin_password,
            f"DEV_MODE: {settings.admin_password_problem}",
            path=settings.dev_admin_password_file,
        )
        logger.warning(
            "DEV_MODE: %s; admin login for this run: user %s, password shown on the console "
            "and kept in %s (mode 0600)",
            settings.admin_password_problem,
            settings.web_ui_username,
            where,
        )
    elif settings.admin_password_problem:
        logger.warning("admin UI and API disabled: %s", settings.admin_password_problem)


async def start_telephony(state: GatewayState, stack: AsyncExitStack) -> None:
    """Connect our Stasis application: ARI client, sessions with text and voice modes, event reader.

    The reader is supervised (restarted with backoff after an unexpected exception); at
    shutdown the sessions are drained before the reader stops.
    """
    settings = state.settings
    ari_http = create_ari_http_client(
        settings.ari_base_url,
        settings.asterisk_ari_username,
        settings.asterisk_ari_password.get_secret_value(),
        max_connections=settings.ari_max_connections,
        timeout_seconds=settings.ari_request_timeout_seconds,
    )
    stack.push_async_callback(ari_http.aclose)
    ari = AriClient(ari_http, max_in_flight=settings.ari_max_connections)
    connected = asyncio.Event()
    claims = ChannelClaims(
        state.redis,
        prefix=settings.redis_key_prefix,
        instance_id=uuid.uuid4().hex,
        ttl_seconds=settings.ai_turn_timeout_seconds + 5,
    )
    voice = await start_voice(settings, state.catalog, state.providers)
    stack.push_async_callback(voice.aclose)
    modes = {**default_modes(), **voice.modes}  # text (telephony) and voice (media)
    sessions = SessionManager(
        ari, state.turn_service, settings, state.metrics, modes=modes, connected=connected, claims=claims
    )
    events = AriEventStream(
        settings.ari_events_url,
        settings.asterisk_ari_username,
        settings.asterisk_ari_password.get_secret_value(),
        on_event=sessions.on_event,
        on_connected=functools.partial(_on_connected, sessions, voice, ari),
        metrics=state.metrics,
        min_backoff_s=settings.ari_reconnect_min_seconds,
        max_backoff_s=settings.ari_reconnect_max_seconds,
        connected=connected,
    )
    state.ari, state.ari_events, state.sessions, state.voice = ari, events, sessions, voice
    reader = asyncio.create_task(
        supervise(
            events.run,
            name="ARI event reader",
            on_crash=events.reader_crashed,
            min_backoff_s=settings.ari_reconnect_min_seconds,
            max_backoff_s=settings.ari_reconnect_max_seconds,
        ),
        name="ari-events",
    )

    async def _stop_ari() -> None:
        await sessions.drain(settings.ai_turn_timeout_seconds + 5)
        await events.stop()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    stack.push_async_callback(_stop_ari)
    logger.info("ARI: Stasis application '%s' at %s", settings.asterisk_app_name, settings.ari_base_url)


def start_preload(state: GatewayState, stack: AsyncExitStack) -> None:
    """Warm the agent machinery and the default models' SDKs once ARI is connected (a task)."""
    connected = state.ari_events.connected if state.ari_events else None
    assert state.models is not None
    preload = asyncio.create_task(
        _preload_when_connected(state.models, state.settings, connected), name="preload"
    )
    stack.push_async_callback(_cancel, preload)
