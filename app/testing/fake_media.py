"""The media side of the fake Asterisk: ARI ``externalMedia`` and a chan_websocket peer.

``POST /channels/externalMedia`` with ``transport=websocket``, ``encapsulation=none``
and ``format`` ``ulaw`` or ``slin16`` creates an external channel and a
:class:`MediaSession`, which speaks Asterisk's media WebSocket protocol
(``chan_websocket.conf`` ``control_message_format=json``) with the application:

* ``connection_type=client``: the fake connects, like Asterisk with
  ``websocket_client.conf``, to the URI configured for ``external_host``
  (``FakeAriServer(websocket_clients={"media_connection1": "ws://127.0.0.1:PORT/media"})``),
  subprotocol ``media``, ``transport_data=v(k=v,...)`` appended as a query string.
  Nobody listening: ``ChannelDestroyed`` cause 3 after 0.5 s, no ``StasisStart``.
* ``connection_type=server``: the application connects to
  ``ws://<fake>/media/<MEDIA_WEBSOCKET_CONNECTION_ID>`` (404 unknown id, 409 a
  second connection). The external channel stays ``Down`` and out of Stasis
  (``addChannel`` → 422) until then.

The protocol facts come from a real Asterisk (``tests/fixtures/media/README.md``,
derived from ``../shared/ari-samples/media/``): ``MEDIA_START`` first; the
external channel's ``StasisStart`` (``args: []``, ``Up``) right after it; binary
audio cut into ``optimal_frame_size`` frames (160 bytes ulaw, 640 slin16 = 20 ms)
with the remainder of a message dropped unless ``START_MEDIA_BUFFERING`` is on;
a queue played one item per 20 ms tick into the bridge; messages dropped whole
while ≥ 1000 frames are queued; ``MEDIA_XOFF`` at 900 and ``MEDIA_XON`` below 800;
``MARK_MEDIA`` answered when the tick reaches it; ``FLUSH_MEDIA`` dropping audio
and marks; ``REPORT_QUEUE_DRAINED`` one shot; ``GET_STATUS``; ``HANGUP`` (close
1000, cause 16); text frames over 128 bytes ignored; invalid JSON → ``ERROR``;
binary messages over 65,531 bytes (client mode) / 65,527 (server mode) → close
1009 and cause 38; the application closing the socket hangs the external channel
up (cause 16), while a caller hang-up leaves it up, silent, in the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

import websockets
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection

from app.testing.ari_spec import AriOperation

if TYPE_CHECKING:
    from app.testing.fake_ari import FakeAriServer, FakeChannel, _Deferred, _Handler

logger = logging.getLogger(__name__)

#: chan_websocket's playout tick and ``ptime``, in ms.
PTIME_MS = 20
#: Bytes of one 20 ms frame per format (``MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE``).
FRAME_BYTES = {"ulaw": 160, "slin16": 640}
#: Sample rate per format, in Hz.
SAMPLE_RATE_HZ = {"ulaw": 8000, "slin16": 16000}
#: One silent frame per format (μ-law silence is 0xFF; slin is zeros).
SILENT_FRAME = {"ulaw": b"\xff" * 160, "slin16": b"\x00" * 640}
#: Queue limits in frames (``STATUS`` ``xoff_level``/``xon_level``; 1000 = 20 s).
QUEUE_LIMIT_FRAMES = 1000
XOFF_LEVEL = 900
XON_LEVEL = 800
#: Longest control text frame Asterisk reads, in bytes; longer ones are ignored.
MAX_TEXT_BYTES = 128
#: Largest binary payload (one WebSocket frame ≤ 65,535 bytes with its header):
#: unmasked when the application is the server (client mode), masked otherwise.
MAX_BINARY_BYTES = {"client": 65_531, "server": 65_527}
#: websocket_client.conf ``connection_timeout`` + reconnects before cause 3, in s.
CLIENT_GIVE_UP_S = 0.5

_DIRECTIONS = ("both", "in", "out")


class _Transport(Protocol):
    async def send_text(self, text: str) -> None: ...
    async def send_bytes(self, data: bytes) -> None: ...
    async def receive(self) -> str | bytes | None: ...
    async def close(self, code: int) -> None: ...


class _ClientTransport:
    """The fake is the WebSocket client (``connection_type=client``)."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    async def send_text(self, text: str) -> None:
        await self.conn.send(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.conn.send(data)

    async def receive(self) -> str | bytes | None:
        try:
            return await self.conn.recv()
        except websockets.ConnectionClosed:
            return None

    async def close(self, code: int) -> None:
        await self.conn.close(code)


class _ServerTransport:
    """The fake is the WebSocket server (``connection_type=server``)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def send_text(self, text: str) -> None:
        await self.ws.send_text(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def receive(self) -> str | bytes | None:
        try:
            message = await self.ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("bytes") is not None:
            return bytes(message["bytes"])
        return str(message.get("text") or "")

    async def close(self, code: int) -> None:
        await self.ws.close(code)


@dataclass
class _Mark:
    event: str
    correlation_id: str | None = None


#: Receives each frame the external channel plays into the bridge:
#: ``(session, frame bytes, loop.time() in s)``.
FrameSink = Callable[["MediaSession", bytes, float], None]


@dataclass(eq=False)
class MediaSession:
    """The chan_websocket end of one external media channel.

    Attributes:
        channel: The external channel (``WebSocket/...``).
        app: Stasis application of the channel.
        format: ``"ulaw"`` or ``"slin16"``.
        connection_type: ``"client"`` (fake connects) or ``"server"`` (app connects).
        connection_id: ``MEDIA_WEBSOCKET_CONNECTION_ID``.
        path: Request path the fake connected to (client mode), with query.
        connected: True while the media WebSocket is open.
        close_code: Close code once closed (1000, 1009, ...), or ``None``.
        commands: Every control message received, parsed (``{"command": ...}``)
            or raw text for unparsable ones.
        command_times: ``loop.time()`` (s) each of :attr:`commands` arrived.
        events_sent: Every control message the fake sent, parsed.
        binary_received: ``(loop.time() s, bytes)`` of every binary message received.
        dropped_messages: Binary messages dropped whole (queue ≥ 1000 frames).
        dropped_bytes: Bytes lost because a message was not a whole number of frames.
        played: ``(loop.time() s, frame)`` of every frame played out of the queue.
    """

    channel: FakeChannel
    app: str
    format: str
    connection_type: str
    connection_id: str
    channel_variables: dict[str, str]
    path: str = ""
    connected: bool = False
    close_code: int | None = None
    commands: list[Any] = field(default_factory=list)
    command_times: list[float] = field(default_factory=list)
    events_sent: list[dict[str, Any]] = field(default_factory=list)
    binary_received: list[tuple[float, int]] = field(default_factory=list)
    dropped_messages: int = 0
    dropped_bytes: int = 0
    played: list[tuple[float, bytes]] = field(default_factory=list)
    queue: deque[bytes | _Mark] = field(default_factory=deque)
    queue_frames: int = 0
    queue_full: bool = False
    paused: bool = False
    buffering: bool = False
    leftover: bytearray = field(default_factory=bytearray)
    report_drained: bool = False
    direction: str = "both"
    transport: _Transport | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def frame_bytes(self) -> int:
        """Bytes per 20 ms frame (160 ulaw, 640 slin16)."""
        return FRAME_BYTES[self.format]

    @property
    def max_binary_bytes(self) -> int:
        """Largest binary message before close 1009 (65,531 client / 65,527 server mode)."""
        return MAX_BINARY_BYTES[self.connection_type]

    def media_start(self) -> dict[str, Any]:
        """The ``MEDIA_START`` message (websocket-client-ulaw.json ``MEDIA_START``).

        Returns:
            Its JSON object.
        """
        return {
            "event": "MEDIA_START",
            "connection_id": self.connection_id,
            "channel": self.channel.name,
            "channel_id": self.channel.id,
            "format": self.format,
            "optimal_frame_size": self.frame_bytes,
            "ptime": PTIME_MS,
            "channel_variables": dict(self.channel_variables),
        }

    def status(self) -> dict[str, Any]:
        """The ``STATUS`` reply to ``GET_STATUS``.

        Returns:
            Queue length in frames, levels, and the flags.
        """
        return {
            "event": "STATUS",
            "channel_id": self.channel.id,
            "queue_length": self.queue_frames,
            "xon_level": XON_LEVEL,
            "xoff_level": XOFF_LEVEL,
            "queue_full": self.queue_full,
            "bulk_media": self.buffering,
            "media_paused": self.paused,
        }

    def command_times_of(self, name: str) -> list[float]:
        """When control messages with ``command == name`` arrived.

        Args:
            name: e.g. ``"FLUSH_MEDIA"``.

        Returns:
            ``loop.time()`` values in s, in order.
        """
        return [
            t
            for t, c in zip(self.command_times, self.commands, strict=True)
            if isinstance(c, dict) and c.get("command") == name
        ]

    def commands_named(self, name: str) -> list[dict[str, Any]]:
        """Control messages received with ``command == name``.

        Args:
            name: e.g. ``"FLUSH_MEDIA"``.

        Returns:
            The parsed messages, in order.
        """
        return [c for c in self.commands if isinstance(c, dict) and c.get("command") == name]

    def events_named(self, name: str) -> list[dict[str, Any]]:
        """Control messages sent with ``event == name``.

        Args:
            name: e.g. ``"MEDIA_XOFF"``.

        Returns:
            The messages, in order.
        """
        return [e for e in self.events_sent if e.get("event") == name]


def parse_transport_data(value: str) -> dict[str, str]:
    """Read the ``v(k=v,...)`` URI parameters of ``transport_data``.

    Args:
        value: e.g. ``"v(call_id=abc123,lang=en)f(plain-text)"``.

    Returns:
        ``{"call_id": "abc123", "lang": "en"}`` (the media connection's query string).
    """
    match = re.search(r"v\(([^)]*)\)", value)
    if not match:
        return {}
    pairs = [p.split("=", 1) for p in match.group(1).split(",") if p]
    return {k: v for k, *rest in pairs for v in [rest[0] if rest else ""]}


class FakeMedia:
    """externalMedia channels and their media WebSockets, for one fake PBX.

    Args:
        fake: The server that owns channels, bridges and events.
        websocket_clients: ``websocket_client.conf``: connection id → ``uri``
            (e.g. ``{"media_connection1": "ws://127.0.0.1:8765/media"}``).
        server_connect_timeout_s: How long a server-mode external channel waits
            for the application to connect before it is destroyed (a real PBX
            waits about 31 s, the originate timeout).

    Attributes:
        sessions: Media sessions by external channel id.
        frame_sinks: Callbacks per caller channel id, fed each frame played
            into a bridge the caller is in (the scripted caller's ear).
    """

    def __init__(
        self,
        fake: FakeAriServer,
        websocket_clients: dict[str, str] | None = None,
        server_connect_timeout_s: float = 31.0,
    ) -> None:
        """Start with no sessions."""
        self.fake = fake
        self.websocket_clients = dict(websocket_clients or {})
        self.server_connect_timeout_s = server_connect_timeout_s
        self.sessions: dict[str, MediaSession] = {}
        self.frame_sinks: dict[str, list[FrameSink]] = {}
        self._by_connection_id: dict[str, MediaSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def handlers(self) -> dict[tuple[str, str], _Handler]:
        """REST handlers to add to the fake's dispatch table.

        Returns:
            ``(resource, nickname)`` → handler.
        """
        return {("channels", "externalMedia"): self._h_external_media}

    def session_for(self, channel_id: str) -> MediaSession | None:
        """The media session of an external channel.

        Args:
            channel_id: External channel id.

        Returns:
            The session, or ``None``.
        """
        return self.sessions.get(channel_id)

    def _spawn(self, coro: Any, owner: set[asyncio.Task[None]] | None = None) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        for bucket in (self._tasks, owner):
            if bucket is not None:
                bucket.add(task)
                task.add_done_callback(bucket.discard)
        return task

    async def aclose(self) -> None:
        """Close every media WebSocket and stop every task."""
        for session in list(self.sessions.values()):
            if session.transport is not None and session.connected:
                session.connected = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.transport.close(1001), 1)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---------------------------------------------------------------- REST

    async def _h_external_media(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        params = request.query_params
        problem = self._check_params(params)
        if problem is not None:
            return JSONResponse({"message": problem}, status_code=400), []
        fmt = params["format"]
        connection_type = params.get("connection_type", "client")
        if connection_type == "client":
            connection_id = params["external_host"]
            name_part = connection_id
        else:
            connection_id = str(uuid.uuid4())
            name_part = "INCOMING"
        variables = body.get("variables") if isinstance(body, dict) else None
        chan = self.fake._new_external_channel(
            params.get("channelId"), f"WebSocket/{name_part}/0x{uuid.uuid4().int & 0xFFFFFFFFFFFF:012x}"
        )
        chan.app = params["app"]
        channel_vars = {
            "MEDIA_WEBSOCKET_CONNECTION_ID": connection_id,
            "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": str(FRAME_BYTES[fmt]),
        }
        if isinstance(variables, dict):
            chan.variables.update({str(k): str(v) for k, v in variables.items()})
        chan.variables.update(channel_vars)
        session = MediaSession(chan, chan.app, fmt, connection_type, connection_id, channel_vars)
        self.sessions[chan.id] = session
        response_body = chan.to_json()
        response_body["channelvars"] = dict(channel_vars)
        if connection_type == "client":
            query = parse_transport_data(params.get("transport_data", ""))
            uri = self.websocket_clients[connection_id]
            url = f"{uri}?{urlencode(query)}" if query else uri
            self._spawn(self._connect_client(session, url), session.tasks)
        else:
            self._by_connection_id[connection_id] = session
            self._spawn(self._server_timeout(session), session.tasks)
        self.fake._notify()
        return JSONResponse(response_body), []

    def _check_params(self, params: Any) -> str | None:
        if params.get("transport", "udp") != "websocket" or params.get("encapsulation", "rtp") != "none":
            return "FakeAriServer implements only transport=websocket encapsulation=none"
        if params.get("format") not in FRAME_BYTES:
            return "format must be ulaw or slin16 in FakeAriServer"
        if params.get("direction", "both") != "both":
            return "Invalid direction"
        connection_type = params.get("connection_type", "client")
        if connection_type not in ("client", "server"):
            return "Invalid connection_type"
        if connection_type == "client" and params.get("external_host") not in self.websocket_clients:
            return "external_host must name a websocket_client.conf connection"
        if self.fake.channels.get(params.get("channelId", "")) is not None:
            return "channelId already in use"
        return None

    # ---------------------------------------------------------------- connecting

    async def _connect_client(self, session: MediaSession, url: str) -> None:
        await asyncio.sleep(0)  # the REST response goes out first
        try:
            conn = await websockets.connect(
                url,
                subprotocols=[websockets.Subprotocol("media")],
                max_size=None,
                compression=None,
                ping_interval=None,
                open_timeout=CLIENT_GIVE_UP_S,
            )
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            logger.info("media connection %s for %s failed: %r", url, session.channel.id, exc)
            await asyncio.sleep(max(0.0, CLIENT_GIVE_UP_S - 0.01))
            self._destroy_unconnected(session, cause=3)
            return
        session.path = url.split("/", 3)[-1] if "/" in url else url
        session.path = "/" + session.path
        await self._run(session, _ClientTransport(conn))

    async def _server_timeout(self, session: MediaSession) -> None:
        await asyncio.sleep(self.server_connect_timeout_s)
        if not session.connected and session.close_code is None:
            self._destroy_unconnected(session, cause=16)

    def _destroy_unconnected(self, session: MediaSession, cause: int) -> None:
        """No media connection: ``ChannelDestroyed`` only (websocket-connection-edge-cases.json)."""
        chan = session.channel
        if chan.hung_up:
            return
        chan.hung_up = True
        chan.left_stasis.set()
        session.close_code = 0
        self._by_connection_id.pop(session.connection_id, None)
        from app.testing.fake_ari import CAUSE_TEXT

        cause_txt = {3: "No route to destination"}.get(cause, CAUSE_TEXT.get(cause, "Unknown"))
        self.fake._emit(session.app, "ChannelDestroyed", chan, cause=cause, cause_txt=cause_txt)
        self.fake._notify()

    async def serve_websocket(self, websocket: WebSocket) -> None:
        """Serve ``/media/<connection id>`` (server mode), on Asterisk's HTTP port.

        Args:
            websocket: The application's connection; accepted with subprotocol
                ``media`` when offered (also accepted without one), or denied
                with 404 "WebSocket instance not found" / 409 "Another websocket
                connection exists for this connection id".
        """
        connection_id = websocket.url.path.rsplit("/", 1)[-1]
        session = self._by_connection_id.get(connection_id)
        if session is None or session.channel.hung_up:
            await websocket.send_denial_response(_html(404, "Not found", "WebSocket instance not found"))
            return
        if session.connected or session.close_code is not None:
            await websocket.send_denial_response(
                _html(409, "Conflict", "Another websocket connection exists for this connection id")
            )
            return
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol="media" if "media" in offered else None)
        session.path = websocket.url.path
        await self._run(session, _ServerTransport(websocket))

    async def _run(self, session: MediaSession, transport: _Transport) -> None:
        """Own one open media WebSocket: MEDIA_START, StasisStart, ticks and reading."""
        session.transport = transport
        session.connected = True
        chan = session.channel
        if session.connection_type == "server":
            self._enter_stasis(session)
            await self._send(session, session.media_start())
        else:
            await self._send(session, session.media_start())
            self._enter_stasis(session)
        ticker = self._spawn(self._tick_loop(session), session.tasks)
        try:
            await self._read_loop(session)
        finally:
            ticker.cancel()
            was_connected = session.connected
            session.connected = False
            if was_connected and not chan.hung_up:
                # The application closed the socket (websocket-endings.json app_close).
                self.hangup_external(session, cause=16)

    def _enter_stasis(self, session: MediaSession) -> None:
        """External channel answered and in Stasis (``ChannelStateChange``, ``StasisStart``)."""
        chan = session.channel
        chan.state = "Up"
        chan.app_name = "Stasis"
        chan.app_data = session.app
        chan.in_stasis = True
        self.fake._emit(session.app, "ChannelStateChange", chan)
        self.fake._emit(session.app, "StasisStart", chan, args=[])
        self.fake._notify()

    # ---------------------------------------------------------------- protocol

    async def _send(self, session: MediaSession, message: dict[str, Any]) -> None:
        session.events_sent.append(message)
        if session.transport is None or not session.connected:
            return
        with contextlib.suppress(Exception):
            await session.transport.send_text(json.dumps(message, separators=(",", ":")))

    async def send_event(self, session: MediaSession, event: str, **fields: Any) -> None:
        """Send a control message with ``channel_id`` to the application.

        Args:
            session: The media session.
            event: e.g. ``"DTMF_END"``.
            **fields: Extra fields, e.g. ``digit="1"``.
        """
        await self._send(session, {"event": event, "channel_id": session.channel.id, **fields})

    async def send_audio(self, session: MediaSession, frame: bytes) -> None:
        """Send one caller audio frame (binary) to the application.

        Args:
            session: The media session.
            frame: Audio in the session's format (160 bytes ulaw, 640 slin16).
        """
        if session.transport is None or not session.connected:
            return
        with contextlib.suppress(Exception):
            await session.transport.send_bytes(frame)

    async def _read_loop(self, session: MediaSession) -> None:
        assert session.transport is not None
        while session.connected:
            message = await session.transport.receive()
            if message is None:
                return
            if isinstance(message, bytes):
                if len(message) > session.max_binary_bytes:
                    # "Cannot fit huge websocket frame" (websocket-endings.json oversize_65532).
                    session.connected = False
                    session.close_code = 1009
                    with contextlib.suppress(Exception):
                        await session.transport.close(1009)
                    self.hangup_external(session, cause=38)
                    return
                await self._enqueue_audio(session, message)
            else:
                await self._command(session, message)

    async def _enqueue_audio(self, session: MediaSession, data: bytes) -> None:
        session.binary_received.append((asyncio.get_running_loop().time(), len(data)))
        if session.queue_frames >= QUEUE_LIMIT_FRAMES:
            session.dropped_messages += 1
            return
        size = session.frame_bytes
        if session.buffering:
            session.leftover.extend(data)
            data = bytes(session.leftover)
            whole = len(data) - len(data) % size
            session.leftover = bytearray(data[whole:])
            data = data[:whole]
        else:
            session.dropped_bytes += len(data) % size
        for start in range(0, len(data) - size + 1, size):
            session.queue.append(data[start : start + size])
            session.queue_frames += 1
        if session.queue_frames >= XOFF_LEVEL and not session.queue_full:
            session.queue_full = True
            await self.send_event(session, "MEDIA_XOFF")

    async def _command(self, session: MediaSession, text: str) -> None:
        session.command_times.append(asyncio.get_running_loop().time())
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            session.commands.append(text)
            return  # ignored, with a warning in Asterisk's log
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            session.commands.append(text)
            await self.send_event(session, "ERROR", error_text="Unable to parse JSON command")
            return
        session.commands.append(message)
        await self._apply(session, str(message.get("command", "")), message)

    async def _apply(self, session: MediaSession, command: str, message: dict[str, Any]) -> None:
        correlation_id = message.get("correlation_id")
        if command == "GET_STATUS":
            await self._send(session, session.status())
        elif command == "MARK_MEDIA":
            session.queue.append(_Mark("MEDIA_MARK_PROCESSED", correlation_id))
        elif command == "REPORT_QUEUE_DRAINED":
            session.report_drained = True
        elif command == "FLUSH_MEDIA":
            session.queue.clear()
            session.queue_frames = 0
            session.leftover.clear()
        elif command == "START_MEDIA_BUFFERING":
            session.buffering = True
        elif command == "STOP_MEDIA_BUFFERING":
            session.buffering = False
            if session.leftover:
                session.queue.append(bytes(session.leftover))
                session.queue_frames += 1
                session.leftover.clear()
            session.queue.append(_Mark("MEDIA_BUFFERING_COMPLETED", correlation_id))
        elif command == "PAUSE_MEDIA":
            session.paused = True
        elif command == "CONTINUE_MEDIA":
            session.paused = False
        elif command == "SET_MEDIA_DIRECTION":
            direction = message.get("direction")
            if direction in _DIRECTIONS:
                session.direction = str(direction)
            else:
                text = f"'{direction}' is not a valid direction for SET_MEDIA_DIRECTION.\n"
                await self.send_event(session, "ERROR", error_text=text)
        elif command == "HANGUP":
            await self._close(session, 1000)
            self.hangup_external(session, cause=16)
        # ANSWER: the channel is already up. Unknown commands: a log warning only.

    async def _tick_loop(self, session: MediaSession) -> None:
        """chan_websocket's 20 ms timer: one queue item per tick (absolute schedule)."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + PTIME_MS / 1000
        while session.connected:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            next_tick += PTIME_MS / 1000
            if next_tick < loop.time() - 0.2:  # far behind (a stalled loop): do not burst
                next_tick = loop.time() + PTIME_MS / 1000
            await self._tick(session, loop.time())

    async def _tick(self, session: MediaSession, now: float) -> None:
        if session.report_drained and session.queue_frames == 0 and not session.queue:
            session.report_drained = False
            await self.send_event(session, "QUEUE_DRAINED")
        if session.buffering and session.leftover and (session.paused or not session.queue):
            # Buffering quirk: a tick with nothing to play emits the partial leftover.
            session.queue.append(bytes(session.leftover))
            session.queue_frames += 1
            session.leftover.clear()
        if not session.paused and session.queue:
            item = session.queue.popleft()
            if isinstance(item, _Mark):
                fields = {} if item.correlation_id is None else {"correlation_id": item.correlation_id}
                await self.send_event(session, item.event, **fields)
            else:
                session.queue_frames -= 1
                self._play(session, item, now)
        if session.queue_full and session.queue_frames < XON_LEVEL:
            session.queue_full = False
            await self.send_event(session, "MEDIA_XON")

    def _play(self, session: MediaSession, frame: bytes, now: float) -> None:
        session.played.append((now, frame))
        for peer in self.fake.bridges.peers(session.channel.id):
            for sink in self.frame_sinks.get(peer.id, []):
                sink(session, frame, now)

    # ---------------------------------------------------------------- endings

    async def _close(self, session: MediaSession, code: int) -> None:
        if session.transport is None or not session.connected:
            return
        session.connected = False
        session.close_code = code
        with contextlib.suppress(Exception):
            await session.transport.close(code)

    def hangup_external(self, session: MediaSession, cause: int) -> None:
        """Hang the external channel up from the media side.

        Events as captured (websocket-endings.json): ``ChannelHangupRequest``
        (cause), ``ChannelVarset BRIDGEPEER``, ``ChannelLeftBridge``,
        ``StasisEnd``, ``ChannelDestroyed``; the caller stays in the bridge.

        Args:
            session: The media session.
            cause: 16 (socket closed or ``HANGUP``) or 38 (oversized message).
        """
        chan = session.channel
        if chan.hung_up:
            return
        from app.testing.fake_ari import CAUSE_TEXT

        events: _Deferred = [
            (chan.app, self.fake._event(chan.app, "ChannelHangupRequest", chan, cause=cause))
        ]
        events.extend(self.fake.bridges.leave(chan))
        if chan.in_stasis:
            self.fake._leave_stasis(chan, set_status=True)
            events.append((chan.app, self.fake._event(chan.app, "StasisEnd", chan)))
            events.append(self._stasis_status(chan))
        events.append(
            (
                chan.app,
                self.fake._event(
                    chan.app,
                    "ChannelDestroyed",
                    chan,
                    cause=cause,
                    cause_txt=CAUSE_TEXT.get(cause, "Unknown"),
                ),
            )
        )
        chan.hung_up = True
        chan.left_stasis.set()
        for app, event in events:
            self.fake._dispatch(app, event)
        self.fake._maybe_destroy_app(chan.app)
        self.fake._notify()

    async def drop_connection(self, channel_id: str, code: int = 1011, cause: int = 16) -> None:
        """Drop an external channel's media WebSocket from Asterisk's side (a test's failure case).

        Not captured on a real PBX: modelled on the captured app-side close
        (the external channel hangs up and leaves the bridge; the caller stays).

        Args:
            channel_id: External channel id.
            code: WebSocket close code sent to the application.
            cause: Hangup cause of the external channel.

        Raises:
            KeyError: No media session for ``channel_id``.
        """
        session = self.sessions[channel_id]
        await self._close(session, code)
        self.hangup_external(session, cause=cause)

    def _stasis_status(self, chan: FakeChannel) -> tuple[str, dict[str, Any]]:
        """``ChannelVarset STASISSTATUS=SUCCESS`` after the external channel's ``StasisEnd``."""
        event = self.fake._event(chan.app, "ChannelVarset", chan, variable="STASISSTATUS", value="SUCCESS")
        return chan.app, event

    def on_ari_hangup(self, chan: FakeChannel) -> _Deferred:
        """``DELETE /channels/{id}`` of an external channel: close 1000 and ``ChannelDestroyed``.

        Args:
            chan: The channel being hung up.

        Returns:
            ``ChannelDestroyed`` (cause 16) for an external channel, else nothing.
        """
        session = self.sessions.get(chan.id)
        if session is None:
            return []
        if session.connected:
            self._spawn(self._close(session, 1000))
        else:
            session.close_code = session.close_code or 1000
        from app.testing.fake_ari import CAUSE_TEXT

        return [
            self._stasis_status(chan),
            (
                chan.app,
                self.fake._event(chan.app, "ChannelDestroyed", chan, cause=16, cause_txt=CAUSE_TEXT[16]),
            ),
        ]


def _html(status: int, title: str, text: str) -> Response:
    """Asterisk's HTML error page (websocket-connection-edge-cases.json)."""
    body = (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n'
        f"<title>{status} {title}</title>\r\n</head><body>\r\n<h1>{title}</h1>\r\n"
        f"<p>{text}</p>\r\n<hr />\r\n<address>Asterisk</address>\r\n</body></html>\r\n"
    )
    return HTMLResponse(body, status_code=status)
