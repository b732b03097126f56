"""Status, metrics, the call log and the chat endpoint (one real turn through the agent)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from app.models import Call, Turn
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer, TextReply, ToolCallReply
from tests.api.conftest import make_client, tool_body
from tests.conftest import (
    TEST_ANTHROPIC_KEY,
    TEST_COMPATIBLE_KEY,
    TEST_GEMINI_KEY,
    TEST_OPENAI_KEY,
    llm_provider_overrides,
    run_gateway,
    state_of,
)
from tests.utils import ToolApi


async def test_status_reports_components_without_keys(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/status")
    assert response.status_code == 200
    status = response.json()
    assert status["version"] == "0.1.0"
    assert status["ari"] == {
        "enabled": False,
        "state": "disabled",
        "since": None,
        "last_event_at": None,
        "reconnects": 0,
    }
    assert status["database"]["ok"] is True
    assert status["redis"]["ok"] is True
    llms = {p["name"]: p["configured"] for p in status["providers"] if p["capability"] == "llm"}
    assert llms == {
        "anthropic": True,
        "gemini": True,
        "offline": False,
        "openai": True,
        "openai_compatible": True,
    }
    openai = next(p for p in status["providers"] if p["name"] == "openai")
    assert "OPENAI_API_KEY" in openai["env"]
    assert openai["detail"] == "OPENAI_API_KEY set, default model gpt-4o-mini"
    for key in (TEST_OPENAI_KEY, TEST_GEMINI_KEY, TEST_ANTHROPIC_KEY, TEST_COMPATIBLE_KEY):
        assert key not in response.text


async def test_status_with_ari_connected(
    api_settings: Callable[..., Settings], fake_ari: FakeAriServer
) -> None:
    async with run_gateway(api_settings(ari_enabled=True), fake_ari) as app, make_client(app) as c:
        ari = (await c.get("/api/v1/status")).json()["ari"]
        assert ari["enabled"] is True
        assert ari["state"] == "connected"
        assert ari["since"] is not None
        metrics = (await c.get("/metrics")).text
        assert "aigw_ari_connected 1.0" in metrics


async def test_status_without_keys(api_settings: Callable[..., Settings], fake_llm: FakeLLMServer) -> None:
    overrides = llm_provider_overrides(fake_llm, "openai", "gemini", "anthropic", "openai_compatible")
    async with (
        run_gateway(api_settings(provider_overrides=overrides)) as app,
        make_client(app) as c,
    ):
        providers = (await c.get("/api/v1/status")).json()["providers"]
        assert [p["configured"] for p in providers if p["capability"] == "llm"] == [False] * 5
        assert next(p for p in providers if p["name"] == "anthropic")["detail"] == (
            "ANTHROPIC_API_KEY is not set"
        )
        dashboard = (await c.get("/ui")).text
        assert "No LLM key is set." in dashboard
        assert "<code>ANTHROPIC_API_KEY</code>" in dashboard and "<code>OPENAI_API_KEY</code>" in dashboard


async def test_readyz_is_503_when_redis_is_down(api_settings: Callable[..., Settings]) -> None:
    settings = api_settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.2)
    async with run_gateway(settings) as app, make_client(app, None) as c:
        response = await c.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"
        assert response.json()["redis"]["ok"] is False
        assert response.json()["database"]["ok"] is True
        assert (await c.get("/healthz")).status_code == 200


async def seed_calls(app: FastAPI) -> list[int]:
    now = datetime.now(UTC)
    state = state_of(app)
    async with state.session_factory() as session:
        calls = [
            Call(
                source="call",
                channel_id="ch-1",
                uniqueid="u-1",
                caller_id_number="5551234",
                caller_id_name="Alice",
                status="OK",
                started_at=now - timedelta(days=2),
                turns=[
                    Turn(
                        user_input="where is my order 42",
                        response="It shipped.",
                        status="OK",
                        model="openai:gpt-4o-mini",
                        latency_ms=420,
                        llm_latency_ms=300,
                        tool_calls=[
                            {
                                "name": "check_order",
                                "args": {"order_id": "42"},
                                "result": '{"status":"shipped"}',
                                "outcome": "ok",
                                "status_code": 200,
                                "latency_ms": 12.5,
                            }
                        ],
                    )
                ],
            ),
            Call(
                source="call",
                channel_id="ch-2",
                uniqueid="u-2",
                caller_id_number="5559999",
                caller_id_name="Bob",
                status="ERROR",
                started_at=now - timedelta(hours=1),
                turns=[
                    Turn(user_input="hello", response="Sorry.", status="ERROR", error="llm_error: HTTP 500")
                ],
            ),
            Call(
                source="call",
                channel_id="ch-3",
                uniqueid="u-3",
                caller_id_number="5551000",
                status="OK",
                started_at=now,
            ),
        ]
        session.add_all(calls)
        await session.commit()
        return [c.id for c in calls]


async def test_call_list_filters_and_detail(app: FastAPI, client: httpx.AsyncClient) -> None:
    ids = await seed_calls(app)
    page = (await client.get("/api/v1/calls")).json()
    assert page["total"] == 3
    assert [c["id"] for c in page["items"]] == list(reversed(ids))  # newest first
    assert page["items"][-1]["turn_count"] == 1

    assert (await client.get("/api/v1/calls", params={"status": "ERROR"})).json()["total"] == 1
    assert (await client.get("/api/v1/calls", params={"caller_id": "555123"})).json()["total"] == 1
    assert (await client.get("/api/v1/calls", params={"caller_id": "alice"})).json()["total"] == 1
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert (await client.get("/api/v1/calls", params={"since": since})).json()["total"] == 2
    until = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert (await client.get("/api/v1/calls", params={"until": until})).json()["total"] == 1
    assert len((await client.get("/api/v1/calls", params={"limit": 1, "offset": 1})).json()["items"]) == 1

    detail = (await client.get(f"/api/v1/calls/{ids[0]}")).json()
    assert detail["caller_id_name"] == "Alice"
    turn = detail["turns"][0]
    assert turn["user_input"] == "where is my order 42"
    assert turn["response"] == "It shipped."
    assert turn["latency_ms"] == 420
    assert turn["tool_calls"][0]["name"] == "check_order"
    assert turn["tool_calls"][0]["args"] == {"order_id": "42"}
    assert (await client.get("/api/v1/calls/99999")).status_code == 404
    bad = await client.get("/api/v1/calls", params={"since": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "since"


async def test_chat_runs_a_turn_with_a_tool_and_logs_it(
    client: httpx.AsyncClient, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    tool = (await client.post("/api/v1/tools", json=tool_body(tool_api.url + "/orders/{order_id}"))).json()
    await client.post(
        "/api/v1/prompts", json={"name": "support", "content": "Help with orders.", "tools": [tool["name"]]}
    )
    fake_llm.script(
        "CHAT-1", [ToolCallReply([("check_order", {"order_id": "42"})]), TextReply("Order 42 has shipped.")]
    )
    response = await client.post(
        "/api/v1/chat",
        json={"message": "CHAT-1 where is order 42?", "prompt_name": "support", "model": "openai"},
    )
    assert response.status_code == 200, response.text
    chat: dict[str, Any] = response.json()
    assert chat["reply"] == "Order 42 has shipped."
    assert chat["status"] == "OK"
    assert chat["tool_calls"][0]["name"] == "check_order"
    assert chat["turn"]["response"] == "Order 42 has shipped."
    assert tool_api.requests[-1]["path"] == "/orders/42"
    assert fake_llm.requests[0].system and "Help with orders." in fake_llm.requests[0].system

    # the conversation continues with memory, and the call log shows both turns
    fake_llm.script("CHAT-1", [TextReply("You're welcome.")])
    again = await client.post(
        "/api/v1/chat",
        json={
            "conversation_id": chat["conversation_id"],
            "message": "CHAT-1 thanks",
            "prompt_name": "support",
        },
    )
    assert again.json()["call_id"] == chat["call_id"]
    assert "where is order 42" in " ".join(fake_llm.requests[-1].user_texts)
    call = (await client.get(f"/api/v1/calls/{chat['call_id']}")).json()
    assert call["source"] == "chat"
    assert [t["response"] for t in call["turns"]] == ["Order 42 has shipped.", "You're welcome."]
    assert call["turns"][0]["tool_calls"][0]["args"] == {"order_id": "42"}


async def test_chat_validates_prompt_and_model(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/chat", json={"message": "hi", "prompt_name": "nope"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "prompt_name"
    response = await client.post("/api/v1/chat", json={"message": "hi", "model": "claude"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "model"
    response = await client.post("/api/v1/chat", json={"message": ""})
    assert response.json()["error"]["field"] == "message"


async def test_metrics_expose_turns_and_tool_calls(
    client: httpx.AsyncClient, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    tool = (await client.post("/api/v1/tools", json=tool_body(tool_api.url + "/orders/{order_id}"))).json()
    await client.post("/api/v1/prompts/1/default")
    await client.patch("/api/v1/prompts/1", json={"tools": [tool["name"]]})
    fake_llm.script("M-1", [ToolCallReply([("check_order", {"order_id": "7"})]), TextReply("Done.")])
    await client.post("/api/v1/chat", json={"message": "M-1 order 7"})
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "aigw_turns_total",
        "aigw_turn_latency_seconds_bucket",
        "aigw_llm_latency_seconds_bucket",
        "aigw_tool_call_latency_seconds_bucket",
        "aigw_active_calls",
        "aigw_ari_connected",
        "aigw_ari_reconnects_total",
    ):
        assert name in text, name
    assert 'aigw_turns_total{model="openai:gpt-4o-mini",status="OK"} 1.0' in text
    assert 'tool="check_order"' in text


async def _voice_status(c: httpx.AsyncClient) -> dict[str, Any]:
    """`/api/v1/status`'s voice line, once the Asterisk version check has run."""
    for _ in range(100):
        voice: dict[str, Any] = (await c.get("/api/v1/status")).json()["voice"]
        if voice["asterisk_version"]:
            return voice
        await asyncio.sleep(0.05)
    raise AssertionError("the Asterisk version was never checked")


async def test_status_and_dashboard_show_the_media_listener_and_a_supported_asterisk(
    api_settings: Callable[..., Settings], fake_ari: FakeAriServer
) -> None:
    assert fake_ari.asterisk_version == "23.4.0"
    settings = api_settings(ari_enabled=True, voice_stt_provider="openai", voice_codec="slin16")
    async with run_gateway(settings, fake_ari) as app, make_client(app) as c:
        voice = await _voice_status(c)
        port = state_of(app).voice.listener.port  # type: ignore[union-attr]
        assert voice == {
            "connection_type": "client",
            "media": f"client mode: listening on 127.0.0.1:{port} (/media)",
            "media_ok": True,
            "listen_port": port,
            "asterisk_version": "23.4.0",
            "supported": True,
            "detail": "Asterisk 23.4.0: voice mode available",
            "codec": "slin16",
            "stt_provider": "openai",
            "tts_provider": "espeak",
        }
        dashboard = (await c.get("/ui")).text
        assert "Voice mode" in dashboard and "Ready" in dashboard
        assert "Asterisk 23.4.0: voice mode available" in dashboard
        assert "STT openai · TTS espeak · slin16" in dashboard


async def test_status_says_voice_mode_needs_a_newer_asterisk_in_server_mode(
    api_settings: Callable[..., Settings],
) -> None:
    async with FakeAriServer(asterisk_version="22.5.0") as pbx:
        settings = api_settings(
            ari_enabled=True,
            asterisk_ari_url=pbx.base_url,
            asterisk_ari_username=pbx.username,
            asterisk_ari_password=pbx.password,
            voice_media_connection_type="server",
            voice_server_media_url="ws://pbx.example:8088",
        )
        async with run_gateway(settings, pbx) as app, make_client(app) as c:
            voice = await _voice_status(c)
            assert voice["media"] == "server mode: connects to ws://pbx.example:8088/media/<connection id>"
            assert (voice["media_ok"], voice["listen_port"], voice["supported"]) == (True, None, False)
            assert voice["detail"] == (
                "Asterisk 22.5.0 is too old: voice mode needs Asterisk 20.18, 22.8 or 23.2 (or newer)"
            )
            assert "Too old" in (await c.get("/ui")).text


async def test_status_has_no_voice_line_without_ari(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/status")).json()["voice"] is None
