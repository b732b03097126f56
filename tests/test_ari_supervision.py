"""A gateway that has stopped taking calls must not look healthy, and must not stay stopped.

A bug that ends the ARI event reader is simulated by an exception injected where the
reader parses an event: the supervisor restarts the reader, logs and counts it, and the
next call is answered. `/readyz` follows the Stasis application's connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.services.telephony import event_source
from app.services.telephony.events import AriEvent
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer, TextReply
from tests.conftest import run_gateway, state_of
from tests.test_call_path import final_vars


def restarts(app: FastAPI) -> float:
    value = state_of(app).metrics.registry.get_sample_value("aigw_ari_reader_restarts_total")
    return value or 0.0


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


async def test_a_crashed_event_reader_is_restarted_and_the_next_call_is_answered(
    make_settings: Callable[..., Settings],
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_parse = event_source.parse_event
    fired: list[bool] = []

    def parse_with_a_bug(frame: str | bytes) -> AriEvent:
        # One bug, once: later events about the same (recovered) channel parse normally.
        if not fired and "BOOM-1" in (frame if isinstance(frame, str) else frame.decode()):
            fired.append(True)
            raise RuntimeError("injected bug in event handling")
        return real_parse(frame)

    monkeypatch.setattr(event_source, "parse_event", parse_with_a_bug)
    caplog.set_level(logging.INFO)
    async with run_gateway(make_settings(), fake_ari) as app:
        await fake_ari.place_call("ai_ari_app,USER_INPUT=BOOM-1 hello")
        await wait_for(lambda: restarts(app) >= 1)
        await fake_ari.wait_for_ws("ai_ari_app", timeout=10)
        fake_llm.script("NEXT-1", [TextReply("the next caller is answered")])
        chan = await fake_ari.place_call("ai_ari_app,USER_INPUT=NEXT-1 hello")
        await chan.wait_left_stasis(10)
        assert final_vars(chan)["AI_STATUS"] == "OK"
        assert final_vars(chan)["AI_RESPONSE"] == "the next caller is answered"
        assert restarts(app) == 1
    crash_lines = [
        r for r in caplog.records if "ARI event reader ended on an unexpected RuntimeError" in r.message
    ]
    assert len(crash_lines) == 1 and crash_lines[0].exc_info is not None


async def get_readyz(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.get("/readyz")


async def test_readyz_follows_the_stasis_application_connection(
    make_settings: Callable[..., Settings], fake_ari: FakeAriServer
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        ready = await get_readyz(app)
        assert ready.status_code == 200 and ready.json()["ari"]["ok"] is True
        # Asterisk goes away: the event WebSocket drops and reconnecting fails.
        fake_ari.set_rest_available(False)
        await fake_ari.drop_websockets()
        events = state_of(app).ari_events
        assert events is not None
        await wait_for(lambda: events.state != "connected")
        down = await get_readyz(app)
        assert down.status_code == 503
        assert down.json()["status"] == "not_ready"
        assert "ai_ari_app" in down.json()["ari"]["error"]
        assert down.json()["database"]["ok"] and down.json()["redis"]["ok"]
        fake_ari.set_rest_available(True)
        await fake_ari.wait_for_ws("ai_ari_app", timeout=10)
        await wait_for(lambda: events.state == "connected")
        assert (await get_readyz(app)).status_code == 200


async def test_readyz_can_ignore_ari_for_admin_only_deployments(
    make_settings: Callable[..., Settings], fake_ari: FakeAriServer
) -> None:
    async with run_gateway(make_settings(readyz_require_ari=False), fake_ari) as app:
        fake_ari.set_rest_available(False)
        await fake_ari.drop_websockets()
        events = state_of(app).ari_events
        assert events is not None
        await wait_for(lambda: events.state != "connected")
        ready = await get_readyz(app)
        assert ready.status_code == 200 and ready.json()["ari"] is None
        fake_ari.set_rest_available(True)
