"""Prompts API: CRUD, pagination and filter, default, versions, validation, audit."""

from __future__ import annotations

import httpx


async def make_prompt(client: httpx.AsyncClient, name: str, **fields: object) -> dict[str, object]:
    response = await client.post(
        "/api/v1/prompts", json={"name": name, "content": f"You are {name}.", **fields}
    )
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()
    return data


async def test_create_get_update_delete_prompt(client: httpx.AsyncClient) -> None:
    created = await make_prompt(client, "sales", metadata={"team": "sales"}, fallback_text="Hold on.")
    assert created["version"] == 1
    assert created["metadata"] == {"team": "sales"}

    got = (await client.get(f"/api/v1/prompts/{created['id']}")).json()
    assert got["content"] == "You are sales."

    patched = await client.patch(f"/api/v1/prompts/{created['id']}", json={"content": "Be brief."})
    assert patched.status_code == 200
    assert patched.json()["content"] == "Be brief."
    assert patched.json()["fallback_text"] == "Hold on."  # untouched by a partial update
    assert patched.json()["version"] == 2

    replaced = await client.put(f"/api/v1/prompts/{created['id']}", json={"name": "sales", "content": "New."})
    assert replaced.status_code == 200
    assert replaced.json()["fallback_text"] is None  # a full update resets what was not sent
    assert replaced.json()["metadata"] is None
    assert replaced.json()["version"] == 3

    deleted = await client.delete(f"/api/v1/prompts/{created['id']}")
    assert deleted.status_code == 204
    missing = await client.get(f"/api/v1/prompts/{created['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_list_is_paginated_and_filtered_by_name(client: httpx.AsyncClient) -> None:
    for name in ("billing-en", "billing-fr", "support"):
        await make_prompt(client, name)
    page = (await client.get("/api/v1/prompts", params={"limit": 2})).json()
    # the gateway seeds a "default" prompt on an empty database
    assert page["total"] == 4
    assert len(page["items"]) == 2
    second = (await client.get("/api/v1/prompts", params={"limit": 2, "offset": 2})).json()
    assert {p["name"] for p in page["items"] + second["items"]} == {
        "billing-en",
        "billing-fr",
        "default",
        "support",
    }
    billing = (await client.get("/api/v1/prompts", params={"name": "BILL"})).json()
    assert [p["name"] for p in billing["items"]] == ["billing-en", "billing-fr"]


async def test_set_default_moves_the_flag(client: httpx.AsyncClient) -> None:
    sales = await make_prompt(client, "sales")
    response = await client.post(f"/api/v1/prompts/{sales['id']}/default")
    assert response.status_code == 200
    assert response.json()["is_default"] is True
    items = (await client.get("/api/v1/prompts")).json()["items"]
    assert [p["name"] for p in items if p["is_default"]] == ["sales"]

    other = await make_prompt(client, "other", is_default=True)
    items = (await client.get("/api/v1/prompts")).json()["items"]
    assert [p["name"] for p in items if p["is_default"]] == [other["name"]]


async def test_duplicate_name_is_409(client: httpx.AsyncClient) -> None:
    await make_prompt(client, "sales")
    response = await client.post("/api/v1/prompts", json={"name": "sales", "content": "x"})
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "name_conflict",
        "message": "a prompt named 'sales' already exists",
        "field": "name",
    }
    other = await make_prompt(client, "other")
    renamed = await client.patch(f"/api/v1/prompts/{other['id']}", json={"name": "sales"})
    assert renamed.status_code == 409


async def test_metadata_must_be_a_json_object(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/prompts", json={"name": "p", "content": "x", "metadata": "not json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "metadata"
    response = await client.post("/api/v1/prompts", json={"name": "p", "content": "x", "metadata": [1, 2]})
    assert response.json()["error"]["field"] == "metadata"


async def test_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/prompts", content=b'{"name": "p", "content": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "not valid JSON" in response.json()["error"]["message"]


async def test_unknown_tool_name_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/prompts", json={"name": "p", "content": "x", "tools": ["nope"]})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "tools"
    assert "nope" in response.json()["error"]["message"]


async def test_missing_content_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/prompts", json={"name": "p"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "content"


async def test_writes_are_audited(client: httpx.AsyncClient) -> None:
    prompt = await make_prompt(client, "sales")
    await client.patch(f"/api/v1/prompts/{prompt['id']}", json={"content": "Be brief."})
    await client.delete(f"/api/v1/prompts/{prompt['id']}")
    entries = (await client.get("/api/v1/audit", params={"entity_type": "prompt"})).json()["items"]
    assert [e["action"] for e in entries] == ["delete", "update", "create"]
    update = entries[1]
    assert update["actor"] == "admin"
    assert update["entity_name"] == "sales"
    assert update["changes"] == {"content": ["You are sales.", "Be brief."]}
