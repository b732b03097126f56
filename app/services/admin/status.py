"""Health, readiness and status probes: database, Redis, ARI, LLM providers, voice mode, version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__
from app.schemas import (
    AriStatusRead,
    ComponentStatus,
    ProviderStatus,
    ReadinessRead,
    StatusRead,
    VoiceStatusRead,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.core.config import Settings
    from app.services.gateway import GatewayState
    from app.services.media.setup import Voice
    from app.services.telephony.event_source import AriEventStream

#: Longest wait for one reachability probe, in seconds (health checks must be cheap).
PROBE_TIMEOUT_SECONDS = 1.0


async def _probe(check: Callable[[], Awaitable[object]]) -> ComponentStatus:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return ComponentStatus(ok=False, error=f"no answer within {PROBE_TIMEOUT_SECONDS:g} s")
    except Exception as exc:  # any failure means "not reachable"; report its type only
        return ComponentStatus(ok=False, error=type(exc).__name__)
    return ComponentStatus(ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 1))


async def check_database(engine: AsyncEngine) -> ComponentStatus:
    """Whether the database answers ``SELECT 1``, and how fast (ms)."""

    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return await _probe(ping)


async def check_redis(redis: Redis) -> ComponentStatus:
    """Whether Redis answers ``PING``, and how fast (ms)."""

    async def ping() -> object:
        return await redis.ping()

    return await _probe(ping)


def ari_status(events: AriEventStream | None) -> AriStatusRead:
    """The ARI event stream state (``disabled`` when ARI is off)."""
    if events is None:
        return AriStatusRead(enabled=False, state="disabled")
    return AriStatusRead.model_validate({"enabled": True, **events.status()})


def voice_status(voice: Voice | None, settings: Settings) -> VoiceStatusRead | None:
    """Voice mode's line: media listener or server mode, Asterisk version check, defaults.

    Args:
        voice: what the lifespan keeps for voice mode (None: not running).
        settings: ``VOICE_*``.
    """
    if voice is None:
        return None
    port: int | None = None
    if settings.voice_media_connection_type == "server":
        media, media_ok = f"server mode: connects to {settings.voice_media_url}/media/<connection id>", True
    elif voice.listener is None:
        media = (
            f"client mode: the media listener could not bind "
            f"{settings.voice_media_listen_host}:{settings.voice_media_listen_port}"
        )
        media_ok = False
    else:
        port = voice.listener.port
        media = f"client mode: listening on {settings.voice_media_listen_host}:{port} (/media)"
        media_ok = True
    support = voice.support
    return VoiceStatusRead(
        connection_type=settings.voice_media_connection_type,
        media=media,
        media_ok=media_ok,
        listen_port=port,
        asterisk_version=support.asterisk_version,
        supported=support.supported,
        detail=support.detail,
        codec=settings.voice_codec,
        stt_provider=settings.voice_stt_provider,
        tts_provider=settings.voice_tts_provider,
    )


async def gateway_status(gateway: GatewayState) -> StatusRead:
    """ARI, Redis, database, LLM providers (key present or not, never the key) and version."""
    settings = gateway.settings
    database, redis = await asyncio.gather(check_database(gateway.engine), check_redis(gateway.redis))
    providers = [
        ProviderStatus(
            name=p.name,
            capability=str(p.capability),
            label=p.label,
            configured=p.configured,
            detail=p.detail,
            env=list(p.env),
        )
        for p in gateway.providers.statuses()
    ]
    return StatusRead(
        version=__version__,
        ari=ari_status(gateway.ari_events),
        redis=redis,
        database=database,
        providers=providers,
        default_model=settings.default_ai_model,
        fallback_model=settings.fallback_ai_model,
        voice=voice_status(gateway.voice, settings),
    )


def check_ari(gateway: GatewayState) -> ComponentStatus | None:
    """Whether the Stasis application is connected; None when ARI does not count for readiness.

    It counts when `ARI_ENABLED` and `READYZ_REQUIRE_ARI` are both true.
    """
    settings = gateway.settings
    if not (settings.ari_enabled and settings.readyz_require_ari):
        return None
    events = gateway.ari_events
    if events is None:
        return ComponentStatus(ok=False, error="ARI event reader not started")
    if events.state == "connected":
        return ComponentStatus(ok=True)
    return ComponentStatus(
        ok=False, error=f"Stasis application '{settings.asterisk_app_name}' not connected ({events.state})"
    )


async def readiness(gateway: GatewayState) -> ReadinessRead:
    """Ready when the database and Redis answer and (by default) the ARI WebSocket is connected."""
    database, redis = await asyncio.gather(check_database(gateway.engine), check_redis(gateway.redis))
    ari = check_ari(gateway)
    ready = database.ok and redis.ok and (ari is None or ari.ok)
    return ReadinessRead(status="ready" if ready else "not_ready", database=database, redis=redis, ari=ari)
