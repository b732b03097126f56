"""The Deepgram halves of `app.testing.fake_voice`: one session per listen or speak WebSocket.

Listen (``/v1/listen``): caller audio in, energy endpointing, ``Results`` / ``SpeechStarted``
/ ``UtteranceEnd`` / ``Metadata`` out. Speak (``/v1/speak``, Aura): ``Speak`` texts in,
espeak-ng audio on ``Flush``, ``Flushed`` / ``Cleared`` out.
Source: https://developers.deepgram.com/reference/speech-to-text/listen-streaming and
https://developers.deepgram.com/reference/text-to-speech/speak-streaming
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.testing.voice_audio import asynthesize, rms
from app.testing.voice_model import DEFAULT_ENDPOINTING_MS, SPEECH_RMS, TTS_CHUNK_MS, Fault, VoiceRequest

if TYPE_CHECKING:
    from app.testing.fake_voice import FakeVoiceServer


class ListenSession:
    """One Deepgram ``/v1/listen`` connection: endpointing, finals, UtteranceEnd, Metadata."""

    def __init__(self, server: FakeVoiceServer, ws: WebSocket, record: VoiceRequest) -> None:
        params = record.params
        self.server, self.ws, self.record = server, ws, record
        self.rate = int(params.get("sample_rate", "16000"))
        self.interim = params.get("interim_results", "false") == "true"
        self.vad_events = params.get("vad_events", "false") == "true"
        endpointing = params.get("endpointing", str(DEFAULT_ENDPOINTING_MS))
        self.endpointing_ms = None if endpointing == "false" else int(endpointing)
        self.utterance_end_ms = int(params["utterance_end_ms"]) if "utterance_end_ms" in params else None
        self.request_id = str(uuid.uuid4())
        self.model = params.get("model", "nova-3")
        self.buffer = bytearray()
        self.received_s = 0.0  # audio received, in s of stream time
        self.utterance_start_s = 0.0
        self.silence_ms = 0.0
        self.in_speech = False
        self.finals: asyncio.Queue[tuple[bytes, float, bool, float] | None] = asyncio.Queue()

    async def run(self) -> None:
        """Serve the socket until ``CloseStream`` or disconnect; pending finals go out first."""
        sender = asyncio.create_task(self._send_finals())
        try:
            await self._receive()
        finally:
            await self.finals.put(None)
            if self.server.fault_for("listen") is Fault.HANG:
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await sender
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.ws.close()

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                self.record.touch("audio")
                if self.server.fault_for("listen") is Fault.CLOSE:
                    await self.ws.close(code=1011, reason="fake voice: dropped")
                    return
                await self._audio(message["bytes"])
                continue
            kind = str(orjson.loads(message.get("text") or "{}").get("type", ""))
            self.record.touch(kind)
            if kind == "Finalize":
                await self._end_utterance(from_finalize=True)
            elif kind == "CloseStream":
                await self._end_utterance(from_finalize=False, only_if_speech=True)
                return

    async def _audio(self, data: bytes) -> None:
        self.record.audio_bytes += len(data)
        chunk_ms = len(data) / 2 / self.rate * 1000.0
        speech = rms(data) >= SPEECH_RMS
        if speech and not self.in_speech:
            self.in_speech = True
            self.utterance_start_s = self.received_s
            if self.vad_events:
                await self._send({"type": "SpeechStarted", "channel": [0, 1], "timestamp": self.received_s})
        self.received_s += chunk_ms / 1000.0
        if self.in_speech:
            self.buffer += data
            self.silence_ms = 0.0 if speech else self.silence_ms + chunk_ms
            if self.endpointing_ms is not None and self.silence_ms >= self.endpointing_ms:
                await self._end_utterance(from_finalize=False)

    async def _end_utterance(self, *, from_finalize: bool, only_if_speech: bool = False) -> None:
        if only_if_speech and not self.buffer:
            return
        self.in_speech = False
        self.silence_ms = 0.0
        pcm, self.buffer = bytes(self.buffer), bytearray()
        await self.finals.put((pcm, self.utterance_start_s, from_finalize, time.monotonic()))

    async def _send_finals(self) -> None:
        hang = self.server.fault_for("listen") is Fault.HANG
        while (item := await self.finals.get()) is not None:
            pcm, start_s, from_finalize, ended_at = item
            if hang:
                await self.server.hang()
                return
            text = await self.server.transcript_of(pcm, self.rate) if pcm else ""
            self.record.transcripts.append(text)
            wait_s = self.server.stt_final_delay_ms / 1000.0 - (time.monotonic() - ended_at)
            duration = len(pcm) / 2 / self.rate
            if self.interim and text:
                await self._send(self._results(text, start_s, duration, final=False, from_finalize=False))
            await self.server.pause(max(0.0, wait_s))
            await self._send(self._results(text, start_s, duration, final=True, from_finalize=from_finalize))
            if self.utterance_end_ms is not None and text:
                await self._send(
                    {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": start_s + duration}
                )
        await self._send(
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self.request_id,
                "sha256": "0" * 64,
                "created": datetime.now(UTC).isoformat(),
                "duration": self.received_s,
                "channels": 1,
                "models": [self.request_id],
                "model_info": {},
            }
        )

    def _results(
        self, text: str, start_s: float, duration: float, *, final: bool, from_finalize: bool
    ) -> dict[str, Any]:
        words = text.split()
        step = duration / max(len(words), 1)
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": duration,
            "start": start_s,
            "is_final": final,
            "speech_final": final and not from_finalize,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": 0.9 if text else 0.0,
                        "words": [
                            {
                                "word": w,
                                "start": start_s + i * step,
                                "end": start_s + (i + 1) * step,
                                "confidence": 0.9,
                                "punctuated_word": w,
                            }
                            for i, w in enumerate(words)
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": self.model, "version": "fake", "arch": "fake"},
                "model_uuid": self.request_id,
            },
        }

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(orjson.dumps(payload).decode())


class SpeakSession:
    """One Deepgram Aura ``/v1/speak`` connection: Speak texts, audio on Flush, Clear, Close."""

    def __init__(self, server: FakeVoiceServer, ws: WebSocket, record: VoiceRequest) -> None:
        self.server, self.ws, self.record = server, ws, record
        self.rate = int(record.params.get("sample_rate", "24000"))
        self.text: list[str] = []
        self.sequence_id = 0
        self.flushes: set[asyncio.Task[None]] = set()
        self.previous: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Serve the socket until ``Close`` or disconnect; cancels audio still being sent."""
        model = self.record.params.get("model", "aura-2-helena-en")
        await self._send(
            {
                "type": "Metadata",
                "request_id": str(uuid.uuid4()),
                "model_name": model,
                "model_version": "fake",
                "model_uuid": str(uuid.uuid4()),
            }
        )
        try:
            await self._receive()
        finally:
            for task in self.flushes:
                task.cancel()
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.ws.close()

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect" or message.get("text") is None:
                return
            body = orjson.loads(message["text"])
            kind = str(body.get("type", ""))
            self.record.touch(kind)
            if kind == "Speak":
                self.text.append(str(body.get("text", "")))
                self.record.text = " ".join(
                    t.strip() for t in [self.record.text, *self.text[-1:]] if t.strip()
                )
            elif kind == "Flush":
                text, self.text = "".join(self.text).strip(), []
                task = asyncio.create_task(self._flush(text, self.previous, self.sequence_id))
                self.sequence_id += 1
                self.previous = task
                self.flushes.add(task)
                task.add_done_callback(self.flushes.discard)
            elif kind == "Clear":
                self.text = []
                for task in list(self.flushes):
                    task.cancel()
                await self._send({"type": "Cleared", "sequence_id": self.sequence_id})
            elif kind == "Close":
                return

    async def _flush(self, text: str, previous: asyncio.Task[None] | None, sequence_id: int) -> None:
        if previous is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await previous
        fault = self.server.fault_for("speak")
        if fault is Fault.HANG:
            await self.server.hang()
            return
        pcm = await asynthesize(text, sample_rate_hz=self.rate) if text else b""
        await self.server.pause(self.server.tts_first_byte_ms / 1000.0)
        chunk = 2 * self.rate * TTS_CHUNK_MS // 1000
        for offset in range(0, len(pcm), chunk):
            await self.ws.send_bytes(pcm[offset : offset + chunk])
            if fault is Fault.CLOSE:
                await self.ws.close(code=1011, reason="fake voice: dropped")
                return
        await self._send({"type": "Flushed", "sequence_id": sequence_id})

    async def _send(self, payload: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await self.ws.send_text(orjson.dumps(payload).decode())
