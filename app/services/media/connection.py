"""One media WebSocket to Asterisk (chan_websocket), either direction of connection.

`MediaConnection` wraps a python-websockets connection: the one Asterisk opened to our
media listener (``connection_type=client``) or the one we opened to Asterisk's
``/media/<connection id>`` (``connection_type=server``). Its reader task only puts
frames and events on queues, so it never waits on the conversation. Sending keeps to
what chan_websocket needs (``../shared/ari-samples/media/README.md``):

* whole frames only (a partial frame is held back until the next call or `flush_pending`),
* at most `max_lead_ms` of audio ahead of real time, so a `flush` (barge-in) cuts the
  agent off within one frame and the 1000-frame queue is never approached,
* nothing while Asterisk said ``MEDIA_XOFF``, until ``MEDIA_XON``,
* messages no larger than the WebSocket frame limit for our side of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from app.services.media.protocol import (
    MAX_BINARY_AS_CLIENT,
    MAX_BINARY_AS_SERVER,
    AudioFormat,
    MediaEvent,
    MediaStart,
    ProtocolError,
    command,
    parse_control,
)

logger = logging.getLogger(__name__)


class WebSocketLike(Protocol):
    """The part of a python-websockets connection we use (client or server side)."""

    async def recv(self) -> str | bytes:
        """Next message; raises `websockets.ConnectionClosed` at the end."""
        ...

    async def send(self, message: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection."""
        ...


class MediaClosed(Exception):
    """The media WebSocket is closed (Asterisk hung up the external channel, or it dropped)."""


#: Sentinel put on the audio queue when the connection ends.
END_OF_AUDIO = b""


class MediaConnection:
    """Our side of one chan_websocket connection.

    Args:
        ws: the open WebSocket.
        start: the ``MEDIA_START`` already read from it.
        we_are_client: True when we connected to Asterisk (server mode), which makes our
            frames masked and lowers the largest binary payload to 65,527 bytes.
        max_lead_ms: how far ahead of real time we may send audio, in ms.
        frames_per_message: frames batched in one binary message (5 × 20 ms = 100 ms).
    """

    def __init__(
        self,
        ws: WebSocketLike,
        start: MediaStart,
        *,
        we_are_client: bool,
        max_lead_ms: int = 400,
        frames_per_message: int = 5,
    ) -> None:
        self._ws = ws
        self.start = start
        self.format: AudioFormat = start.audio_format
        self._frame_bytes = start.optimal_frame_size or self.format.bytes_per_frame
        self._max_message = MAX_BINARY_AS_CLIENT if we_are_client else MAX_BINARY_AS_SERVER
        self._max_lead_s = max_lead_ms / 1000.0
        self._frames_per_message = max(1, frames_per_message)
        self.audio: asyncio.Queue[bytes] = asyncio.Queue()
        self.events: asyncio.Queue[MediaEvent] = asyncio.Queue()
        self._xon = asyncio.Event()
        self._xon.set()
        self._pending = bytearray()
        self._play_until = 0.0
        self._flushes = 0  # FLUSH_MEDIA sent so far: audio held back before one is dropped
        self._send_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self.close_code: int | None = None
        self.frames_sent = 0
        self.frames_received = 0
        self._reader: asyncio.Task[None] | None = None

    @property
    def channel_id(self) -> str:
        """The externalMedia channel's id (from ``MEDIA_START``)."""
        return self.start.channel_id

    @property
    def closed(self) -> bool:
        """True once the WebSocket has ended."""
        return self._closed.is_set()

    def start_reading(self) -> None:
        """Start the reader task (audio to `audio`, control events to `events`)."""
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name=f"media-read-{self.channel_id}")

    async def _read(self) -> None:
        try:
            while True:
                message = await self._ws.recv()
                if isinstance(message, bytes):
                    self.frames_received += 1
                    self.audio.put_nowait(message)
                    continue
                try:
                    event = parse_control(message)
                except ProtocolError as exc:
                    logger.warning("channel=%s media: %s", self.channel_id, exc)
                    continue
                if isinstance(event, MediaStart):
                    continue
                if event.event == "MEDIA_XOFF":
                    self._xon.clear()
                elif event.event == "MEDIA_XON":
                    self._xon.set()
                self.events.put_nowait(event)
        except Exception as exc:  # websockets.ConnectionClosed and transport errors
            self.close_code = getattr(getattr(exc, "rcvd", None), "code", None)
            logger.info("channel=%s media WebSocket ended (%s)", self.channel_id, type(exc).__name__)
        finally:
            self._closed.set()
            self._xon.set()
            self.audio.put_nowait(END_OF_AUDIO)
            self.events.put_nowait(MediaEvent("CLOSED", self.channel_id, {}))

    # --- sending -------------------------------------------------------------------------
    def lead_seconds(self) -> float:
        """Audio sent but (by our estimate of Asterisk's 20 ms clock) not yet played, in s."""
        return max(0.0, self._play_until - time.monotonic())

    async def send_audio(self, payload: bytes) -> None:
        """Queue wire-format audio for the caller, paced to at most `max_lead_ms` ahead.

        Args:
            payload: audio already in the connection's codec (ulaw bytes or s16le 16 kHz);
                any length: whole frames are sent, a remainder waits for the next call.

        Raises:
            MediaClosed: the connection has ended.
        """
        async with self._send_lock:
            self._pending += payload
            chunk = self._frame_bytes * self._frames_per_message
            while len(self._pending) >= self._frame_bytes:
                size = min(chunk, len(self._pending) // self._frame_bytes * self._frame_bytes)
                size = min(size, self._max_message // self._frame_bytes * self._frame_bytes)
                message = bytes(self._pending[:size])
                del self._pending[:size]
                await self._send_paced(message)

    async def flush_pending(self) -> None:
        """Send a held-back partial frame, padded with silence to a whole frame."""
        async with self._send_lock:
            if not self._pending:
                return
            silence = b"\xff" if self.format.bytes_per_sample == 1 else b"\x00"
            pad = self._frame_bytes - len(self._pending)
            message = bytes(self._pending) + silence * pad
            self._pending.clear()
            await self._send_paced(message)

    async def _send_paced(self, message: bytes) -> None:
        frames = len(message) // self._frame_bytes
        flushes = self._flushes
        while True:
            if self.closed:
                raise MediaClosed(self.channel_id)
            await self._xon.wait()
            if self._flushes != flushes:
                return  # flushed (barge-in) while this audio waited its turn: never send it
            wait = self.lead_seconds() - self._max_lead_s
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        await self._send(message)
        now = time.monotonic()
        self._play_until = max(now, self._play_until) + frames * self.format.frame_ms / 1000.0
        self.frames_sent += frames

    async def _send(self, message: str | bytes) -> None:
        if self.closed:
            raise MediaClosed(self.channel_id)
        try:
            await self._ws.send(message)
        except Exception as exc:
            raise MediaClosed(f"{self.channel_id}: {exc}") from exc

    async def mark(self, correlation_id: str) -> None:
        """``MARK_MEDIA``: Asterisk answers ``MEDIA_MARK_PROCESSED`` once what came before has played.

        Raises:
            MediaClosed: the connection has ended.
        """
        await self._send(command("MARK_MEDIA", correlation_id=correlation_id))

    async def flush(self) -> None:
        """``FLUSH_MEDIA``: stop what the caller hears now (barge-in); pending marks are dropped.

        Raises:
            MediaClosed: the connection has ended.
        """
        self._pending.clear()
        self._play_until = 0.0
        self._flushes += 1
        await self._send(command("FLUSH_MEDIA"))

    async def hangup(self) -> None:
        """``HANGUP``: Asterisk hangs up the external channel and closes the socket."""
        with contextlib.suppress(MediaClosed):
            await self._send(command("HANGUP"))

    async def aclose(self) -> None:
        """Close the WebSocket (code 1000) and stop the reader."""
        with contextlib.suppress(Exception):
            await self._ws.close(1000, "")
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._closed.set()

    async def wait_closed(self) -> None:
        """Return once the connection has ended."""
        await self._closed.wait()
