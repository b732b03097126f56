"""The fake Asterisk's media side, driven by a small websockets "app" (no gateway involved).

Facts checked here come from a real PBX: ``tests/fixtures/media/chan_websocket.json``
(trimmed from ``../shared/ari-samples/media/``).
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import Server, ServerConnection

from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_caller import FakeCaller, synthesize

FIXTURE = json.loads(
    (Path(__file__).resolve().parent / "fixtures" / "media" / "chan_websocket.json").read_text("utf-8")
)
APP = "ai_ari_app"
AUTH = ("asterisk", "asterisk")


def tone(seconds: float, rate_hz: int = 16000, freq_hz: float = 440.0) -> bytes:
    """A loud sine as s16le PCM."""
    n = int(seconds * rate_hz)
    return struct.pack(
        f"<{n}h", *(int(8000 * math.sin(2 * math.pi * freq_hz * i / rate_hz)) for i in range(n))
    )


def ulaw_tone(frames: int) -> bytes:
    """``frames`` 20 ms μ-law frames of a loud, non-silent pattern."""
    pattern = bytes([0x10, 0x90, 0x20, 0xA0])
    return (pattern * (160 * frames // 4 + 1))[: 160 * frames]


def key_shape(value: Any) -> Any:
    """Recursive key structure of a JSON value."""
    if isinstance(value, dict):
        return {k: key_shape(v) for k, v in value.items()}
    return type(value).__name__


@dataclass
class AppMedia:
    """The application's end of one media WebSocket."""

    conn: ClientConnection | ServerConnection
    texts: asyncio.Queue[dict[str, Any] | str] = field(default_factory=asyncio.Queue)
    binary: list[tuple[float, bytes]] = field(default_factory=list)
    text_times: list[float] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Read in the background."""
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for message in self.conn:
                if isinstance(message, bytes):
                    self.binary.append((loop.time(), message))
                else:
                    self.text_times.append(loop.time())
                    try:
                        await self.texts.put(json.loads(message))
                    except ValueError:
                        await self.texts.put(message)
        except websockets.ConnectionClosed:
            pass

    async def command(self, command: str, **fields: Any) -> None:
        """Send a JSON control message."""
        await self.conn.send(json.dumps({"command": command, **fields}))

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next control message from Asterisk."""
        message = await asyncio.wait_for(self.texts.get(), timeout)
        assert isinstance(message, dict)
        return message

    async def wait_event(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        """Skip control messages until one named ``name``."""
        while True:
            message = await self.next_event(timeout)
            if message.get("event") == name:
                return message

    async def status(self) -> dict[str, Any]:
        """GET_STATUS round trip."""
        await self.command("GET_STATUS")
        return await self.wait_event("STATUS")


@dataclass
class Call:
    """A call whose Stasis channel and external channel are bridged."""

    chan: FakeChannel
    external_id: str
    bridge_id: str
    media: AppMedia
    caller: FakeCaller


class Rig:
    """A fake PBX, an httpx ARI client and the app's media WebSocket server."""

    def __init__(self, fake: FakeAriServer, http: httpx.AsyncClient, server: Server) -> None:
        self.fake = fake
        self.http = http
        self.server = server
        self.incoming: asyncio.Queue[tuple[ServerConnection, asyncio.Event]] = asyncio.Queue()

    async def external_media(self, mode: str, fmt: str, **extra: str) -> httpx.Response:
        params = {
            "app": APP,
            "format": fmt,
            "transport": "websocket",
            "encapsulation": "none",
            "connection_type": mode,
            **extra,
        }
        if mode == "client":
            params.setdefault("external_host", "media_connection1")
        return await self.http.post("/channels/externalMedia", params=params)

    async def accept(self) -> AppMedia:
        conn, _done = await asyncio.wait_for(self.incoming.get(), 5)
        media = AppMedia(conn)
        media.start()
        return media

    async def connect(self, connection_id: str, subprotocol: bool = True) -> AppMedia:
        url = f"ws://{self.fake.host}:{self.fake.port}/media/{connection_id}"
        protocols = [websockets.Subprotocol("media")] if subprotocol else None
        conn = await websockets.connect(url, subprotocols=protocols, max_size=None, compression=None)
        media = AppMedia(conn)
        media.start()
        return media

    async def call(self, mode: str = "client", fmt: str = "ulaw") -> Call:
        chan = await self.fake.place_call(f"{APP},AI_MODE=voice", state="Up")
        caller = FakeCaller(self.fake, chan)
        response = await self.external_media(mode, fmt)
        assert response.status_code == 200
        body = response.json()
        if mode == "client":
            media = await self.accept()
        else:
            media = await self.connect(body["channelvars"]["MEDIA_WEBSOCKET_CONNECTION_ID"])
        start = await media.next_event()
        assert start["event"] == "MEDIA_START"
        external = self.fake.channels[body["id"]]
        await self.fake.wait_until(lambda: external.in_stasis)
        bridge = (await self.http.post("/bridges", params={"type": "mixing"})).json()
        added = await self.http.post(
            f"/bridges/{bridge['id']}/addChannel", params={"channel": f"{chan.id},{body['id']}"}
        )
        assert added.status_code == 204
        return Call(chan, body["id"], bridge["id"], media, caller)

    def events_for(self, channel_id: str, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.fake.events[since:] if e.get("channel", {}).get("id") == channel_id]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """Fake PBX with websocket_client.conf pointing at the test's media server."""
    incoming: asyncio.Queue[tuple[ServerConnection, asyncio.Event]] = asyncio.Queue()
    paths: list[str] = []

    async def handler(conn: ServerConnection) -> None:
        assert conn.request is not None
        paths.append(conn.request.path)
        done = asyncio.Event()
        await incoming.put((conn, done))
        await conn.wait_closed()

    async with websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=[websockets.Subprotocol("media")],
        max_size=None,
        compression=None,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        fake = FakeAriServer(
            apps_known=[APP],
            websocket_clients={"media_connection1": f"ws://127.0.0.1:{port}/media"},
            sound_duration_s=0.2,
        )
        async with fake, httpx.AsyncClient(base_url=fake.ari_url, auth=AUTH) as http:
            r = Rig(fake, http, server)
            r.incoming = incoming
            r.paths = paths  # type: ignore[attr-defined]
            yield r
            # Every request the tests made is on Asterisk's spec table.
            assert fake.spec_violations == []


# ---------------------------------------------------------------- connecting


@pytest.mark.parametrize("fmt", ["ulaw", "slin16"])
async def test_client_mode_handshake_media_start_and_bridge_events(rig: Rig, fmt: str) -> None:
    """Asterisk connects to the app, MEDIA_START comes first, then StasisStart; addChannel events as captured."""
    chan = await rig.fake.place_call(f"{APP},AI_MODE=voice", state="Up")
    response = await rig.external_media("client", fmt, transport_data="v(call_id=abc123,lang=en)")
    assert response.status_code == 200
    body = response.json()
    expected = FIXTURE["externalMedia_response"][f"client_{fmt}"]
    assert key_shape(body) == key_shape(expected)
    assert body["state"] == "Down"
    assert body["channelvars"] == expected["channelvars"]
    assert body["name"].startswith("WebSocket/media_connection1/0x")

    media = await rig.accept()
    assert rig.paths == ["/media?call_id=abc123&lang=en"]  # type: ignore[attr-defined]
    assert media.conn.subprotocol == "media"
    start = await media.next_event()
    captured = FIXTURE["MEDIA_START"][f"client_{fmt}"]
    assert key_shape(start) == key_shape(captured)
    assert start["channel_id"] == body["id"]
    assert (start["format"], start["optimal_frame_size"], start["ptime"]) == (
        fmt,
        captured["optimal_frame_size"],
        20,
    )
    external = rig.fake.channels[body["id"]]
    await rig.fake.wait_until(lambda: external.in_stasis)
    stasis_start = [e for e in rig.events_for(body["id"]) if e["type"] == "StasisStart"]
    assert [(e["args"], e["channel"]["state"]) for e in stasis_start] == [([], "Up")]
    assert key_shape(stasis_start[0]["channel"]) == key_shape(FIXTURE["external_StasisStart"]["channel"])

    bridge = (await rig.http.post("/bridges", params={"type": "mixing"})).json()
    assert (bridge["bridge_type"], bridge["technology"], bridge["channels"]) == (
        "mixing",
        "simple_bridge",
        [],
    )
    mark = len(rig.fake.events)
    added = await rig.http.post(
        f"/bridges/{bridge['id']}/addChannel", params={"channel": f"{chan.id},{body['id']}"}
    )
    assert added.status_code == 204
    await rig.fake.wait_until(lambda: len(rig.fake.events) >= mark + 6)
    got = [
        (e["type"], "external" if e["channel"]["id"] == body["id"] else "stasis;2")
        for e in rig.fake.events[mark:]
    ]
    want = [(e["type"], e["channel"]) for e in FIXTURE["bridge_timeline_client"]]
    assert got == want
    fetched = (await rig.http.get(f"/bridges/{bridge['id']}")).json()
    assert fetched["channels"] == [chan.id, body["id"]]


async def test_client_mode_media_start_can_beat_the_rest_response(rig: Rig) -> None:
    """connect_before_response: MEDIA_START and StasisStart happen before the POST returns."""
    rig.fake.media.connect_before_response = True
    loop = asyncio.get_running_loop()
    request = asyncio.create_task(rig.external_media("client", "ulaw"))
    answered: list[float] = []
    request.add_done_callback(lambda _: answered.append(loop.time()))
    media = await rig.accept()
    start = await media.next_event()
    assert start["event"] == "MEDIA_START"
    response = await request
    assert response.json()["id"] == start["channel_id"]
    assert media.text_times[0] < answered[0]
    stasis = [e for e in rig.events_for(start["channel_id"]) if e["type"] == "StasisStart"]
    assert len(stasis) == 1


async def test_server_mode_addchannel_422_until_app_connects(rig: Rig) -> None:
    """Server mode: Down and out of Stasis until the app connects; 404 wrong id, 409 second connection."""
    chan = await rig.fake.place_call(f"{APP},AI_MODE=voice", state="Up")
    body = (await rig.external_media("server", "ulaw")).json()
    connection_id = body["channelvars"]["MEDIA_WEBSOCKET_CONNECTION_ID"]
    assert body["name"].startswith("WebSocket/INCOMING/0x") and connection_id != "media_connection1"
    bridge = (await rig.http.post("/bridges", params={"type": "mixing"})).json()
    early = await rig.http.post(
        f"/bridges/{bridge['id']}/addChannel", params={"channel": f"{chan.id},{body['id']}"}
    )
    captured = FIXTURE["addChannel_before_StasisStart"]
    assert (early.status_code, early.json()) == (captured["status"], captured["body"])
    assert not [e for e in rig.events_for(body["id"]) if e["type"] == "StasisStart"]

    with pytest.raises(websockets.InvalidStatus) as wrong:
        await rig.connect("no-such-id")
    assert wrong.value.response.status_code == 404
    assert b"WebSocket instance not found" in wrong.value.response.body

    media = await rig.connect(connection_id, subprotocol=False)  # accepted without a subprotocol too
    start = await media.next_event()
    assert key_shape(start) == key_shape(FIXTURE["MEDIA_START"]["server_ulaw"])
    assert start["connection_id"] == connection_id
    external = rig.fake.channels[body["id"]]
    await rig.fake.wait_until(lambda: external.in_stasis)
    assert external.state == "Up"
    with pytest.raises(websockets.InvalidStatus) as second:
        await rig.connect(connection_id)
    assert second.value.response.status_code == 409
    added = await rig.http.post(
        f"/bridges/{bridge['id']}/addChannel", params={"channel": f"{chan.id},{body['id']}"}
    )
    assert added.status_code == 204


async def test_client_mode_nobody_listening_destroys_channel_cause_3(rig: Rig) -> None:
    """websocket_client.conf URI with nobody there: 200, then ChannelDestroyed cause 3, no StasisStart."""
    rig.fake.media.websocket_clients["nobody"] = "ws://127.0.0.1:9/media"
    body = (await rig.external_media("client", "ulaw", external_host="nobody")).json()
    assert body["state"] == "Down"
    await rig.fake.wait_until(lambda: rig.fake.channels[body["id"]].hung_up, timeout=3)
    types = [(e["type"], e.get("cause")) for e in rig.events_for(body["id"])]
    assert types == [("ChannelDestroyed", 3)]


# ---------------------------------------------------------------- audio


@pytest.mark.parametrize("fmt", ["ulaw", "slin16"])
async def test_caller_audio_is_paced_frames_only_while_bridged(rig: Rig, fmt: str) -> None:
    """Caller speech arrives as 20 ms frames in real time; silence may be no frames at all."""
    call = await rig.call("client", fmt)
    frame_bytes = 160 if fmt == "ulaw" else 640
    await call.caller.play(tone(0.5))
    await asyncio.sleep(0.05)
    frames = list(call.media.binary)
    assert [len(f) for _, f in frames] == [frame_bytes] * 25
    assert frames[-1][0] - frames[0][0] >= 0.4  # real time, not a burst

    call.media.binary.clear()
    await call.caller.silence(0.2, send_frames=False)
    assert call.media.binary == []
    await call.caller.silence(0.2, send_frames=True)
    await asyncio.sleep(0.05)
    assert len(call.media.binary) == 10
    assert {f for _, f in call.media.binary} == {b"\xff" * 160 if fmt == "ulaw" else b"\x00" * 640}

    # Out of the bridge, the app hears nothing of the caller.
    call.media.binary.clear()
    removed = await rig.http.post(
        f"/bridges/{call.bridge_id}/removeChannel", params={"channel": call.chan.id}
    )
    assert removed.status_code == 204
    await call.caller.play(tone(0.1))
    assert call.media.binary == []


async def test_app_audio_plays_one_frame_per_tick_marks_and_drained(rig: Rig) -> None:
    """1 s sent at once is heard over ~1 s; the mark comes after it, QUEUE_DRAINED after that, once."""
    call = await rig.call()
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await call.media.conn.send(ulaw_tone(50))
    await call.media.command("MARK_MEDIA", correlation_id="mark-1")
    await call.media.command("REPORT_QUEUE_DRAINED")
    mark = await call.media.wait_event("MEDIA_MARK_PROCESSED")
    mark_at = loop.time()
    assert mark == FIXTURE["mark"]["MEDIA_MARK_PROCESSED"] | {"channel_id": call.external_id}
    drained = await call.media.wait_event("QUEUE_DRAINED")
    assert drained == {"event": "QUEUE_DRAINED", "channel_id": call.external_id}
    heard = call.caller.recording.frames
    assert len(heard) == 50 and all(len(f.payload) == 160 for f in heard)
    assert heard[-1].time - heard[0].time >= 0.9  # paced at 20 ms, not dumped
    assert mark_at >= heard[-1].time and mark_at - sent_at >= 0.95
    # One shot: no second QUEUE_DRAINED without another request.
    with pytest.raises(TimeoutError):
        await call.media.wait_event("QUEUE_DRAINED", timeout=0.1)


async def test_flow_control_xoff_at_900_xon_below_800_and_1000_frame_limit(rig: Rig) -> None:
    """XOFF when 900 frames are queued, XON below 800; a message at ≥ 1000 is dropped whole."""
    call = await rig.call()
    media = call.media
    await media.command("PAUSE_MEDIA")
    for _ in range(17):
        await media.conn.send(ulaw_tone(50))
    status = await media.status()
    assert (status["queue_length"], status["queue_full"]) == (850, False)
    await media.conn.send(ulaw_tone(50))
    xoff = await media.wait_event("MEDIA_XOFF")
    assert xoff == FIXTURE["flow_control"]["MEDIA_XOFF"] | {"channel_id": call.external_id}
    for _ in range(4):  # 900 → 1000, then two whole messages dropped
        await media.conn.send(ulaw_tone(50))
    status = await media.status()
    captured = FIXTURE["flow_control"]["status_after_burst"]
    assert {k: status[k] for k in ("queue_length", "queue_full")} == {
        "queue_length": 1000,
        "queue_full": True,
    }
    assert key_shape(status) == key_shape(captured)
    await media.command("CONTINUE_MEDIA")
    await media.wait_event("MEDIA_XON", timeout=8)
    status = await media.status()
    assert 790 <= status["queue_length"] < 800 and status["queue_full"] is False

    # 998 + one 50-frame message → 1048; the next one is dropped (captured).
    await media.command("PAUSE_MEDIA")
    await media.command("FLUSH_MEDIA")
    for _ in range(19):
        await media.conn.send(ulaw_tone(50))
    await media.conn.send(ulaw_tone(48))
    await media.conn.send(ulaw_tone(50))
    await media.conn.send(ulaw_tone(50))
    status = await media.status()
    assert status["queue_length"] == FIXTURE["flow_control"]["after_another_50_frame_message"]["queue_length"]
    assert rig.fake.media.session_for(call.external_id).dropped_messages == 3  # type: ignore[union-attr]


async def test_flush_drops_audio_and_pending_marks(rig: Rig) -> None:
    """FLUSH_MEDIA stops the audio within a frame and its queued mark is never reported."""
    call = await rig.call()
    media = call.media
    await media.conn.send(ulaw_tone(200))
    await media.command("MARK_MEDIA", correlation_id="mark-flushed")
    await asyncio.sleep(0.3)
    await media.command("FLUSH_MEDIA")
    flushed_at = asyncio.get_running_loop().time()
    status = await media.status()
    assert status["queue_length"] == 0
    await media.command("MARK_MEDIA", correlation_id="after")
    mark = await media.wait_event("MEDIA_MARK_PROCESSED")
    assert mark["correlation_id"] == "after"
    await asyncio.sleep(0.1)
    recording = call.caller.recording
    assert recording.audio_stopped_after(flushed_at - 0.05) <= flushed_at + 0.05  # within a tick or two
    assert 5 <= len(recording.frames) <= 25


async def test_buffering_keeps_odd_sized_messages_whole_frames_drop_the_rest(rig: Rig) -> None:
    """20 × 250 bytes: 20 frames without buffering (36 % lost); all 5000 bytes with START/STOP_MEDIA_BUFFERING."""
    call = await rig.call()
    media = call.media
    captured = FIXTURE["buffering"]
    chunk = ulaw_tone(2)[: captured["chunk_bytes"]]
    await media.command("PAUSE_MEDIA")
    for _ in range(captured["chunks"]):
        await media.conn.send(chunk)
    status = await media.status()
    assert status["queue_length"] == captured["without_buffering_queue_length"]
    await media.command("FLUSH_MEDIA")
    await media.command("CONTINUE_MEDIA")
    await media.command("START_MEDIA_BUFFERING")
    assert (await media.status())["bulk_media"] is True
    for _ in range(captured["chunks"]):
        await media.conn.send(chunk)
    await media.command("STOP_MEDIA_BUFFERING", correlation_id="buf-1")
    done = await media.wait_event("MEDIA_BUFFERING_COMPLETED", timeout=3)
    assert done == captured["MEDIA_BUFFERING_COMPLETED"] | {"channel_id": call.external_id}
    heard = sum(len(f.payload) for f in call.caller.recording.frames)
    assert heard == captured["chunks"] * captured["chunk_bytes"]


async def test_dtmf_reaches_ari_and_media_socket(rig: Rig) -> None:
    """A key press: ChannelDtmfReceived on the caller's Stasis channel and DTMF_END on the media socket."""
    call = await rig.call()
    await call.caller.press("1")
    await call.caller.press("#")
    first = await call.media.wait_event("DTMF_END")
    second = await call.media.wait_event("DTMF_END")
    assert [first["digit"], second["digit"]] == ["1", "#"]
    assert first == FIXTURE["dtmf"]["media"][0]["msg"] | {"channel_id": call.external_id}
    ari = [e for e in rig.events_for(call.chan.id) if e["type"] == "ChannelDtmfReceived"]
    assert [(e["digit"], e["duration_ms"]) for e in ari] == [("1", 100), ("#", 100)]
    assert not [e for e in rig.events_for(call.external_id) if e["type"] == "ChannelDtmfReceived"]


async def test_control_message_errors_as_captured(rig: Rig) -> None:
    """Invalid JSON and plain text → ERROR; long text frames and unknown commands → nothing."""
    call = await rig.call()
    media = call.media
    await media.conn.send("{not json")
    await media.command("NO_SUCH_COMMAND")
    await media.command("GET_STATUS", pad="x" * 150)
    await media.command("SET_MEDIA_DIRECTION", direction="sideways")
    await media.conn.send("GET_STATUS")
    await media.command("GET_STATUS")
    got = []
    while (message := await media.next_event())["event"] != "STATUS":
        got.append(message)
    want = [m | {"channel_id": call.external_id} for m in FIXTURE["errors"]["received"]]
    assert got == want


# ---------------------------------------------------------------- endings


def ending_events(rig: Rig, call: Call, since: int, role_of: dict[str, str]) -> list[list[Any]]:
    return [
        [e["type"], role_of[e["channel"]["id"]], e.get("cause")]
        for e in rig.fake.events[since:]
        if e.get("channel", {}).get("id") in role_of
    ]


@pytest.mark.parametrize(
    ("ending", "mode"),
    [
        ("app_close", "client"),
        ("hangup_cmd", "server"),
        ("ari_delete", "client"),
        ("oversize_65532", "client"),
        ("oversize_65528_server", "server"),
    ],
)
async def test_endings_hang_up_the_external_channel_caller_stays(rig: Rig, ending: str, mode: str) -> None:
    """App close, HANGUP, ARI DELETE and oversized messages: events and close code as captured."""
    call = await rig.call(mode)
    since = len(rig.fake.events)
    media = call.media
    if ending == "app_close":
        await media.conn.close(1000)
    elif ending == "hangup_cmd":
        await media.command("HANGUP")
    elif ending == "ari_delete":
        assert (await rig.http.delete(f"/channels/{call.external_id}")).status_code == 204
    elif ending == "oversize_65532":
        await media.conn.send(b"\xff" * 65_531)  # the largest that fits: played
        await media.conn.send(b"\xff" * 65_532)
    else:
        await media.conn.send(b"\xff" * 65_527)
        await media.conn.send(b"\xff" * 65_528)
    external = rig.fake.channels[call.external_id]
    await rig.fake.wait_until(lambda: external.hung_up)
    assert media.reader is not None
    await asyncio.wait_for(media.reader, 3)
    captured = FIXTURE["endings"][ending if not ending.endswith("_server") else "oversize_65532"]
    if ending != "app_close":
        assert media.conn.close_code == captured["close_code"]
    got = ending_events(rig, call, since, {call.external_id: "external", call.chan.id: "stasis;2"})
    assert got == captured["ari_events"]
    assert call.chan.in_stasis and not call.chan.hung_up
    bridge = (await rig.http.get(f"/bridges/{call.bridge_id}")).json()
    assert bridge["channels"] == [call.chan.id]


async def test_caller_hangup_leaves_external_channel_up_in_bridge(rig: Rig) -> None:
    """The caller hangs up: the media socket stays open and silent; the app must clean up."""
    call = await rig.call()
    since = len(rig.fake.events)
    await call.caller.hangup()
    got = ending_events(rig, call, since, {call.external_id: "external", call.chan.id: "stasis;2"})
    captured = [e for e in FIXTURE["endings"]["caller_hangup"]["ari_events"] if e[1] == "stasis;2"]
    assert got[: len(captured)] == captured
    assert not any(role == "external" for _, role, _ in got)
    external = rig.fake.channels[call.external_id]
    assert external.state == "Up" and external.in_stasis
    bridge = (await rig.http.get(f"/bridges/{call.bridge_id}")).json()
    assert bridge["channels"] == [call.external_id]
    status = await call.media.status()  # socket still open
    assert status["queue_length"] == 0
    # The app cleans up: DELETE the external channel, then the bridge.
    assert (await rig.http.delete(f"/channels/{call.external_id}")).status_code == 204
    mark = len(rig.fake.events)
    assert (await rig.http.delete(f"/bridges/{call.bridge_id}")).status_code == 204
    await rig.fake.wait_until(lambda: any(e["type"] == "BridgeDestroyed" for e in rig.fake.events[mark:]))
    assert (await rig.http.get(f"/bridges/{call.bridge_id}")).status_code == 404


async def test_asterisk_drops_media_socket_and_continue_leaves_bridge(rig: Rig) -> None:
    """drop_connection closes the app's socket and hangs up the external channel; /continue leaves the bridge."""
    call = await rig.call("server")
    await rig.fake.media.drop_connection(call.external_id, code=1011)
    assert call.media.reader is not None
    await asyncio.wait_for(call.media.reader, 3)
    assert call.media.conn.close_code == 1011
    assert rig.fake.channels[call.external_id].hung_up
    since = len(rig.fake.events)
    continued = await rig.http.post(f"/channels/{call.chan.id}/continue")
    assert continued.status_code == 204
    await rig.fake.wait_until(lambda: len(rig.fake.events) >= since + 3)
    kinds = [e["type"] for e in rig.events_for(call.chan.id, since)]
    assert kinds[:3] == ["ChannelVarset", "ChannelLeftBridge", "StasisEnd"]
    assert (await rig.http.get(f"/bridges/{call.bridge_id}")).json()["channels"] == []


async def test_server_mode_never_connected_channel_is_destroyed(rig: Rig) -> None:
    """Nobody connects to /media/<id>: the channel goes away after the wait, with no StasisStart."""
    rig.fake.media.server_connect_timeout_s = 0.2
    body = (await rig.external_media("server", "slin16")).json()
    assert body["channelvars"]["MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE"] == "640"
    await rig.fake.wait_until(lambda: rig.fake.channels[body["id"]].hung_up, timeout=3)
    assert [e["type"] for e in rig.events_for(body["id"])] == ["ChannelDestroyed"]
    assert (await rig.http.get(f"/channels/{body['id']}")).status_code == 404


async def test_server_mode_delete_before_connect(rig: Rig) -> None:
    """DELETE of a server-mode channel nobody connected to: ChannelDestroyed; /media/<id> is then 404."""
    body = (await rig.external_media("server", "ulaw")).json()
    assert (await rig.http.delete(f"/channels/{body['id']}")).status_code == 204
    await rig.fake.wait_until(
        lambda: any(e["type"] == "ChannelDestroyed" for e in rig.events_for(body["id"]))
    )
    assert [e["type"] for e in rig.events_for(body["id"])] == ["ChannelDestroyed"]
    with pytest.raises(websockets.InvalidStatus) as gone:
        await rig.connect(body["channelvars"]["MEDIA_WEBSOCKET_CONNECTION_ID"])
    assert gone.value.response.status_code == 404


# ---------------------------------------------------------------- playback and the caller's recording


async def test_play_records_the_fallback_prompt(rig: Rig) -> None:
    """POST /channels/{id}/play: 201, PlaybackStarted, PlaybackFinished; the caller's playbacks list it."""
    call = await rig.call()
    response = await rig.http.post(f"/channels/{call.chan.id}/play", params={"media": "sound:ai-fallback"})
    assert response.status_code == 201
    playback = response.json()
    assert (playback["media_uri"], playback["target_uri"]) == ("sound:ai-fallback", f"channel:{call.chan.id}")
    await rig.fake.wait_until(lambda: any(e["type"] == "PlaybackFinished" for e in rig.fake.events))
    kinds = [e["type"] for e in rig.fake.events if e["type"].startswith("Playback")]
    assert kinds == ["PlaybackStarted", "PlaybackFinished"]
    assert [p.media_uri for p in call.caller.playbacks] == ["sound:ai-fallback"]
    assert call.caller.playbacks[0].state == "done"


def flush_on_caller_audio(media: AppMedia) -> asyncio.Task[None]:
    """The app's stand-in barge-in: FLUSH_MEDIA as soon as caller audio arrives."""

    async def detect() -> None:
        while not media.binary:
            await asyncio.sleep(0.005)
        await media.command("FLUSH_MEDIA")

    return asyncio.create_task(detect())


async def test_recording_gaps_and_audio_start_stop(rig: Rig) -> None:
    """gaps() finds the hole between two answers; the caller interrupts the second, which stops."""
    call = await rig.call()
    media = call.media
    await media.conn.send(ulaw_tone(15))  # 0.3 s answer
    await asyncio.sleep(0.5)  # the app falls silent for ~200 ms
    await media.conn.send(ulaw_tone(100))  # 2 s answer
    recording = call.caller.recording
    await rig.fake.wait_until(lambda: len(recording.frames) >= 25)  # 0.2 s into the second answer
    detector = flush_on_caller_audio(media)
    talk = await call.caller.play(tone(0.3))
    await detector
    await asyncio.sleep(0.3)
    gaps = recording.gaps(min_gap_ms=100)
    assert [g.kind for g in gaps] == ["no_frames"] and 150 <= gaps[0].ms <= 250
    second_answer = recording.audio_started_after(gaps[0].end - 0.001)
    assert second_answer is not None and second_answer >= gaps[0].end - 0.001
    assert recording.audio_stopped_after(talk) - talk < 0.3
    assert 0.45 <= recording.heard_seconds() < 0.3 + 2.0
    assert recording.event_times("play_start") == [talk]
    heard_only = recording.pcm(8000)
    assert (
        abs(len(heard_only) / 2 / 8000 - (recording.frames[-1].time + 0.02 - recording.frames[0].time)) < 0.05
    )
    whole_call = recording.wav(both_sides=True)
    assert whole_call[:4] == b"RIFF"
    # The caller's 0.3 s runs past the flushed answer, so the call is longer than what was heard.
    assert (len(whole_call) - 44) / 2 / 16000 > len(heard_only) / 2 / 8000 + 0.1


async def test_talk_over_starts_after_the_agent_has_spoken(rig: Rig) -> None:
    """talk_over waits for agent speech plus after_ms, then talks; the flushed answer stops within 300 ms."""
    call = await rig.call()
    media = call.media
    talking = asyncio.create_task(call.caller.talk_over(tone(0.3), after_ms=200))
    detector = flush_on_caller_audio(media)
    await asyncio.sleep(0.1)
    await media.conn.send(ulaw_tone(100))  # a 2 s answer, interrupted
    talk = await talking
    await detector
    await asyncio.sleep(0.3)
    recording = call.caller.recording
    first_heard = recording.speech_frames()[0].time
    assert talk - first_heard >= 0.2
    assert recording.audio_stopped_after(talk) - talk < 0.3
    assert recording.heard_seconds() < 1.0


async def test_say_speaks_espeak_speech(rig: Rig) -> None:
    """say(): espeak-ng + sox speech, cached, sent as paced frames."""
    call = await rig.call("client", "slin16")
    path = await asyncio.to_thread(synthesize, "order forty two")
    assert path.exists() and path.stat().st_size > 8000
    await call.caller.say("order forty two")
    await asyncio.sleep(0.05)
    seconds = (path.stat().st_size - 44) / 2 / 16000
    assert abs(len(call.media.binary) - seconds * 50) <= 2
    assert asyncio.get_running_loop().time() - call.media.binary[0][0] >= seconds - 0.1
