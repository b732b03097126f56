"""Application factory and lifespan. Nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.api.errors import install_error_handlers
from app.api.middleware import install_middleware
from app.api.router import include_routers
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.services.providers.registry import ProviderRegistry
from app.services.startup import announce_admin_login, open_gateway, start_preload, start_telephony

logger = logging.getLogger("app")
STATIC_DIR = Path(__file__).resolve().parent / "static"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build every long-lived client, start the ARI event loop, and close all in reverse."""
    settings: Settings = app.state.settings
    providers: ProviderRegistry = app.state.providers or ProviderRegistry.builtin(
        overrides=settings.provider_overrides
    )
    redact = configure_logging(settings, providers.secrets())
    async with AsyncExitStack() as stack:
        state = await open_gateway(settings, providers, stack)
        app.state.gateway = state
        announce_admin_login(state, redact)
        if settings.ari_enabled:
            await start_telephony(state, stack)
        start_preload(state, stack)
        logger.info("Asterisk AI Gateway %s started", __version__)
        yield
        logger.info("shutting down")


def create_app(settings: Settings | None = None, providers: ProviderRegistry | None = None) -> FastAPI:
    """Build the FastAPI application.

    Args:
        settings: explicit settings (tests); default `get_settings()`.
        providers: explicit provider registry (tests); default: every built-in provider with
            its own environment variables and `settings.provider_overrides`, built by the lifespan.
    """
    app = FastAPI(
        title="Asterisk AI Gateway",
        version=__version__,
        description="LLM agents on Asterisk calls: admin REST API for prompts, tools, calls and status.",
        lifespan=lifespan,
        # Served behind the admin login by app.api.router instead.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings or get_settings()
    app.state.providers = providers
    install_error_handlers(app)
    include_routers(app)
    install_middleware(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Swagger UI and ReDoc assets, shipped by the fastapi-offline package (no CDN, nothing vendored).
    app.mount("/docs-assets", StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    return app


#: The ASGI application for `uvicorn app.main:app` (settings are read here; nothing connects
#: until the lifespan runs). `uvicorn --factory app.main:create_app` builds a fresh one instead.
app = create_app()
