"""Bad input that used to get through (issue 9 §5), through the API and the admin UI.

Deeply nested tool schemas, no-op and null partial updates, unknown call statuses,
deleting the default prompt, and form messages in the form's own words.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings

from app.schemas import PROMPT_NAME_RULE, TOOL_NAME_RULE
from app.services.admin.errors import ValidationFailed
from app.services.admin.validation import MAX_SCHEMA_DEPTH, validate_parameters_schema
from tests.api.conftest import items_deep, nested_tool_schemas, tool_body

# --- Nested schemas -------------------------------------------------------------------


@given(nested_tool_schemas)
@settings(max_examples=200, deadline=None)
def test_nested_schemas_are_accepted_up_to_the_bound_and_refused_beyond(
    schema_and_depth: tuple[dict[str, Any], int],
) -> None:
    schema, depth = schema_and_depth
    if depth <= MAX_SCHEMA_DEPTH:
        validate_parameters_schema(schema)  # valid, deep and wide within the bound
        return
    with pytest.raises(ValidationFailed) as raised:
        validate_parameters_schema(schema)
    assert raised.value.field == "parameters"
    assert f"nested {depth} levels deep" in raised.value.message
    assert f"at most {MAX_SCHEMA_DEPTH} levels" in raised.value.message


async def test_deep_tool_schema_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    deep = items_deep(150)
    response = await client.post("/api/v1/tools", json=tool_body("https://example.com/x", parameters=deep))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "parameters"
    assert f"at most {MAX_SCHEMA_DEPTH} levels" in error["message"]

    created = await client.post("/api/v1/tools", json=tool_body("https://example.com/x"))
    tool_id = created.json()["id"]
    patched = await client.patch(f"/api/v1/tools/{tool_id}", json={"parameters": deep})
    assert patched.status_code == 422
    assert patched.json()["error"]["field"] == "parameters"
    assert (await client.get(f"/api/v1/tools/{tool_id}")).json()["version"] == 1


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def tool_form(token: str, **fields: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "name": "check_order",
        "description": "Look up an order",
        "url": "https://example.com/orders",
        "method": "GET",
        "args_location": "auto",
        "timeout_seconds": "3",
        "enabled": "on",
        "parameters": '{"type": "object", "properties": {}}',
        "headers": "",
        "secret_headers": "",
        "body_template": "",
    }
    form.update(fields)
    return form


async def test_deep_tool_schema_in_the_form_is_shown_next_to_the_field(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/tools/new")
    response = await client.post(
        "/ui/tools/new", data=tool_form(csrf(page.text), parameters=json.dumps(items_deep(150)))
    )
    assert response.status_code == 422
    text = html.unescape(response.text)
    assert 'id="parameters-error"' in text
    assert f"Parameters: the schema is nested 153 levels deep; at most {MAX_SCHEMA_DEPTH} levels" in text


# --- Partial updates that change nothing --------------------------------------------------


async def audit_count(client: httpx.AsyncClient, entity_type: str) -> int:
    total: int = (await client.get("/api/v1/audit", params={"entity_type": entity_type})).json()["total"]
    return total


async def test_prompt_patch_that_changes_nothing_writes_nothing(client: httpx.AsyncClient) -> None:
    prompt = (await client.post("/api/v1/prompts", json={"name": "sales", "content": "Sell."})).json()
    audited = await audit_count(client, "prompt")
    for body in ({}, {"content": "Sell."}, {"name": "sales", "tools": []}):
        response = await client.patch(f"/api/v1/prompts/{prompt['id']}", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == prompt
    same = {"name": "sales", "content": "Sell."}
    assert (await client.put(f"/api/v1/prompts/{prompt['id']}", json=same)).json()["version"] == 1
    assert await audit_count(client, "prompt") == audited

    changed = await client.patch(f"/api/v1/prompts/{prompt['id']}", json={"content": "Sell more."})
    assert changed.json()["version"] == 2
    assert await audit_count(client, "prompt") == audited + 1


@pytest.mark.parametrize("field", ["name", "content", "is_default", "tools"])
async def test_prompt_patch_with_null_is_refused(client: httpx.AsyncClient, field: str) -> None:
    prompt = (await client.post("/api/v1/prompts", json={"name": "sales", "content": "Sell."})).json()
    response = await client.patch(f"/api/v1/prompts/{prompt['id']}", json={field: None})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == field
    assert "may not be null; leave the field out to keep its value" in error["message"]
    assert (await client.get(f"/api/v1/prompts/{prompt['id']}")).json() == prompt


async def test_prompt_patch_with_null_clears_what_may_be_empty(client: httpx.AsyncClient) -> None:
    body = {"name": "sales", "content": "Sell.", "fallback_text": "Hold on.", "metadata": {"a": 1}}
    prompt = (await client.post("/api/v1/prompts", json=body)).json()
    response = await client.patch(
        f"/api/v1/prompts/{prompt['id']}", json={"fallback_text": None, "metadata": None}
    )
    assert response.status_code == 200
    assert response.json()["fallback_text"] is None
    assert response.json()["metadata"] is None
    assert response.json()["version"] == 2


async def test_tool_patch_that_changes_nothing_writes_nothing(client: httpx.AsyncClient) -> None:
    body = tool_body("https://example.com/orders/{order_id}", headers={"Authorization": "Bearer s-1"})
    tool = (await client.post("/api/v1/tools", json=body)).json()
    audited = await audit_count(client, "tool")
    for patch in ({}, {"timeout_seconds": 2.0}, {"headers": {"Authorization": "********"}}):
        response = await client.patch(f"/api/v1/tools/{tool['id']}", json=patch)
        assert response.status_code == 200, (patch, response.text)
        assert response.json() == tool
    assert await audit_count(client, "tool") == audited

    response = await client.patch(f"/api/v1/tools/{tool['id']}", json={"url": None})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "url"
    assert (await client.get(f"/api/v1/tools/{tool['id']}")).json()["version"] == 1


async def test_making_the_default_prompt_the_default_again_writes_nothing(client: httpx.AsyncClient) -> None:
    audited = await audit_count(client, "prompt")
    response = await client.post("/api/v1/prompts/1/default")
    assert response.status_code == 200
    assert response.json()["version"] == 1
    assert await audit_count(client, "prompt") == audited


# --- Calls filter -----------------------------------------------------------------------


async def test_unknown_call_status_is_422_listing_the_valid_ones(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/calls", params={"status": "BOGUS"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "status"
    for status in ("OK", "NO_INPUT", "TIMEOUT", "ERROR", "BUSY"):
        assert f"'{status}'" in error["message"]
    assert (await client.get("/api/v1/calls", params={"status": "OK"})).status_code == 200


# --- The default prompt -----------------------------------------------------------------


async def test_default_prompt_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/prompts/1")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "default_prompt_required"
    assert "make another prompt the default first" in error["message"]
    assert (await client.get("/api/v1/prompts/1")).status_code == 200

    other = (await client.post("/api/v1/prompts", json={"name": "other", "content": "x"})).json()
    await client.post(f"/api/v1/prompts/{other['id']}/default")
    assert (await client.delete("/api/v1/prompts/1")).status_code == 204


async def test_ui_refuses_to_delete_the_default_prompt(client: httpx.AsyncClient) -> None:
    confirm = await client.get("/ui/prompts/1/delete")
    assert "“default” cannot be deleted" in confirm.text
    assert "make another prompt the default first" in confirm.text
    assert "Yes, delete" not in confirm.text
    token = csrf((await client.get("/ui/prompts/1")).text)
    done = await client.post("/ui/prompts/1/delete", data={"csrf_token": token})
    assert done.status_code == 409
    assert "make another prompt the default first" in done.text
    assert (await client.get("/api/v1/prompts/1")).status_code == 200


async def test_dashboard_warns_when_no_prompt_is_the_default(client: httpx.AsyncClient) -> None:
    assert "No default prompt" not in (await client.get("/ui")).text
    await client.patch("/api/v1/prompts/1", json={"is_default": False})
    page = await client.get("/ui")
    assert page.status_code == 200
    assert "No default prompt" in page.text
    assert "will fail" in page.text


# --- Form messages in the form's words ------------------------------------------------------


def error_texts(page: str) -> list[str]:
    """What the page shows as errors: the summary's items and the messages under fields."""
    found = re.findall(r'<p class="field-error" id="[^"]+">(.*?)</p>', page)
    found += re.findall(r'<li><a href="#[^"]+">(.*?)</a></li>', page)
    return [html.unescape(text) for text in found]


async def test_prompt_form_messages_use_labels_and_sentences(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/prompts/new")
    assert f"{PROMPT_NAME_RULE}." in html.unescape(page.text)  # the hint
    form = {"csrf_token": csrf(page.text), "name": "sales team", "content": ""}
    response = await client.post("/ui/prompts/new", data=form)
    assert response.status_code == 422
    shown = error_texts(response.text)
    assert sorted(set(shown)) == sorted(
        {"System prompt is required.", f"Name must be {PROMPT_NAME_RULE}."}  # the hint's own words
    )


async def test_tool_form_messages_use_labels_and_sentences(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/tools/new")
    assert f"{TOOL_NAME_RULE}." in html.unescape(page.text)
    form = tool_form(csrf(page.text), name="has space", timeout_seconds="soon", parameters="")
    response = await client.post("/ui/tools/new", data=form)
    assert response.status_code == 422
    assert sorted(set(error_texts(response.text))) == sorted(
        {f"Name must be {TOOL_NAME_RULE}.", "Timeout must be a number.", "Parameters is required."}
    )


async def test_unchanged_form_save_says_so(client: httpx.AsyncClient) -> None:
    edit = await client.get("/ui/prompts/1")
    prompt = (await client.get("/api/v1/prompts/1")).json()
    form = {
        "csrf_token": csrf(edit.text),
        "name": prompt["name"],
        "content": prompt["content"],
        "is_default": "on",
    }
    saved = await client.post("/ui/prompts/1", data=form, follow_redirects=True)
    assert "unchanged (version 1)" in html.unescape(saved.text)
    assert (await client.get("/api/v1/prompts/1")).json()["version"] == 1
