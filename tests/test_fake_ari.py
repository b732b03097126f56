"""Tests of the fake Asterisk ARI server itself, with plain httpx and websockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.testing.ari_spec import AriSpecViolation, match_operation
from app.testing.fake_ari import FakeAriServer, split_stasis_app_data

REPO = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "ari_samples"
SPEC_DIR = REPO.parent / "shared" / "ari-api-docs"
APP = "ai_ari_app"
AUTH = ("asterisk", "asterisk")


def sample(name: str) -> Any:
    """Load a captured ARI sample."""
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def key_shape(value: Any) -> Any:
    """Recursive key structure of a JSON value (dict keys, list element shapes)."""
    if isinstance(value, dict):
        return {k: key_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [key_shape(v) for v in value[:1]]
    return type(value).__name__


@pytest.fixture
async def ari() -> AsyncIterator[FakeAriServer]:
    """A running fake on a free port."""
    async with FakeAriServer() as server:
        yield server


@pytest.fixture
async def client(ari: FakeAriServer) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client authenticated against the fake's /ari."""
    async with httpx.AsyncClient(base_url=ari.ari_url, auth=AUTH) as c:
        yield c


def ws_url(ari: FakeAriServer, app: str = APP) -> str:
    """Event WebSocket URL with api_key auth."""
    base = ari.ari_url.replace("http://", "ws://")
    return f"{base}/events?app={app}&subscribeAll=false&api_key=asterisk:asterisk"


async def next_event(ws: websockets.ClientConnection, wait: float = 2.0) -> Any:
    """Receive and decode one event."""
    return json.loads(await asyncio.wait_for(ws.recv(), wait))


async def test_stasis_start_matches_sample_shape(ari: FakeAriServer) -> None:
    """StasisStart has the captured sample's keys, args and dialplan."""
    async with websockets.connect(ws_url(ari)) as ws:
        await ari.wait_for_ws(APP, 2)
        chan = await ari.place_call(
            "ai_ari_app,USER_INPUT=hello world, how are you,UNIQUEID=1795437522.22,AI_PROMPT_NAME=greeting",
            channel_vars={"USER_INPUT": "hello world, how are you"},
        )
        event = await next_event(ws)
    expected = sample("StasisStart-ai-test.json")
    assert key_shape(event) == key_shape(expected)
    assert list(event) == sorted(event)
    assert event["args"] == expected["args"]
    assert event["channel"]["id"] == chan.id
    assert event["channel"]["dialplan"] == {
        **expected["channel"]["dialplan"],
    }
    assert event["channel"]["state"] == "Ring"
    assert event["asterisk_id"] == "02:fc:00:00:00:01"
    assert len(event["timestamp"]) == len(expected["timestamp"])
    assert event["timestamp"].endswith("+0000")
    assert chan.in_stasis
    assert ari.spec_violations == []


def test_comma_split_keeps_spaces() -> None:
    """Stasis() data splits on every comma and keeps leading spaces."""
    app, args = split_stasis_app_data("ai_ari_app,USER_INPUT=hello, how are you,UNIQUEID=123")
    assert app == "ai_ari_app"
    assert args == ["USER_INPUT=hello", " how are you", "UNIQUEID=123"]


async def test_setvar_emits_channel_varset(ari: FakeAriServer, client: httpx.AsyncClient) -> None:
    """POST /variable answers 204, stores the value and emits ChannelVarset."""
    async with websockets.connect(ws_url(ari)) as ws:
        await ari.wait_for_ws(APP, 2)
        chan = await ari.place_call(f"{APP},USER_INPUT=hi")
        await next_event(ws)
        value = "Sure! I can help; what do you need?"
        r = await client.post(
            f"/channels/{chan.id}/variable",
            params={"variable": "AI_RESPONSE", "value": value},
        )
        assert r.status_code == 204
        event = await next_event(ws)
    expected = sample("ChannelVarset-AI_RESPONSE.json")
    assert key_shape(event) == key_shape(expected)
    assert (event["type"], event["variable"], event["value"]) == (
        "ChannelVarset",
        "AI_RESPONSE",
        value,
    )
    assert chan.variables["AI_RESPONSE"] == value
    assert chan.operations == [("setvar", "AI_RESPONSE", value)]
    r = await client.get(f"/channels/{chan.id}/variable", params={"variable": "AI_RESPONSE"})
    assert r.json() == {"value": value}
    assert ari.spec_violations == []


async def test_get_variable_builtin_and_missing(ari: FakeAriServer, client: httpx.AsyncClient) -> None:
    """UNIQUEID is the builtin; unset variables answer 404."""
    async with websockets.connect(ws_url(ari)):
        await ari.wait_for_ws(APP, 2)
        chan = await ari.place_call(f"{APP},x", channel_vars={"UNIQUEID": "mine", "USER_INPUT": "a, b"})
        r = await client.get(f"/channels/{chan.id}/variable", params={"variable": "UNIQUEID"})
        assert r.json() == {"value": chan.id}
        r = await client.get(f"/channels/{chan.id}/variable", params={"variable": "USER_INPUT"})
        assert r.json() == {"value": "a, b"}
        r = await client.get(f"/channels/{chan.id}/variable", params={"variable": "NOPE"})
        assert r.status_code == 404
        assert r.json() == {"message": "Provided variable was not found"}
    assert ari.spec_violations == []


async def test_set_channel_vars_needs_recent_asterisk() -> None:
    """setChannelVars works from 22.10.0 and is a 404 on 22.5.0."""
    body = {"variables": {"A": "1", "B": {"value": "2", "report_events": True}}}
    async with FakeAriServer(asterisk_version="22.10.0") as ari:
        async with httpx.AsyncClient(base_url=ari.ari_url, auth=AUTH) as client:
            async with websockets.connect(ws_url(ari)) as ws:
                await ari.wait_for_ws(APP, 2)
                chan = await ari.place_call(f"{APP},x")
                await next_event(ws)
                r = await client.post(f"/channels/{chan.id}/variables", json=body)
                assert r.status_code == 204
                first, second = await next_event(ws), await next_event(ws)
        assert [first["variable"], second["variable"]] == ["A", "B"]
        assert second["channel"]["channelvars"] == {"B": "2"}
        assert chan.operations == [("setvar", "A", "1"), ("setvar", "B", "2")]
        assert ari.spec_violations == []
    async with FakeAriServer(asterisk_version="22.5.0") as old:
        async with httpx.AsyncClient(base_url=old.ari_url, auth=AUTH) as client:
            r = await client.post("/channels/1.1/variables", json=body)
        assert r.status_code == 404
        assert old.spec_violations == []


async def test_continue_emits_stasis_end_and_leaves(ari: FakeAriServer, client: httpx.AsyncClient) -> None:
    """/continue answers 204, emits StasisEnd; a second one gets 409."""
    async with websockets.connect(ws_url(ari)) as ws:
        await ari.wait_for_ws(APP, 2)
        chan = await ari.place_call(f"{APP},USER_INPUT=hi")
        await next_event(ws)
        r = await client.post(f"/channels/{chan.id}/continue")
        assert r.status_code == 204
        event = await next_event(ws)
        await chan.wait_left_stasis(1)
        assert key_shape(event) == key_shape(sample("StasisEnd.json"))
        assert event["type"] == "StasisEnd"
        assert not chan.in_stasis
        assert chan.variables["STASISSTATUS"] == "SUCCESS"
        assert chan.operations == [("continue", {})]
        r = await client.post(f"/channels/{chan.id}/continue")
        assert r.status_code == 409
        assert r.json() == {"message": "Channel not in Stasis application"}
        assert chan.continued_count == 2
    assert ari.spec_violations == []


async def test_parked_channels_survive_ws_drop(ari: FakeAriServer, client: httpx.AsyncClient) -> None:
    """After a WebSocket drop the channel stays parked in the app."""
    async with websockets.connect(ws_url(ari)) as ws:
        await ari.wait_for_ws(APP, 2)
        chan = await ari.place_call(f"{APP},x")
        await next_event(ws)
        await ari.drop_websockets()
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)
    r = await client.get(f"/applications/{APP}")
    assert r.status_code == 200
    data = r.json()
    assert data["channel_ids"] == [chan.id]
    assert set(data) == {
        "name",
        "channel_ids",
        "bridge_ids",
        "endpoint_ids",
        "device_names",
        "events_allowed",
        "events_disallowed",
    }
    assert ari.parked_channels(APP) == [chan.id]
    # Reconnecting does not replay StasisStart.
    async with websockets.connect(ws_url(ari)) as ws2:
        await ari.wait_for_ws(APP, 2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws2.recv(), 0.2)
        r = await client.delete(f"/channels/{chan.id}")
        assert r.status_code == 204
        hangup_request, stasis_end = await next_event(ws2), await next_event(ws2)
    assert (hangup_request["cause"], hangup_request["soft"]) == (32, True)
    assert key_shape(hangup_request) == key_shape(sample("ChannelHangupRequest-after-ari-DELETE.json"))
    assert stasis_end["type"] == "StasisEnd"
    # No channel and no WebSocket left: the application is destroyed.
    await ari.wait_until(lambda: not ari.is_app_registered(APP), 2)
    r = await client.get(f"/applications/{APP}")
    assert r.status_code == 404
    assert ari.spec_violations == []


async def test_stasis_fails_when_app_not_registered(ari: FakeAriServer) -> None:
    """Stasis() into an unregistered app fails with STASISSTATUS=FAILED."""
    chan = await ari.place_call(f"{APP},USER_INPUT=hi")
    assert chan.stasis_failed
    assert not chan.in_stasis
    assert chan.variables["STASISSTATUS"] == "FAILED"
    await chan.wait_left_stasis(0.1)


async def test_404_after_caller_hangup(ari: FakeAriServer, client: httpx.AsyncClient) -> None:
    """A caller hangup emits the hangup events; REST then answers 404."""
    async with websockets.connect(ws_url(ari)) as ws:
        await ari.wait_for_ws(APP, 2)
        chan = await ari.place_call(f"{APP},x")
        await next_event(ws)
        await ari.hangup_by_caller(chan.id)
        types = [(await next_event(ws))["type"] for _ in range(3)]
    assert types == ["ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"]
    r = await client.get(f"/channels/{chan.id}")
    assert r.status_code == 404
    r = await client.post(f"/channels/{chan.id}/continue")
    assert r.status_code == 404
    assert r.json() == {"message": "Channel not found"}
    assert ari.spec_violations == []


async def test_auth_required(ari: FakeAriServer) -> None:
    """REST and WebSocket need Basic auth or api_key."""
    async with httpx.AsyncClient(base_url=ari.ari_url) as anon:
        r = await anon.get("/asterisk/info")
        assert r.status_code == 401
        r = await anon.get("/asterisk/ping", params={"api_key": "asterisk:asterisk"})
        assert r.status_code == 200
        assert r.json()["ping"] == "pong"
    with pytest.raises(websockets.InvalidStatus):
        base = ari.ari_url.replace("http://", "ws://")
        async with websockets.connect(f"{base}/events?app={APP}"):
            pass


async def test_spec_violation_recorded(ari: FakeAriServer, client: httpx.AsyncClient) -> None:
    """Requests that break the ARI spec are recorded as violations."""
    r = await client.get("/channels/x/variable")
    assert r.status_code == 400
    assert len(ari.spec_violations) == 1
    assert "variable" in ari.spec_violations[0]
    r = await client.get("/nonsense")
    assert r.status_code == 404
    assert r.json() == {"message": "Resource not found"}
    assert len(ari.spec_violations) == 2
    assert [req.status for req in ari.requests] == [400, 404]


def test_match_operation() -> None:
    """match_operation finds operations and rejects bad requests."""
    op = match_operation("POST", "/ari/channels/1.2/continue", ["context", "api_key"])
    assert (op.resource, op.nickname) == ("channels", "continueInDialplan")
    op = match_operation("POST", "/ari/channels/externalMedia", ["app", "format"])
    assert op.nickname == "externalMedia"
    op = match_operation("GET", "/ari/events", ["app", "subscribeAll", "api_key"])
    assert op.nickname == "eventWebsocket"
    with pytest.raises(AriSpecViolation):
        match_operation("POST", "/ari/channels/1/continue", ["bogus"])
    with pytest.raises(AriSpecViolation):
        match_operation("POST", "/ari/channels/1/variables", [], {})
    with pytest.raises(AriSpecViolation):
        match_operation("PATCH", "/ari/channels/1", [])


async def test_session_limit_closes_extra_connections() -> None:
    """Connections past sessionlimit are closed without a reply."""
    async with FakeAriServer(session_limit=1) as ari:
        async with (
            httpx.AsyncClient(base_url=ari.ari_url, auth=AUTH) as first,
            httpx.AsyncClient(base_url=ari.ari_url, auth=AUTH) as second,
        ):
            assert (await first.get("/asterisk/ping")).status_code == 200
            with pytest.raises(httpx.TransportError):
                await second.get("/asterisk/ping")
        assert ari.refused_connections == 1


async def test_rest_unavailable_drops_requests(ari: FakeAriServer) -> None:
    """set_rest_available(False) drops requests unanswered."""
    ari.set_rest_available(False)
    async with httpx.AsyncClient(base_url=ari.ari_url, auth=AUTH) as client:
        with pytest.raises(httpx.TransportError):
            await client.get("/asterisk/ping")
        ari.set_rest_available(True)
        assert (await client.get("/asterisk/ping")).status_code == 200


@pytest.mark.skipif(not SPEC_DIR.is_dir(), reason="../shared/ari-api-docs not present")
def test_generated_operations_are_committed(tmp_path: Path) -> None:
    """The committed operation table is what the generator makes."""
    out = tmp_path / "ops.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "app" / "vendor" / "ari" / "generate.py"),
            SPEC_DIR,
            out,
        ],
        check=True,
        capture_output=True,
    )
    committed = REPO / "app" / "vendor" / "ari" / "operations.json"
    assert out.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8")


def test_samples_fixture_complete() -> None:
    """The ARI samples are copied into the fixtures."""
    assert (SAMPLES / "README.md").is_file()
    assert (SAMPLES / "StasisStart-ai-test.json").is_file()


async def test_slow_reader_is_dropped(ari: FakeAriServer) -> None:
    """An event reader that stops reading is dropped (websocket_write_timeout)."""
    ws = await websockets.connect(ws_url(ari), max_queue=1)
    try:
        await ari.wait_for_ws(APP, 2)
        ws.transport.pause_reading()
        payload = "".join(f"{i:x}" for i in range(40_000))  # ~150 kB
        for _ in range(400):
            await ari.send_event(APP, {"type": "ChannelUserevent", "data": payload})
            await asyncio.sleep(0.002)
            if ari.ws_count(APP) == 0:
                break
        assert ari.ws_count(APP) == 0
    finally:
        ws.transport.abort()


async def test_stop_with_open_websocket() -> None:
    """stop() closes a connected event WebSocket and returns promptly."""
    ari = FakeAriServer()
    await ari.start()
    async with websockets.connect(ws_url(ari)) as ws:
        await ari.wait_for_ws(APP, 2)
        await asyncio.wait_for(ari.stop(), 5)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)
