"""FastAPI dependencies as `Annotated` aliases. Tests override them with `dependency_overrides`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.services.gateway import GatewayState
from app.services.providers.registry import ProviderRegistry


def get_gateway(request: Request) -> GatewayState:
    """The process's `GatewayState`, built by the lifespan."""
    state: GatewayState = request.app.state.gateway
    return state


def get_app_settings(gateway: Annotated[GatewayState, Depends(get_gateway)]) -> Settings:
    """The settings this app was created with."""
    return gateway.settings


def get_providers(gateway: Annotated[GatewayState, Depends(get_gateway)]) -> ProviderRegistry:
    """The process's provider registry (LLM, STT, TTS)."""
    return gateway.providers


async def get_session(
    gateway: Annotated[GatewayState, Depends(get_gateway)],
) -> AsyncIterator[AsyncSession]:
    """A database session for one request, closed afterwards."""
    async with gateway.session_factory() as session:
        yield session


GatewayDep = Annotated[GatewayState, Depends(get_gateway)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
ProvidersDep = Annotated[ProviderRegistry, Depends(get_providers)]
