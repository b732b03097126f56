"""Property-based API tests: schemathesis generates requests from `/openapi.json`.

The real gateway (ARI off, LLM stand-in, real Redis and the test database) runs on
a loopback port in a background thread; every operation is called with the admin's
credentials. Checks: no 5xx, status codes and content types the schema documents,
and response bodies that match their schemas.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from redis.asyncio import Redis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings
from app.main import create_app
from app.services.admin.validation import MAX_SCHEMA_DEPTH
from app.testing.fake_llm import FakeLLMServer
from tests.api.conftest import nested_tool_schemas
from tests.conftest import REDIS_URL, TEST_ADMIN_PASSWORD, TEST_SECRET_KEY

AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{TEST_ADMIN_PASSWORD}".encode()).decode()}
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))


class LiveGatewayThread:
    """The whole gateway (and the LLM stand-in) in its own thread and event loop."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="schemathesis-gateway", daemon=True)
        self._tmp = tempfile.TemporaryDirectory()
        self.prefix = f"aigw-schemathesis-{uuid.uuid4().hex[:8]}:"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("gateway did not start")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._tmp.cleanup()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _database(self) -> tuple[str, str | None]:
        url = os.environ.get("TEST_DATABASE_URL", "")
        if not url.startswith("postgres"):
            return f"sqlite:///{self._tmp.name}/gateway.db", None
        name = f"aigw_st_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return f"{url.rpartition('/')[0]}/{name}", name

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        database_url, pg_name = await self._database()
        async with FakeLLMServer() as llm:
            app = create_app(
                Settings(
                    _env_file=None,  # type: ignore[call-arg]
                    database_url=database_url,
                    redis_url=REDIS_URL,
                    redis_key_prefix=self.prefix,
                    ari_enabled=False,
                    provider_overrides={
                        "llm:openai": {"api_key": "sk-test", "base_url": llm.openai_base_url}
                    },
                    web_ui_password=TEST_ADMIN_PASSWORD,
                    secret_key=TEST_SECRET_KEY,
                    tool_allowed_hosts=["127.0.0.1"],
                    ai_turn_timeout_seconds=5.0,
                    llm_max_retries=0,
                )
            )
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
            )
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()
            server.should_exit = True
            await task
        redis = Redis.from_url(REDIS_URL)
        keys = [k async for k in redis.scan_iter(match=f"{self.prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        if pg_name is not None:
            url = os.environ["TEST_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            finally:
                await conn.close()


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    gateway = LiveGatewayThread()
    gateway.start()
    yield gateway.url
    gateway.stop()


def _offline_schema() -> Any:
    """The OpenAPI document of the app, built without starting it (nothing connects)."""
    app = create_app(Settings(_env_file=None, web_ui_password=TEST_ADMIN_PASSWORD))  # type: ignore[call-arg]
    return schemathesis.openapi.from_dict(app.openapi())


schema = _offline_schema()


def test_served_schema_is_the_tested_one(live_url: str) -> None:
    served = requests.get(f"{live_url}/openapi.json", headers=AUTH, timeout=10)
    assert served.status_code == 200
    assert sorted(served.json()["paths"]) == sorted(schema.raw_schema["paths"])


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case, live_url: str) -> None:
    case.call_and_validate(
        base_url=live_url,
        headers=AUTH,
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
    )


@given(nested_tool_schemas)
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_deep_and_wide_tool_schemas_get_a_clear_answer(
    live_url: str, schema_and_depth: tuple[dict[str, Any], int]
) -> None:
    schema, depth = schema_and_depth
    body = {"name": f"t_{uuid.uuid4().hex[:12]}", "url": "http://127.0.0.1:9/x", "parameters": schema}
    response = requests.post(f"{live_url}/api/v1/tools", json=body, headers=AUTH, timeout=30)
    if depth <= MAX_SCHEMA_DEPTH:
        assert response.status_code == 201, response.text
        requests.delete(f"{live_url}/api/v1/tools/{response.json()['id']}", headers=AUTH, timeout=30)
    else:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "parameters"


def test_openapi_needs_auth(live_url: str) -> None:
    assert requests.get(f"{live_url}/openapi.json", timeout=10).status_code == 401
