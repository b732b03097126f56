"""Fixtures of the admin API tests: the real app (ARI off) and authenticated clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import strategies as st

from app.core.config import Settings
from tests.conftest import TEST_ADMIN_PASSWORD, run_gateway

ADMIN = ("admin", TEST_ADMIN_PASSWORD)


@pytest.fixture
def api_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings for an admin-API test: ARI off, everything else real or on loopback."""

    def build(**overrides: Any) -> Settings:
        return make_settings(**{"ari_enabled": False, **overrides})

    return build


@pytest.fixture
async def app(api_settings: Callable[..., Settings]) -> AsyncIterator[FastAPI]:
    """The running gateway (lifespan included)."""
    async with run_gateway(api_settings()) as application:
        yield application


def make_client(application: FastAPI, auth: tuple[str, str] | None = ADMIN) -> httpx.AsyncClient:
    """An HTTP client talking to `application` in process."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://gateway.test", auth=auth
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client logged in as the admin."""
    async with make_client(app) as http:
        yield http


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    async with make_client(app, auth=None) as http:
        yield http


def tool_body(url: str, **fields: Any) -> dict[str, Any]:
    """A valid `ToolCreate` body calling `url`, overridable field by field."""
    body: dict[str, Any] = {
        "name": "check_order",
        "description": "Look up an order's delivery status by order number.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}},
            "required": ["order_id"],
        },
        "url": url,
        "method": "GET",
        "headers": {"X-Caller": "{caller_id_number}"},
        "timeout_seconds": 2.0,
    }
    body.update(fields)
    return body


#: How each keyword wraps a subschema, and how many JSON levels that adds.
WRAPPERS: dict[str, tuple[int, Any]] = {
    "properties": (2, lambda s: {"type": "object", "properties": {"a": s}}),
    "items": (1, lambda s: {"type": "array", "items": s}),
    "anyOf": (2, lambda s: {"anyOf": [s, {"type": "null"}]}),
    "allOf": (2, lambda s: {"allOf": [s]}),
    "not": (1, lambda s: {"not": s}),
    "additionalProperties": (1, lambda s: {"type": "object", "additionalProperties": s}),
    "$defs": (2, lambda s: {"$defs": {"d": s}}),
}


def nested(keywords: list[str], width: int = 1) -> tuple[dict[str, Any], int]:
    """An object schema with `width` flat properties and one nested by `keywords`.

    Returns:
        The schema and its depth in JSON levels (the root object is level 1).
    """
    node: dict[str, Any] = {"type": "string"}
    depth = 1
    for keyword in keywords:
        levels, wrap = WRAPPERS[keyword]
        node = wrap(node)
        depth += levels
    properties: dict[str, Any] = {f"p{i}": {"type": "integer"} for i in range(width)}
    properties["deep"] = node
    return {"type": "object", "properties": properties}, depth + 2


def items_deep(levels: int) -> dict[str, Any]:
    """The issue's shape: one property nested `levels` times in ``items`` (150 → ~1.7 KB)."""
    return nested(["items"] * levels)[0]


#: Valid object schemas, up to 2000 properties wide and 300 keywords deep, with their depth.
nested_tool_schemas = st.builds(
    nested,
    st.lists(st.sampled_from(sorted(WRAPPERS)), max_size=300),
    st.integers(min_value=1, max_value=2000),
)
