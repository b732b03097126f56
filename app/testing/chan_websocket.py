"""chan_websocket, Asterisk's media WebSocket, as the fake PBX speaks it.

:class:`MediaSession` is the Asterisk end of one external media channel's
WebSocket (``chan_websocket.conf`` ``control_message_format=json``). The facts
come from a real Asterisk (``tests/fixtures/media/README.md``, derived from
``../shared/ari-samples/media/``):

* ``MEDIA_START`` is the first message; every reply carries ``channel_id``.
* Binary audio is cut into ``optimal_frame_size`` frames (160 bytes ulaw,
  640 slin16 = 20 ms); the remainder of a message that is not whole frames is
  dropped, unless ``START_MEDIA_BUFFERING`` is on (then kept for the next message;
  a tick with nothing else to play emits it as a short frame).
* The queue is played one item per 20 ms tick; a message arriving while
  ≥ 1000 frames are queued is dropped whole (one arriving below is queued whole);
  ``MEDIA_XOFF`` at 900 frames, ``MEDIA_XON`` below 800 (checked each tick, so
  after ``FLUSH_MEDIA`` too).
* ``MARK_MEDIA`` → ``MEDIA_MARK_PROCESSED`` when the tick reaches it;
  ``FLUSH_MEDIA`` drops queued audio and marks; ``REPORT_QUEUE_DRAINED`` →
  ``QUEUE_DRAINED`` once, one tick after the queue is empty; ``GET_STATUS`` →
  ``STATUS`` at once; ``PAUSE_MEDIA``/``CONTINUE_MEDIA``; ``SET_MEDIA_DIRECTION``.
* Text frames over 128 bytes are ignored; invalid JSON (or a plain-text command)
  → ``ERROR`` "Unable to parse JSON command"; unknown commands → nothing.
* ``HANGUP`` → close 1000, channel cause 16. A binary message over 65,531 bytes
  (client mode) / 65,527 (server mode) → close 1009, channel cause 38.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import websockets
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection

if TYPE_CHECKING:
    from app.testing.fake_ari import FakeChannel

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
        started: Set once ``MEDIA_START`` and the channel's ``StasisStart`` went out.
        on_play: Called with each frame played into the bridge (set by :mod:`app.testing.fake_media`).
        on_hangup: Called when the media side hangs the channel up, with the cause
            (16 after ``HANGUP`` or the application's close, 38 after an oversized message).
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
    started: asyncio.Event = field(default_factory=asyncio.Event)
    on_play: FrameSink | None = None
    on_hangup: Callable[[MediaSession, int], None] | None = None

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

    async def send_message(self, message: dict[str, Any]) -> None:
        """Send a control message as a JSON text frame (recorded in :attr:`events_sent`).

        Args:
            message: The JSON object.
        """
        self.events_sent.append(message)
        if self.transport is None or not self.connected:
            return
        with contextlib.suppress(Exception):
            await self.transport.send_text(json.dumps(message, separators=(",", ":")))

    async def send_event(self, event: str, **fields: Any) -> None:
        """Send a control message with ``channel_id`` to the application.

        Args:
            event: e.g. ``"DTMF_END"``.
            **fields: Extra fields, e.g. ``digit="1"``.
        """
        await self.send_message({"event": event, "channel_id": self.channel.id, **fields})

    async def send_audio(self, frame: bytes) -> None:
        """Send one caller audio frame (binary) to the application.

        Args:
            frame: Audio in the session's format (160 bytes ulaw, 640 slin16).
        """
        if self.transport is None or not self.connected:
            return
        with contextlib.suppress(Exception):
            await self.transport.send_bytes(frame)

    async def read_loop(self) -> None:
        """Read the application's messages until the socket closes or the channel hangs up."""
        assert self.transport is not None
        while self.connected:
            message = await self.transport.receive()
            if message is None:
                return
            if isinstance(message, bytes):
                if len(message) > self.max_binary_bytes:
                    # "Cannot fit huge websocket frame" (websocket-endings.json oversize_65532).
                    self.connected = False
                    self.close_code = 1009
                    with contextlib.suppress(Exception):
                        await self.transport.close(1009)
                    self._hung_up(38)
                    return
                await self._enqueue_audio(message)
            else:
                await self._command(message)

    async def _enqueue_audio(self, data: bytes) -> None:
        self.binary_received.append((asyncio.get_running_loop().time(), len(data)))
        if self.queue_frames >= QUEUE_LIMIT_FRAMES:
            self.dropped_messages += 1
            return
        size = self.frame_bytes
        if self.buffering:
            self.leftover.extend(data)
            data = bytes(self.leftover)
            whole = len(data) - len(data) % size
            self.leftover = bytearray(data[whole:])
            data = data[:whole]
        else:
            self.dropped_bytes += len(data) % size
        for start in range(0, len(data) - size + 1, size):
            self.queue.append(data[start : start + size])
            self.queue_frames += 1
        if self.queue_frames >= XOFF_LEVEL and not self.queue_full:
            self.queue_full = True
            await self.send_event("MEDIA_XOFF")

    async def _command(self, text: str) -> None:
        self.command_times.append(asyncio.get_running_loop().time())
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            self.commands.append(text)
            return  # ignored, with a warning in Asterisk's log
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.commands.append(text)
            await self.send_event("ERROR", error_text="Unable to parse JSON command")
            return
        self.commands.append(message)
        await self._apply(str(message.get("command", "")), message)

    async def _apply(self, command: str, message: dict[str, Any]) -> None:
        correlation_id = message.get("correlation_id")
        if command == "GET_STATUS":
            await self.send_message(self.status())
        elif command == "MARK_MEDIA":
            self.queue.append(_Mark("MEDIA_MARK_PROCESSED", correlation_id))
        elif command == "REPORT_QUEUE_DRAINED":
            self.report_drained = True
        elif command == "FLUSH_MEDIA":
            self.queue.clear()
            self.queue_frames = 0
            self.leftover.clear()
        elif command == "START_MEDIA_BUFFERING":
            self.buffering = True
        elif command == "STOP_MEDIA_BUFFERING":
            self.buffering = False
            if self.leftover:
                self.queue.append(bytes(self.leftover))
                self.queue_frames += 1
                self.leftover.clear()
            self.queue.append(_Mark("MEDIA_BUFFERING_COMPLETED", correlation_id))
        elif command == "PAUSE_MEDIA":
            self.paused = True
        elif command == "CONTINUE_MEDIA":
            self.paused = False
        elif command == "SET_MEDIA_DIRECTION":
            direction = message.get("direction")
            if direction in _DIRECTIONS:
                self.direction = str(direction)
            else:
                text = f"'{direction}' is not a valid direction for SET_MEDIA_DIRECTION.\n"
                await self.send_event("ERROR", error_text=text)
        elif command == "HANGUP":
            await self.close(1000)
            self._hung_up(16)
        # ANSWER: the channel is already up. Unknown commands: a log warning only.

    async def tick_loop(self) -> None:
        """chan_websocket's 20 ms timer: one queue item per tick (absolute schedule)."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + PTIME_MS / 1000
        while self.connected:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            next_tick += PTIME_MS / 1000
            if next_tick < loop.time() - 0.2:  # far behind (a stalled loop): do not burst
                next_tick = loop.time() + PTIME_MS / 1000
            await self._tick(loop.time())

    async def _tick(self, now: float) -> None:
        if self.report_drained and self.queue_frames == 0 and not self.queue:
            self.report_drained = False
            await self.send_event("QUEUE_DRAINED")
        if self.buffering and self.leftover and (self.paused or not self.queue):
            # Buffering quirk: a tick with nothing to play emits the partial leftover.
            self.queue.append(bytes(self.leftover))
            self.queue_frames += 1
            self.leftover.clear()
        if not self.paused and self.queue:
            item = self.queue.popleft()
            if isinstance(item, _Mark):
                fields = {} if item.correlation_id is None else {"correlation_id": item.correlation_id}
                await self.send_event(item.event, **fields)
            else:
                self.queue_frames -= 1
                self._play(item, now)
        if self.queue_full and self.queue_frames < XON_LEVEL:
            self.queue_full = False
            await self.send_event("MEDIA_XON")

    def _play(self, frame: bytes, now: float) -> None:
        self.played.append((now, frame))
        if self.on_play is not None:
            self.on_play(self, frame, now)

    def _hung_up(self, cause: int) -> None:
        if self.on_hangup is not None:
            self.on_hangup(self, cause)

    async def close(self, code: int) -> None:
        """Close the media WebSocket (once).

        Args:
            code: WebSocket close code (1000 normal, 1009 message too big).
        """
        if self.transport is None or not self.connected:
            return
        self.connected = False
        self.close_code = code
        with contextlib.suppress(Exception):
            await self.transport.close(code)


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
