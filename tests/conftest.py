"""Shared fixtures: real Redis and database, wire-level fake ARI and LLM servers, the gateway.

The database is SQLite in a temp dir by default; set ``TEST_DATABASE_URL`` to a
PostgreSQL URL (e.g. ``postgresql://postgres@127.0.0.1:5432/test``) to run the same
tests on PostgreSQL: each test then gets its own freshly created database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.database import create_engine, run_migrations
from app.main import create_app
from app.services.gateway import GatewayState
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer
from app.testing.fake_voice import FakeVoiceServer
from tests.utils import ToolApi

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_OPENAI_KEY = "sk-test-openai-9f8e7d6c5b4a"
TEST_GEMINI_KEY = "gm-test-gemini-1a2b3c4d5e6f"
TEST_ANTHROPIC_KEY = "sk-ant-test-7h6g5f4e3d2c"
TEST_COMPATIBLE_KEY = "local-test-key-5k4j3h2g1f"
TEST_ADMIN_PASSWORD = "correct-horse-battery-staple"
TEST_SECRET_KEY = "test-secret-key-for-fernet-0123456789"
TEST_TOOL_SECRET = "tool-secret-XYZ987"
#: Values that must never appear in anything the suite logs (tests/test_zz_no_secrets_in_logs.py).
SECRETS = (
    TEST_OPENAI_KEY,
    TEST_GEMINI_KEY,
    TEST_ANTHROPIC_KEY,
    TEST_COMPATIBLE_KEY,
    TEST_ADMIN_PASSWORD,
    TEST_SECRET_KEY,
    TEST_TOOL_SECRET,
)
SUITE_LOG = Path(__file__).resolve().parent.parent / "test-artifacts" / "suite.log"


def pytest_configure(config: pytest.Config) -> None:
    """Record every log line of the whole run (DEBUG and up) in test-artifacts/suite.log."""
    SUITE_LOG.parent.mkdir(exist_ok=True)
    handler = logging.FileHandler(SUITE_LOG, mode="a", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


@pytest.fixture
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An async engine on the test's clean database, migrated to the latest revision."""
    engine = create_engine(Settings(database_url=database_url).async_database_url)
    await run_migrations(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def database_url(tmp_path: Any) -> AsyncIterator[str]:
    """A clean database for one test (SQLite file, or a fresh PostgreSQL database)."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield f"sqlite:///{tmp_path}/gateway.db"
        return
    base, _, _ = url.rpartition("/")
    name = f"aigw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{base}/{name}"
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A unique Redis key prefix; its keys are deleted after the test."""
    prefix = f"aigw-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def fake_ari() -> AsyncIterator[FakeAriServer]:
    """A fake Asterisk ARI server on loopback (newest ARI: has setChannelVars)."""
    server = FakeAriServer(asterisk_version="23.4.0")
    await server.start()
    yield server
    await server.stop()
    # Every ARI request the gateway sent matches an operation of Asterisk's ARI specs.
    assert server.spec_violations == [], server.spec_violations


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLMServer]:
    """OpenAI- and Gemini-compatible stand-in on loopback."""
    server = FakeLLMServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def voice_vendor() -> AsyncIterator[FakeVoiceServer]:
    """OpenAI audio, Deepgram and the TTS vendor on loopback (`app/testing/fake_voice.py`)."""
    async with FakeVoiceServer() as server:
        yield server


@pytest.fixture
async def tool_api() -> AsyncIterator[ToolApi]:
    """A local HTTP API for tools to call, recording each request."""
    api = ToolApi()
    await api.start()
    yield api
    await api.stop()


def llm_provider_overrides(fake_llm: FakeLLMServer, *without: str) -> dict[str, dict[str, Any]]:
    """`Settings.provider_overrides` pointing every LLM provider (but `without`) at the stand-in."""
    overrides = {
        "llm:openai": {"api_key": TEST_OPENAI_KEY, "base_url": fake_llm.openai_base_url},
        "llm:gemini": {"api_key": TEST_GEMINI_KEY, "base_url": fake_llm.gemini_base_url},
        "llm:anthropic": {"api_key": TEST_ANTHROPIC_KEY, "base_url": fake_llm.anthropic_base_url},
        "llm:openai_compatible": {"api_key": TEST_COMPATIBLE_KEY, "base_url": fake_llm.openai_base_url},
    }
    # A provider left out still gets explicit empty values, so a developer's .env cannot leak in.
    empty: dict[str, dict[str, Any]] = {
        "llm:openai": {"api_key": None, "base_url": None},
        "llm:gemini": {"api_key": None, "base_url": None},
        "llm:anthropic": {"api_key": None, "base_url": None},
        "llm:openai_compatible": {"api_key": None, "base_url": None},
    }
    return {
        key: (empty[key] if key.split(":")[1] in without else values) for key, values in overrides.items()
    }


@pytest.fixture
def make_settings(
    database_url: str, redis_prefix: str, fake_ari: FakeAriServer, fake_llm: FakeLLMServer
) -> Callable[..., Settings]:
    """Build `Settings` wired to the test's database, Redis prefix and stand-ins."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "redis_key_prefix": redis_prefix,
            "asterisk_ari_url": fake_ari.base_url,
            "asterisk_ari_username": fake_ari.username,
            "asterisk_ari_password": fake_ari.password,
            "provider_overrides": llm_provider_overrides(fake_llm),
            "tool_allowed_hosts": ["127.0.0.1"],
            "web_ui_password": TEST_ADMIN_PASSWORD,
            "secret_key": TEST_SECRET_KEY,
            "ai_turn_timeout_seconds": 5.0,
            "llm_max_retries": 0,
            "ari_reconnect_min_seconds": 0.05,
            "ari_reconnect_max_seconds": 0.3,
            "prompt_cache_ttl_seconds": 0.0,
            # Voice mode's media listener on a free loopback port (tests never take 8765).
            "voice_media_listen_host": "127.0.0.1",
            "voice_media_listen_port": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@asynccontextmanager
async def run_gateway(settings: Settings, fake_ari: FakeAriServer | None = None) -> AsyncIterator[FastAPI]:
    """Run the real app (lifespan included); wait for its ARI WebSocket when ARI is on."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if fake_ari is not None and settings.ari_enabled:
            await fake_ari.wait_for_ws(settings.asterisk_app_name, timeout=5)
        yield app


async def wait_until_idle(app: FastAPI, timeout: float = 10.0) -> None:
    """Wait until the app has no call session in flight (delivery included)."""
    handler = state_of(app).sessions
    assert handler is not None
    deadline = asyncio.get_running_loop().time() + timeout
    while handler.in_flight:
        assert asyncio.get_running_loop().time() < deadline, f"still in flight: {list(handler.in_flight)}"
        await asyncio.sleep(0.05)


def state_of(app: FastAPI) -> GatewayState:
    """The app's `GatewayState`."""
    state: GatewayState = app.state.gateway
    return state
