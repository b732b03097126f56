"""Tools API: CRUD, validation errors naming the field, write-only secrets, test runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.core.config import Settings
from app.core.security import MASK
from app.models import Tool
from app.testing.fake_llm import FakeLLMServer, TextReply, ToolCallReply
from tests.api.conftest import make_client, tool_body
from tests.api.test_ui_pages import csrf
from tests.conftest import run_gateway, state_of
from tests.utils import ToolApi


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/tools", json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_tool_crud(client: httpx.AsyncClient, tool_api: ToolApi) -> None:
    tool = await create(client, tool_body(tool_api.url + "/orders/{order_id}"))
    assert tool["version"] == 1
    assert tool["args_location"] == "auto"

    patched = (await client.patch(f"/api/v1/tools/{tool['id']}", json={"timeout_seconds": 3})).json()
    assert patched["timeout_seconds"] == 3
    assert patched["url"] == tool["url"]
    assert patched["version"] == 2

    body = tool_body(tool_api.url + "/echo", method="POST", description="Echo")
    replaced = await client.put(f"/api/v1/tools/{tool['id']}", json=body)
    assert replaced.status_code == 200
    assert replaced.json()["method"] == "POST"
    assert replaced.json()["version"] == 3

    listing = (await client.get("/api/v1/tools", params={"name": "check"})).json()
    assert listing["total"] == 1
    assert (await client.delete(f"/api/v1/tools/{tool['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/tools/{tool['id']}")).status_code == 404


async def test_prompt_links_tools_by_name(client: httpx.AsyncClient, tool_api: ToolApi) -> None:
    await create(client, tool_body(tool_api.url + "/orders/{order_id}"))
    prompt = await client.post(
        "/api/v1/prompts", json={"name": "p", "content": "x", "tools": ["check_order"]}
    )
    assert prompt.json()["tools"] == ["check_order"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        (
            {"parameters": {"type": "object", "properties": {"a": {"type": "strin"}}}},
            "parameters",
            "JSON Schema",
        ),
        ({"parameters": {"type": "object", "required": "order_id"}}, "parameters", "JSON Schema"),
        ({"parameters": {"type": "string"}}, "parameters", "object schema"),
        ({"url": "ftp://example.com/x"}, "url", "http"),
        ({"url": "file:///etc/passwd"}, "url", "http"),
        ({"url": "https://example.com/orders/{order}"}, "url", "{order} is not a parameter"),
        ({"url": "https://example.com/{"}, "url", "placeholder"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url", "link-local or cloud metadata"),
        ({"url": "http://metadata.google.internal/computeMetadata/v1/"}, "url", "cloud metadata"),
        ({"url": "http://2852039166/latest/"}, "url", "169.254.169.254"),
        ({"url": "http://0xA9FEA9FE/latest/"}, "url", "169.254.169.254"),
        ({"url": "http://0251.0376.0251.0376/latest/"}, "url", "169.254.169.254"),
        ({"url": "http://[::ffff:169.254.169.254]/latest/"}, "url", "link-local or cloud metadata"),
        ({"url": "http://[fd00:ec2::254]/latest/"}, "url", "link-local or cloud metadata"),
        ({"url": "http://169.254.169.254.nip.io/latest/"}, "url", "169.254.169.254"),
        ({"headers": {"X-Count": 5}}, "headers.X-Count", "must be a string"),
        ({"headers": {"Bad Name": "x"}}, "headers.Bad Name", "HTTP token"),
        ({"name": "has space"}, "name", "pattern"),
        ({"method": "TRACE"}, "method", ""),
        ({"timeout_seconds": 0}, "timeout_seconds", ""),
    ],
)
async def test_invalid_tool_is_422_naming_the_field(
    client: httpx.AsyncClient, fields: dict[str, Any], field: str, words: str
) -> None:
    body = {**tool_body("https://example.com/orders/{order_id}"), **fields}
    response = await client.post("/api/v1/tools", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["field"] == field
    assert words in error["message"]


async def test_context_placeholders_are_allowed_in_url(client: httpx.AsyncClient) -> None:
    await create(client, tool_body("https://example.com/callers/{caller_id_number}/orders/{order_id}"))


async def test_duplicate_tool_name_is_409(client: httpx.AsyncClient) -> None:
    await create(client, tool_body("https://example.com/orders/{order_id}"))
    response = await client.post("/api/v1/tools", json=tool_body("https://example.com/x"))
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "name"


async def test_secret_headers_are_write_only_and_kept(app: FastAPI, client: httpx.AsyncClient) -> None:
    body = tool_body(
        "https://example.com/orders/{order_id}",
        headers={
            "Authorization": "Bearer sk-live-123",
            "X-Api-Key": "key-456",
            "X-Session-Token": "tok-789",
            "X-Custom": "custom-secret",
            "X-Plain": "visible",
        },
        secret_headers=["X-Custom"],
    )
    tool = await create(client, body)
    assert tool["headers"] == {
        "Authorization": MASK,
        "X-Api-Key": MASK,
        "X-Session-Token": MASK,
        "X-Custom": MASK,
        "X-Plain": "visible",
    }
    assert tool["secret_headers"] == ["Authorization", "X-Api-Key", "X-Custom", "X-Session-Token"]
    assert "sk-live-123" not in (await client.get(f"/api/v1/tools/{tool['id']}")).text
    assert "sk-live-123" not in (await client.get("/api/v1/tools")).text

    # stored encrypted, never in clear
    state = state_of(app)
    async with state.session_factory() as session:
        row = (await session.scalars(select(Tool).where(Tool.id == tool["id"]))).one()
        assert row.headers["Authorization"].startswith("enc:v1:")
        assert row.headers["X-Plain"] == "visible"

    # update without re-sending the secrets: a masked value and an omitted one are kept
    update = {"headers": {"Authorization": MASK, "X-Plain": "changed", "X-Custom": "new-custom"}}
    patched = await client.patch(f"/api/v1/tools/{tool['id']}", json=update)
    assert patched.status_code == 200
    assert patched.json()["headers"]["X-Plain"] == "changed"
    put = await client.put(f"/api/v1/tools/{tool['id']}", json={**body, "headers": {"X-Plain": "again"}})
    assert put.status_code == 200
    assert set(put.json()["headers"]) == {
        "Authorization",
        "X-Api-Key",
        "X-Session-Token",
        "X-Custom",
        "X-Plain",
    }

    async with state.session_factory() as session:
        row = (await session.scalars(select(Tool).where(Tool.id == tool["id"]))).one()
        box = state.catalog.secret_box
        assert box.decrypt(row.headers["Authorization"]) == "Bearer sk-live-123"
        assert box.decrypt(row.headers["X-Api-Key"]) == "key-456"
        assert box.decrypt(row.headers["X-Custom"]) == "new-custom"

    # an empty string removes a secret header
    removed = await client.patch(f"/api/v1/tools/{tool['id']}", json={"headers": {"X-Api-Key": ""}})
    assert "X-Api-Key" not in removed.json()["headers"]
    assert "Authorization" in removed.json()["headers"]

    # the audit log masks secrets too
    audit = (await client.get("/api/v1/audit", params={"entity_type": "tool"})).text
    for secret in ("sk-live-123", "key-456", "tok-789", "custom-secret", "new-custom", "enc:v1:"):
        assert secret not in audit


async def test_tool_test_runs_through_executor(client: httpx.AsyncClient, tool_api: ToolApi) -> None:
    tool = await create(
        client,
        tool_body(
            tool_api.url + "/orders/{order_id}",
            headers={"X-Api-Key": "k-1", "X-Caller": "{caller_id_number}"},
        ),
    )
    response = await client.post(
        f"/api/v1/tools/{tool['id']}/test", json={"args": {"order_id": "42"}, "caller_id_number": "5551234"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["ok"] is True
    assert result["outcome"] == "ok"
    assert result["status_code"] == 200
    assert result["latency_ms"] >= 0
    assert '"status":"shipped"' in result["body"].replace(" ", "")
    sent = tool_api.requests[-1]
    assert sent["path"] == "/orders/42"
    assert sent["headers"]["x-api-key"] == "k-1"  # the decrypted secret reaches the API
    assert sent["headers"]["x-caller"] == "5551234"


async def test_tool_test_reports_invalid_args_and_truncation(
    client: httpx.AsyncClient, tool_api: ToolApi
) -> None:
    tool = await create(client, tool_body(tool_api.url + "/orders/{order_id}"))
    bad = (await client.post(f"/api/v1/tools/{tool['id']}/test", json={"args": {"order_id": "abc"}})).json()
    assert bad["ok"] is False
    assert bad["outcome"] == "invalid_args"

    big = await create(
        client,
        tool_body(tool_api.url + "/big", name="big", parameters={"type": "object", "properties": {}}),
    )
    result = (await client.post(f"/api/v1/tools/{big['id']}/test", json={"args": {}})).json()
    assert result["ok"] is True
    assert result["truncated"] is True
    assert len(result["body"]) <= 4000


async def test_tool_test_of_unknown_tool_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/tools/999/test", json={"args": {}})
    assert response.status_code == 404


async def test_metadata_url_is_refused_when_patched_too(client: httpx.AsyncClient, tool_api: ToolApi) -> None:
    tool = await create(client, tool_body(tool_api.url + "/orders/{order_id}"))
    response = await client.patch(f"/api/v1/tools/{tool['id']}", json={"url": "http://[fe80::1]/x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "url"
    assert (await client.get(f"/api/v1/tools/{tool['id']}")).json()["url"] == tool["url"]


async def test_internal_tool_works_by_default_and_its_page_says_so(
    api_settings: Callable[..., Settings], tool_api: ToolApi
) -> None:
    async with run_gateway(api_settings(tool_allowed_hosts=[])) as app, make_client(app) as client:
        tool = await create(client, tool_body(tool_api.url + "/orders/{order_id}"))
        result = (
            await client.post(f"/api/v1/tools/{tool['id']}/test", json={"args": {"order_id": "42"}})
        ).json()
        assert result["outcome"] == "ok" and "shipped" in result["body"]
        page = await client.get(f"/ui/tools/{tool['id']}")
        assert "internal host" in page.text and "<code>127.0.0.1</code>" in page.text

        public = await create(client, tool_body("https://api.example.com/orders/{order_id}", name="public"))
        assert "internal host" not in (await client.get(f"/ui/tools/{public['id']}")).text


async def test_ui_form_refuses_a_metadata_url_on_the_url_field(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/tools/new")
    form = {
        "csrf_token": csrf(page.text),
        "name": "imds",
        "description": "",
        "url": "http://0xA9FEA9FE/latest/meta-data/",
        "method": "GET",
        "args_location": "auto",
        "timeout_seconds": "3",
        "enabled": "on",
        "parameters": '{"type": "object", "properties": {}}',
        "headers": "",
        "secret_headers": "",
        "body_template": "",
    }
    response = await client.post("/ui/tools/new", data=form)
    assert response.status_code == 422
    assert 'id="url-error"' in response.text
    assert "link-local or cloud metadata" in response.text
    assert (await client.get("/api/v1/tools")).json()["total"] == 0


async def test_refused_tool_tells_the_model_nothing_for_admins(
    api_settings: Callable[..., Settings], fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    settings = api_settings(tool_allowed_hosts=["crm.example.internal"])
    async with run_gateway(settings) as app, make_client(app) as client:
        tool = await create(client, tool_body(tool_api.url + "/orders/{order_id}"))
        await client.post(
            "/api/v1/prompts", json={"name": "support", "content": "Help.", "tools": [tool["name"]]}
        )
        fake_llm.script(
            "REFUSED-1",
            [ToolCallReply([("check_order", {"order_id": "42"})]), TextReply("I could not look that up.")],
        )
        chat = (
            await client.post(
                "/api/v1/chat",
                json={"message": "REFUSED-1 order 42?", "prompt_name": "support", "model": "openai"},
            )
        ).json()
        seen_by_model = json.dumps(fake_llm.requests[-1].raw)
        assert "error: request refused" in seen_by_model
        assert "TOOL_ALLOWED_HOSTS" not in seen_by_model and "127.0.0.1" not in seen_by_model
        call = (await client.get(f"/api/v1/calls/{chat['call_id']}")).json()
        logged = call["turns"][0]["tool_calls"][0]
        assert logged["outcome"] == "blocked" and logged["result"] == "error: request refused"
        assert "TOOL_ALLOWED_HOSTS" in logged["detail"]
        page = await client.get(f"/ui/calls/{chat['call_id']}")
        assert "not shown to the model" in page.text and "TOOL_ALLOWED_HOSTS" in page.text
    assert tool_api.requests == []
