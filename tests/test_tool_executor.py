"""The HTTP tool executor against a real local HTTP API: rendering, validation, safety."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Route

from app.core.http import create_http_client
from app.services.agent.tools import ToolBlocked, ToolExecutor, render_body, render_url
from app.services.domain import CallContext, ToolSpec
from tests.utils import ORDER_TOOL_SCHEMA, LoopbackServer, ToolApi

CTX = CallContext(
    uniqueid="conv-9",
    channel_id="1795.1",
    caller_id_number="5551234",
    caller_id_name="Ann",
    stasis_args={"TENANT": "acme", "USER_INPUT": "hi"},
)


def gateway_http() -> httpx.AsyncClient:
    """The client the gateway builds for tools (aiohttp transport), 10 s timeouts."""
    return create_http_client(timeout=httpx.Timeout(10.0), max_connections=20)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_http() as client:
        yield client


def tool(url: str, **kw: Any) -> ToolSpec:
    fields: dict[str, Any] = {
        "id": 1,
        "name": "t",
        "description": "",
        "parameters": ORDER_TOOL_SCHEMA,
        "url": url,
    }
    fields.update(kw)
    return ToolSpec(**fields)


async def test_get_renders_path_query_and_context_headers(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, allowed_hosts=["127.0.0.1"])
    spec = tool(
        tool_api.url + "/orders/{order_id}?tenant={TENANT}",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
        },
        headers={
            "X-Caller": "{caller_id_number}",
            "X-Name": "{caller_id_name}",
            "Authorization": "Bearer s3cr3t",
        },
    )
    result = await ex.execute(spec, {"order_id": "42", "verbose": True}, CTX)
    assert result.ok and result.status_code == 200 and result.outcome == "ok"
    req = tool_api.requests[-1]
    assert req["path"] == "/orders/42"
    assert req["query"] == {"tenant": "acme", "verbose": "true"}
    assert req["headers"]["x-caller"] == "5551234" and req["headers"]["x-name"] == "Ann"
    assert req["headers"]["authorization"] == "Bearer s3cr3t"
    assert '"status":"shipped"' in result.content


async def test_path_placeholders_are_fully_encoded(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, allowed_hosts=["127.0.0.1"])
    spec = tool(tool_api.url + "/orders/{order_id}", parameters={"type": "object"})
    await ex.execute(spec, {"order_id": "../../admin?x=1#frag"}, CTX)
    req = tool_api.requests[-1]
    assert req["raw_path"] == "/orders/%2E%2E%2F%2E%2E%2Fadmin%3Fx%3D1%23frag"
    assert req["query"] == {}
    # A lone ".." must not climb out of /orders/ (aiohttp would resolve an unencoded one).
    await ex.execute(spec, {"order_id": ".."}, CTX)
    assert tool_api.requests[-1]["raw_path"] == "/orders/%2E%2E"


async def test_model_cannot_override_call_context(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, allowed_hosts=["127.0.0.1"])
    spec = tool(
        tool_api.url + "/echo",
        method="POST",
        parameters={"type": "object"},
        headers={"X-C": "{caller_id_number}"},
    )
    await ex.execute(spec, {"caller_id_number": "999", "note": "x"}, CTX)
    req = tool_api.requests[-1]
    assert req["headers"]["x-c"] == "5551234"
    assert req["json"] == {"caller_id_number": "5551234", "note": "x"}


async def test_body_template_keeps_json_types(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, allowed_hosts=["127.0.0.1"])
    spec = tool(
        tool_api.url + "/echo",
        method="POST",
        parameters={"type": "object", "properties": {"qty": {"type": "integer"}, "items": {"type": "array"}}},
        body_template={
            "order": {"qty": "{qty}", "items": "{items}", "label": "for {caller_id_name}"},
            "conv": "{uniqueid}",
        },
    )
    await ex.execute(spec, {"qty": 3, "items": ["a", "b"]}, CTX)
    assert tool_api.requests[-1]["json"] == {
        "order": {"qty": 3, "items": ["a", "b"], "label": "for Ann"},
        "conv": "conv-9",
    }


async def test_invalid_arguments_never_reach_the_api(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, allowed_hosts=["127.0.0.1"])
    result = await ex.execute(tool(tool_api.url + "/orders/{order_id}"), {"order_id": "abc"}, CTX)
    assert not result.ok and result.outcome == "invalid_args"
    assert result.content.startswith("invalid arguments: order_id: 'abc' does not match")
    result = await ex.execute(tool(tool_api.url + "/orders/{order_id}"), {}, CTX)
    assert "'order_id' is a required property" in result.content
    assert tool_api.requests == []


async def test_errors_come_back_as_short_results(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, allowed_hosts=["127.0.0.1"], max_response_bytes=1000)
    free = {"type": "object"}
    r404 = await ex.execute(tool(tool_api.url + "/missing", parameters=free), {}, CTX)
    assert (r404.ok, r404.outcome, r404.status_code) == (False, "http_error", 404)
    assert r404.content.startswith("error: HTTP 404")
    slow = await ex.execute(
        tool(tool_api.url + "/slow", parameters=free, timeout_seconds=5), {}, CTX, timeout_seconds=0.3
    )
    assert slow.outcome == "timeout" and "0.3 s" in slow.content and slow.latency_ms < 2000
    big = await ex.execute(tool(tool_api.url + "/big", parameters=free), {}, CTX)
    assert big.ok and big.truncated and big.content.endswith("…[truncated]")
    assert len(big.content) < 1100
    dead = await ex.execute(tool("http://127.0.0.1:9/nothing", parameters=free), {}, CTX)
    assert dead.outcome == "connection_error"


@pytest.mark.parametrize(
    ("url", "allowed", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"], "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", [], "metadata"),
        ("http://127.0.0.1:9/x", [], "loopback/private"),
        ("http://localhost:9/x", [], "loopback/private"),
        ("http://127.0.0.1:9/x", ["api.example.com"], "not in TOOL_ALLOWED_HOSTS"),
        ("ftp://127.0.0.1/x", ["127.0.0.1"], "http(s)"),
        ("http://{host}/x", ["127.0.0.1"], "host"),
    ],
)
async def test_host_policy_refuses(
    http: httpx.AsyncClient, url: str, allowed: list[str], reason: str
) -> None:
    ex = ToolExecutor(http, allowed_hosts=allowed)
    result = await ex.execute(tool(url, parameters={"type": "object"}), {"host": "evil.example"}, CTX)
    assert result.outcome == "blocked" and reason in result.content


async def test_allowlist_by_network(http: httpx.AsyncClient, tool_api: ToolApi) -> None:
    ex = ToolExecutor(http, allowed_hosts=["127.0.0.0/8"])
    assert (await ex.execute(tool(tool_api.url + "/echo", parameters={"type": "object"}), {}, CTX)).ok


async def test_redirects_only_to_the_same_host() -> None:
    async def to_other(_request: Any) -> RedirectResponse:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/", status_code=302)

    async def to_same(_request: Any) -> RedirectResponse:
        return RedirectResponse("/other", status_code=302)

    async def other(_request: Any) -> RedirectResponse:
        return RedirectResponse("/final", status_code=307)

    async def final(_request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("landed")

    server = LoopbackServer(
        Starlette(
            routes=[
                Route("/away", to_other),
                Route("/here", to_same),
                Route("/other", other),
                Route("/final", final),
            ]
        )
    )
    await server.start()
    try:
        async with gateway_http() as client:
            ex = ToolExecutor(client, allowed_hosts=["127.0.0.1"])
            free = {"type": "object"}
            away = await ex.execute(tool(server.url + "/away", parameters=free), {}, CTX)
            assert away.outcome == "blocked" and "another host" in away.content
            here = await ex.execute(tool(server.url + "/here", parameters=free), {}, CTX)
            assert here.ok and here.content == "landed"
    finally:
        await server.stop()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "order_id"]), st.text(max_size=40) | st.integers()))
def test_rendered_url_never_changes_scheme_or_host(values: dict[str, Any]) -> None:
    url, used = render_url("https://api.example.com:8443/v1/{order_id}/x/{a}?q={b}", values)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "api.example.com:8443")
    assert parts.path.startswith("/v1/") and parts.path.count("/") == 4
    assert "#" not in url and url.count("?") == 1
    assert used == {"order_id", "a", "b"}


@given(
    st.recursive(
        st.text(max_size=10) | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    )
)
def test_body_template_without_placeholders_is_unchanged(template: Any) -> None:
    if "{" in repr(template):
        return
    assert render_body(template, {"x": 1}) == template


def test_placeholder_in_host_is_refused() -> None:
    with pytest.raises(ToolBlocked):
        render_url("http://{tenant}.example.com/x", {"tenant": "a"})
