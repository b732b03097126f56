"""A pipecat transport over one chan_websocket `MediaConnection`.

Input: Asterisk's binary frames become `InputAudioRawFrame`s (μ-law decoded with
``audioop``; slin16 passed through) at the wire rate (8000 Hz ulaw, 16000 Hz slin16).
A silent caller may send no frames at all (``../shared/ari-samples/media/README.md``), so
when nothing arrives for `IDLE_FILL_MS` the input side feeds silence at real time: voice
activity detection and end-of-turn detection then see the caller go quiet, by time.
``DTMF_END`` becomes an `InputDTMFFrame`.

Output: pipecat's output transport resamples agent audio to the wire rate and calls
`write_audio_frame`; we encode and hand it to `MediaConnection.send_audio`, which paces it
(lead ≤ ``max_lead_ms``, XOFF/XON). An `InterruptionFrame` (barge-in) sends ``FLUSH_MEDIA``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from app.services.media.connection import END_OF_AUDIO, MediaClosed, MediaConnection
from app.services.media.playout import PlayoutTracker, SentenceMarkFrame
from app.services.media.protocol import MediaCodec

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # Python ≤ 3.12 stdlib; `audioop-lts` provides it from 3.13

logger = logging.getLogger(__name__)

#: With no caller frame for this long (ms), the input side starts feeding silence.
IDLE_FILL_MS = 60
#: Agent audio handed to the media connection per write, in ms. Each write is one trip
#: through the output transport and one WebSocket message; 20 ms writes cost 5 times the
#: event-loop time and left 20 calls in one process short of time (gaps at the caller).
OUT_CHUNK_MS = 100


def decode(payload: bytes, codec: MediaCodec) -> bytes:
    """Wire audio to s16le PCM at the wire rate (G.711 μ-law expanded per ITU-T G.711)."""
    if codec is MediaCodec.ULAW:
        return audioop.ulaw2lin(payload, 2)
    return payload


def encode(pcm: bytes, codec: MediaCodec) -> bytes:
    """s16le PCM at the wire rate to wire audio (μ-law compressed for ``ulaw``)."""
    if codec is MediaCodec.ULAW:
        return audioop.lin2ulaw(pcm, 2)
    return pcm


class AsteriskInputTransport(BaseInputTransport):
    """Caller audio and DTMF from the media WebSocket into the pipeline."""

    def __init__(
        self, conn: MediaConnection, params: TransportParams, tracker: PlayoutTracker, **kwargs: Any
    ) -> None:
        super().__init__(params, **kwargs)
        self._conn = conn
        self._tracker = tracker
        self._task: asyncio.Task[None] | None = None
        self._dtmf_task: asyncio.Task[None] | None = None
        self.on_media_closed: Callable[[], Awaitable[None]] | None = None

    async def start(self, frame: StartFrame) -> None:
        """Start reading caller audio and control events."""
        await super().start(frame)
        if self._task is None:
            self._task = self.create_task(self._read_audio())
            self._dtmf_task = self.create_task(self._read_events())
        await self.set_transport_ready(frame)

    async def _stop_tasks(self) -> None:
        for task in (self._task, self._dtmf_task):
            if task is not None:
                await self.cancel_task(task)
        self._task = self._dtmf_task = None

    async def stop(self, frame: EndFrame) -> None:
        """Stop reading."""
        await super().stop(frame)
        await self._stop_tasks()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop reading at once."""
        await super().cancel(frame)
        await self._stop_tasks()

    async def _read_audio(self) -> None:
        fmt = self._conn.format
        frame_s = fmt.frame_ms / 1000.0
        frame_pcm_bytes = fmt.sample_rate_hz * fmt.frame_ms // 1000 * 2
        idle_s = IDLE_FILL_MS / 1000.0
        next_fill = 0.0
        while True:
            try:
                payload = await asyncio.wait_for(self._conn.audio.get(), timeout=idle_s)
            except TimeoutError:
                # No frames from a quiet caller: feed silence at real time (time-based end of
                # speech), all frames due in one chunk (fewer trips through the pipeline).
                now = time.monotonic()
                next_fill = max(next_fill, now - idle_s)
                due = int((now - next_fill) / frame_s) + 1
                next_fill += due * frame_s
                silence = bytes(frame_pcm_bytes * due)
                await self.push_audio_frame(InputAudioRawFrame(silence, fmt.sample_rate_hz, 1))
                continue
            payload, ended = _drain(self._conn.audio, payload)
            if payload:
                next_fill = time.monotonic() + frame_s
                pcm = decode(payload, fmt.codec)
                await self.push_audio_frame(InputAudioRawFrame(pcm, fmt.sample_rate_hz, 1))
            if ended:
                if self.on_media_closed is not None:
                    await self.on_media_closed()
                return

    async def _read_events(self) -> None:
        while True:
            event = await self._conn.events.get()
            if event.event == "DTMF_END" and event.digit:
                await self.push_frame(InputDTMFFrame(_keypad(event.digit)))
            elif event.event == "MEDIA_MARK_PROCESSED":
                self._tracker.played(event.correlation_id)
            elif event.event == "CLOSED":
                return


def _drain(queue: asyncio.Queue[bytes], first: bytes) -> tuple[bytes, bool]:
    """`first` joined with the caller frames already queued, and whether the connection ended.

    A loop that fell behind catches up in one trip through the pipeline.
    """
    if first == END_OF_AUDIO:
        return b"", True
    if queue.empty():
        return first, False
    parts = [first]
    while not queue.empty():
        item = queue.get_nowait()
        if item == END_OF_AUDIO:
            return b"".join(parts), True
        parts.append(item)
    return b"".join(parts), False


def _keypad(digit: str) -> Any:
    from pipecat.audio.dtmf.types import KeypadEntry

    return KeypadEntry(digit)


class AsteriskOutputTransport(BaseOutputTransport):
    """Agent audio from the pipeline to the caller, paced; barge-in flushes Asterisk's queue."""

    def __init__(
        self, conn: MediaConnection, params: TransportParams, tracker: PlayoutTracker, **kwargs: Any
    ) -> None:
        super().__init__(params, **kwargs)
        self._conn = conn
        self._tracker = tracker

    async def start(self, frame: StartFrame) -> None:
        """Mark the transport ready."""
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Send ``FLUSH_MEDIA`` on an interruption (barge-in), then the base behaviour."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            self._tracker.flushed()
            with contextlib.suppress(MediaClosed):
                await self._conn.flush()

    async def write_transport_frame(self, frame: Frame) -> None:
        """A `SentenceMarkFrame`, in order behind its audio, becomes ``MARK_MEDIA``."""
        if isinstance(frame, SentenceMarkFrame):
            with contextlib.suppress(MediaClosed):
                await self._conn.mark(frame.mark_id)
                self._tracker.sent(frame.mark_id, frame.text)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Encode and send one chunk (already at the wire rate); False once the socket is gone."""
        try:
            await self._conn.send_audio(encode(frame.audio, self._conn.format.codec))
        except MediaClosed:
            return False
        self._tracker.audio_sent()
        return True


class AsteriskMediaTransport(BaseTransport):
    """The pipecat transport of one voice call: `input()` and `output()` over one connection.

    Args:
        conn: the call's media connection (``MEDIA_START`` already read).
        tracker: records marks sent and played (what the caller heard).
    """

    def __init__(self, conn: MediaConnection, tracker: PlayoutTracker) -> None:
        super().__init__()
        rate = conn.format.sample_rate_hz
        self._params = TransportParams(
            audio_in_enabled=True,
            audio_in_sample_rate=rate,
            audio_out_enabled=True,
            audio_out_sample_rate=rate,
            # 100 ms per write: one chan_websocket message of 5 frames (see MediaConnection).
            audio_out_10ms_chunks=OUT_CHUNK_MS // 10,
            audio_out_auto_silence=False,
            audio_out_end_silence_secs=0,
        )
        self._input = AsteriskInputTransport(conn, self._params, tracker, name="asterisk-in")
        self._output = AsteriskOutputTransport(conn, self._params, tracker, name="asterisk-out")

    def input(self) -> AsteriskInputTransport:
        """The input processor (first in the pipeline)."""
        return self._input

    def output(self) -> AsteriskOutputTransport:
        """The output processor (after TTS)."""
        return self._output
