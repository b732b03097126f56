"""Web UI over HTTP: pages render, forms validate on the server and keep input, CSRF."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from tests.api.conftest import tool_body
from tests.utils import ToolApi


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def test_every_page_renders(app: FastAPI, client: httpx.AsyncClient, tool_api: ToolApi) -> None:
    tool = (await client.post("/api/v1/tools", json=tool_body(tool_api.url + "/orders/{order_id}"))).json()
    await client.post("/api/v1/chat", json={"message": "hello there"})
    call_id = (await client.get("/api/v1/calls")).json()["items"][0]["id"]
    for path in [
        "/ui",
        "/ui/prompts",
        "/ui/prompts/new",
        "/ui/prompts/1",
        "/ui/prompts/1/delete",
        "/ui/tools",
        "/ui/tools/new",
        f"/ui/tools/{tool['id']}",
        f"/ui/tools/{tool['id']}/delete",
        "/ui/calls",
        "/ui/calls?status=OK&source=chat&since=2020-01-01",
        f"/ui/calls/{call_id}",
        "/ui/chat",
        "/ui/audit",
        "/ui/audit?entity_type=tool",
    ]:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        assert "<script>" not in response.text  # the CSP forbids inline scripts
        assert " style=" not in response.text  # ... and inline styles
        assert "http://" not in response.text.replace(tool_api.url, "")  # nothing from another origin
    assert (await client.get("/ui/prompts/999")).status_code == 404
    assert (await client.get("/static/css/app.css")).status_code == 200


async def test_prompt_form_shows_errors_and_keeps_input(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/prompts/new")
    form = {
        "csrf_token": csrf(page.text),
        "name": "sales team",
        "content": "You sell things.",
        "metadata": '{\n  "team": "sales",\n  oops\n}',
    }
    response = await client.post("/ui/prompts/new", data=form)
    assert response.status_code == 422
    assert "Invalid JSON at line 3, column 3" in response.text
    assert "no spaces" in response.text
    assert "You sell things." in response.text  # what the user typed is kept
    assert 'aria-invalid="true"' in response.text

    form.update(name="sales", metadata='{"team": "sales"}', is_default="on")
    saved = await client.post("/ui/prompts/new", data=form)
    assert saved.status_code == 303
    prompts = (await client.get("/api/v1/prompts", params={"name": "sales"})).json()["items"]
    assert prompts[0]["metadata"] == {"team": "sales"}
    assert prompts[0]["is_default"] is True


async def test_tool_form_validates_schema_and_keeps_secrets(
    client: httpx.AsyncClient, tool_api: ToolApi
) -> None:
    page = await client.get("/ui/tools/new")
    form = {
        "csrf_token": csrf(page.text),
        "name": "check_order",
        "description": "Look up an order",
        "url": tool_api.url + "/orders/{order_id}",
        "method": "GET",
        "args_location": "auto",
        "timeout_seconds": "3",
        "enabled": "on",
        "parameters": '{"type": "object", "properties": {"order_id": {"type": "strin"}}}',
        "headers": '{"X-Api-Key": "secret-123"}',
        "secret_headers": "",
        "body_template": "",
    }
    bad = await client.post("/ui/tools/new", data=form)
    assert bad.status_code == 422
    assert "not a valid JSON Schema" in bad.text
    assert "secret-123" in bad.text  # kept as typed on the failed create
    form["parameters"] = (
        '{"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}'
    )
    created = await client.post("/ui/tools/new", data=form)
    assert created.status_code == 303
    location = created.headers["location"].split("?")[0]
    edit = await client.get(location)
    assert "secret-123" not in edit.text
    assert "********" in edit.text

    # save the edit page as shown (mask in place): the secret is kept
    form.update(csrf_token=csrf(edit.text), headers='{"X-Api-Key": "********"}', description="Changed")
    saved = await client.post(location, data=form)
    assert saved.status_code == 303
    test = await client.post(
        location + "/test", data={"csrf_token": csrf(edit.text), "args": '{"order_id": "42"}'}
    )
    assert test.status_code == 200
    assert "shipped" in test.text
    assert tool_api.requests[-1]["headers"]["x-api-key"] == "secret-123"

    bad_args = await client.post(location + "/test", data={"csrf_token": csrf(edit.text), "args": "{order"})
    assert bad_args.status_code == 422
    assert "Invalid JSON at line 1, column 2" in bad_args.text


async def test_forms_without_csrf_token_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/ui/prompts/new", data={"name": "x", "content": "y"})
    assert response.status_code == 403
    response = await client.post("/ui/prompts/1/delete", data={"csrf_token": "123.abc"})
    assert response.status_code == 403
    assert (await client.get("/api/v1/prompts/1")).status_code == 200


async def test_delete_asks_for_confirmation(client: httpx.AsyncClient) -> None:
    sales = (await client.post("/api/v1/prompts", json={"name": "sales", "content": "Sell."})).json()
    confirm = await client.get(f"/ui/prompts/{sales['id']}/delete")
    assert "Delete prompt “sales”?" in confirm.text
    assert (await client.get(f"/api/v1/prompts/{sales['id']}")).status_code == 200  # nothing deleted yet
    done = await client.post(f"/ui/prompts/{sales['id']}/delete", data={"csrf_token": csrf(confirm.text)})
    assert done.status_code == 303
    assert (await client.get(f"/api/v1/prompts/{sales['id']}")).status_code == 404
