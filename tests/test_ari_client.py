"""The ARI client against the fake Asterisk: each method is a real ARI operation; errors map."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.metrics import Metrics
from app.services.telephony.ari_client import (
    AriClient,
    AriConflict,
    AriNotFound,
    AriUnavailable,
    create_ari_http_client,
)
from app.services.telephony.event_source import AriEventStream
from app.services.telephony.events import AriEvent, StasisStart
from app.testing.fake_ari import FakeAriServer

_opened: list[httpx.AsyncClient] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Close the HTTP clients a test made with `client_for` (their aiohttp sessions)."""
    yield
    while _opened:
        await _opened.pop().aclose()


def client_for(server: FakeAriServer, password: str | None = None, **kw: Any) -> AriClient:
    http = create_ari_http_client(
        server.ari_url,
        server.username,
        password or server.password,
        max_connections=kw.pop("max_connections", 10),
        timeout_seconds=kw.pop("timeout", 2.0),
    )
    _opened.append(http)
    return AriClient(http, **kw)


async def stream_for(
    server: FakeAriServer, events: list[AriEvent], password: str | None = None
) -> AriEventStream:
    url = server.ari_url.replace("http://", "ws://") + "/events?app=ai_ari_app&subscribeAll=false"
    return AriEventStream(
        url,
        server.username,
        password or server.password,
        on_event=events.append,
        metrics=Metrics(),
        min_backoff_s=0.05,
        max_backoff_s=0.2,
    )


async def test_every_method_is_an_ari_operation(fake_ari: FakeAriServer) -> None:
    events: list[AriEvent] = []
    stream = await stream_for(fake_ari, events)
    task = asyncio.create_task(stream.run())
    await fake_ari.wait_for_ws()
    chan = await fake_ari.place_call("ai_ari_app,USER_INPUT=hi", channel_vars={"GREETING": "hello, there"})
    ari = client_for(fake_ari)
    try:
        assert (await ari.get_channel(chan.id))["id"] == chan.id
        assert await ari.get_channel_var(chan.id, "GREETING") == "hello, there"
        assert await ari.get_channel_var(chan.id, "NOT_SET") is None
        await ari.set_channel_var(chan.id, "ONE", "1")
        await ari.set_channel_vars(chan.id, {"AI_RESPONSE": "hi, caller", "AI_STATUS": "OK"})
        assert (await ari.get_application("ai_ari_app"))["channel_ids"] == [chan.id]
        assert "system" in await ari.get_asterisk_info()
        await ari.continue_in_dialplan(chan.id)
        with pytest.raises(AriConflict):
            await ari.continue_in_dialplan(chan.id)
        other = await fake_ari.place_call("ai_ari_app,USER_INPUT=bye")
        await ari.hangup(other.id)
        with pytest.raises(AriNotFound):
            await ari.get_channel_var(other.id, "X")
        with pytest.raises(AriNotFound):
            await ari.continue_in_dialplan("no-such-channel")
    finally:
        await stream.stop()
        task.cancel()
    ops = [r.operation for r in fake_ari.requests]
    for op in (
        "events.eventWebsocket",
        "channels.get",
        "channels.getChannelVar",
        "channels.setChannelVar",
        "channels.setChannelVars",
        "applications.get",
        "asterisk.getInfo",
        "channels.continueInDialplan",
        "channels.hangup",
    ):
        assert op in ops, op
    assert chan.get_variable("AI_RESPONSE") == "hi, caller"
    assert any(isinstance(e, StasisStart) and e.channel.id == chan.id for e in events)


async def test_unreachable_ari_raises_unavailable(fake_ari: FakeAriServer) -> None:
    ari = client_for(fake_ari, attempts=2)
    fake_ari.set_rest_available(False)
    with pytest.raises(AriUnavailable):
        await ari.get_asterisk_info()
    fake_ari.set_rest_available(True)
    assert await ari.get_asterisk_info()


async def test_requests_over_the_session_limit_are_retried() -> None:
    # Asterisk closes connections past http.conf sessionlimit without replying; the
    # client retries such requests, so a continue is not lost.
    server = FakeAriServer(asterisk_version="23.4.0", session_limit=4)
    await server.start()
    try:
        ari = client_for(server, max_connections=8, attempts=6)
        results = await asyncio.gather(*(ari.get_asterisk_info() for _ in range(40)), return_exceptions=True)
        assert all(isinstance(r, dict) for r in results), [r for r in results if not isinstance(r, dict)][:3]
        assert server.refused_connections > 0
    finally:
        await server.stop()
    assert server.spec_violations == []


async def test_event_stream_reconnects_and_reports_state(fake_ari: FakeAriServer) -> None:
    events: list[AriEvent] = []
    stream = await stream_for(fake_ari, events)
    task = asyncio.create_task(stream.run())
    try:
        await asyncio.wait_for(stream.connected.wait(), 5)
        assert stream.status()["state"] == "connected"
        await fake_ari.drop_websockets()
        await fake_ari.wait_for_ws(timeout=5)
        await asyncio.wait_for(stream.connected.wait(), 5)
        assert stream.reconnects >= 1
        chan = await fake_ari.place_call("ai_ari_app,USER_INPUT=after")
        for _ in range(100):
            if any(isinstance(e, StasisStart) and e.channel.id == chan.id for e in events):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("no StasisStart after reconnect")
        assert stream.status()["last_event_at"] is not None
    finally:
        await stream.stop()
        task.cancel()


async def test_wrong_credentials_keep_retrying_without_crashing(fake_ari: FakeAriServer) -> None:
    stream = await stream_for(fake_ari, [], password="wrong")
    task = asyncio.create_task(stream.run())
    try:
        await asyncio.sleep(0.5)
        assert stream.state == "reconnecting" and stream.reconnects >= 2
        assert not task.done()
    finally:
        await stream.stop()
        task.cancel()
