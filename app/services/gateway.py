"""The long-lived objects the lifespan builds, kept typed on `app.state.gateway`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    from redis.asyncio import Redis
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from app.core.config import Settings
    from app.core.metrics import Metrics
    from app.services.admin.login_limiter import LoginLimiter
    from app.services.agent.call_log import CallLogWriter
    from app.services.agent.catalog import Catalog
    from app.services.agent.tools import ToolExecutor
    from app.services.agent.turns import TurnService
    from app.services.media.setup import Voice
    from app.services.providers.llm import ModelFactory
    from app.services.providers.registry import ProviderRegistry
    from app.services.telephony.ari_client import AriClient
    from app.services.telephony.event_source import AriEventStream
    from app.services.telephony.sessions import SessionManager


@dataclass
class GatewayState:
    """Everything the routes and the ARI handler share, built once per process."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    http: httpx.AsyncClient
    metrics: Metrics
    catalog: Catalog
    tool_executor: ToolExecutor
    turn_service: TurnService
    call_log: CallLogWriter
    login_limiter: LoginLimiter
    providers: ProviderRegistry
    ari: AriClient | None = None
    ari_events: AriEventStream | None = None
    sessions: SessionManager | None = None
    voice: Voice | None = None
    models: ModelFactory | None = None
    admin_password: str | None = None
    extras: dict[str, object] = field(default_factory=dict)
