"""Wire-level stand-ins for the speech vendors, so the real SDKs and pipecat services run unchanged.

:class:`FakeVoiceServer` is one local HTTP + WebSocket server speaking four vendor
protocols:

* **OpenAI** ``POST /v1/audio/transcriptions`` (multipart ``file``, ``model``,
  ``language``, ``response_format`` json/text/verbose_json) and ``POST /v1/audio/speech``
  (JSON; ``response_format`` ``pcm``: raw s16le mono at 24 kHz, streamed; or ``wav``).
  Source: https://platform.openai.com/docs/api-reference/audio
* **Deepgram** streaming STT, WebSocket ``/v1/listen`` (binary linear16 up;
  ``KeepAlive``/``Finalize``/``CloseStream`` JSON up; ``Results`` with ``is_final`` /
  ``speech_final`` / ``from_finalize``, ``SpeechStarted`` (``vad_events=true``),
  ``UtteranceEnd`` (``utterance_end_ms``) and a closing ``Metadata`` down).
  Source: https://developers.deepgram.com/reference/speech-to-text/listen-streaming
* **Deepgram Aura** streaming TTS, WebSocket ``/v1/speak`` (``Speak``/``Flush``/``Clear``/
  ``Close`` up; ``Metadata``, binary linear16 at the URL's ``sample_rate``, ``Flushed``,
  ``Cleared`` down). Source: https://developers.deepgram.com/reference/text-to-speech/speak-streaming

Transcripts come from a script (:meth:`FakeVoiceServer.script_transcripts`, one text per
utterance, in order) or, when it is empty, from pocketsphinx listening to the audio
received. Speech is real espeak-ng audio. Knobs: fixed latencies (``stt_final_delay_ms``
after the end of an utterance, ``tts_first_byte_ms`` before the first audio byte) and
failures per endpoint (:meth:`FakeVoiceServer.fail`: HTTP 500 / refused handshake,
hang, connection dropped). Every request and WebSocket message is recorded in
:attr:`FakeVoiceServer.requests`.

Deviation: Deepgram's own ``endpointing`` default is 10 ms of silence; the stand-in's
energy detector would cut between words, so it uses 300 ms unless the URL says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.testing.voice_audio import asynthesize, pcm_to_wav, rms, transcribe, wav_to_pcm

__all__ = ["Endpoint", "Fault", "FakeVoiceServer", "VoiceRequest"]

Endpoint = Literal["transcriptions", "speech", "listen", "speak"]
#: OpenAI speech ``pcm`` output rate, in Hz (documented, fixed).
OPENAI_PCM_RATE_HZ = 24000
#: Level above which a 20 ms chunk of caller audio counts as speech (s16le RMS units).
SPEECH_RMS = 300.0
#: Stand-in endpointing when the URL gives none, in ms (see the module docstring).
DEFAULT_ENDPOINTING_MS = 300
#: Audio sent per binary message or HTTP chunk by the TTS stand-ins, in ms.
TTS_CHUNK_MS = 100


class Fault(enum.Enum):
    """A failure to play on one endpoint until cleared.

    ERROR: HTTP 500 (HTTP endpoints) or a refused WebSocket handshake (500).
    HANG: accept the request, then never answer (until the server stops).
    CLOSE: drop the connection mid-way (after the first audio chunk, either way).
    """

    ERROR = "error"
    HANG = "hang"
    CLOSE = "close"


@dataclass
class VoiceRequest:
    """One HTTP request or WebSocket connection the stand-in received.

    Attributes:
        endpoint: which API.
        started_at: ``time.monotonic()`` at arrival, in s.
        params: query parameters and form/JSON fields (no audio).
        text: text to speak (speech; Aura ``Speak`` texts joined with spaces).
        audio_bytes: caller audio received (transcriptions, listen), in bytes.
        audio: the uploaded utterance (transcriptions), s16le mono at `audio_rate_hz`.
        audio_rate_hz: its rate, from the WAV header or the listen URL, in Hz.
        messages: WebSocket messages received: ``"audio"`` or the JSON ``type``.
        last_activity_at: ``time.monotonic()`` of the last byte received, in s.
        transcripts: transcripts answered.
    """

    endpoint: Endpoint
    started_at: float
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""
    audio_bytes: int = 0
    audio: bytes = b""
    audio_rate_hz: int = 0
    messages: list[str] = field(default_factory=list)
    last_activity_at: float = 0.0
    transcripts: list[str] = field(default_factory=list)

    def touch(self, message: str | None = None) -> None:
        """Note activity now (and the message kind, for WebSockets)."""
        self.last_activity_at = time.monotonic()
        if message is not None:
            self.messages.append(message)


class FakeVoiceServer:
    """Local stand-in for OpenAI audio, Deepgram listen and Deepgram Aura speak.

    Point ``OPENAI_BASE_URL`` at :attr:`openai_base_url` and ``DEEPGRAM_BASE_URL`` at
    :attr:`base_url`. Usage::

        async with FakeVoiceServer(stt_final_delay_ms=150) as voice:
            voice.script_transcripts(["where is my order"])
            voice.fail("speech", Fault.ERROR)

    Args:
        host: interface to bind.
        port: TCP port; 0 picks a free one (the real one is in `port` after `start`).
        stt_final_delay_ms: delay from the end of an utterance (upload received, or
            ``Finalize``/endpointing on the listen socket) to its final transcript, in ms.
        tts_first_byte_ms: delay before the first audio byte of each speech request or
            Aura ``Flush``, in ms.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        stt_final_delay_ms: float = 0.0,
        tts_first_byte_ms: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.stt_final_delay_ms = stt_final_delay_ms
        self.tts_first_byte_ms = tts_first_byte_ms
        self.requests: list[VoiceRequest] = []
        self._transcripts: deque[str] = deque()
        self._faults: dict[str, Fault] = {}
        self._stopping = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
                WebSocketRoute("/v1/listen", self._listen),
                WebSocketRoute("/v1/speak", self._speak),
            ]
        )

    # ----------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>`` (the value for ``DEEPGRAM_BASE_URL``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``http://<host>:<port>/v1`` (the value for ``OPENAI_BASE_URL``)."""
        return self.base_url + "/v1"

    def script_transcripts(self, texts: list[str]) -> None:
        """Queue transcripts, one per utterance (any STT endpoint), in order."""
        self._transcripts.extend(texts)

    def fail(self, endpoint: Endpoint, fault: Fault | None) -> None:
        """Make `endpoint` fail with `fault` from now on (None: behave again)."""
        if fault is None:
            self._faults.pop(endpoint, None)
        else:
            self._faults[endpoint] = fault

    def reset(self) -> None:
        """Drop scripts, faults and the request record."""
        self._transcripts.clear()
        self._faults.clear()
        self.requests.clear()

    def requests_after(self, moment: float) -> list[VoiceRequest]:
        """Requests that started, or received anything, after `moment` (``time.monotonic()``)."""
        return [r for r in self.requests if r.started_at > moment or r.last_activity_at > moment]

    async def start(self) -> Self:
        """Serve in the running loop until `stop`; returns once bound.

        Raises:
            RuntimeError: uvicorn exited before listening.
        """
        self._stopping = asyncio.Event()
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, lifespan="off", log_level="warning",
            timeout_graceful_shutdown=1, ws="websockets-sansio",
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                raise RuntimeError(f"fake voice server failed to start on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stop serving; hangs and latencies end at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> Self:
        """`start`."""
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        """`stop`."""
        await self.stop()

    # ----------------------------------------------------------------- helpers

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _hang(self) -> None:
        await self._sleep(3600.0)

    async def _transcript_of(self, pcm: bytes, sample_rate_hz: int) -> str:
        if self._transcripts:
            return self._transcripts.popleft()
        if not pcm:
            return ""
        return await asyncio.to_thread(transcribe, pcm, sample_rate_hz)

    def _record(self, endpoint: Endpoint, params: dict[str, str]) -> VoiceRequest:
        record = VoiceRequest(endpoint, time.monotonic(), params)
        record.touch()
        self.requests.append(record)
        return record

    # ------------------------------------------------------------------ OpenAI

    async def _transcriptions(self, http: Request) -> Response:
        if not http.headers.get("authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.", "invalid_request_error")
        form = await http.form()
        upload = form.get("file")
        params = {k: str(v) for k, v in form.items() if k != "file"}
        record = self._record("transcriptions", params)
        if not isinstance(upload, UploadFile):
            return _openai_error(400, "'file' is a required property", "invalid_request_error")
        try:
            pcm, rate = wav_to_pcm(await upload.read())
        except ValueError as exc:
            return _openai_error(400, f"Invalid file format: {exc}", "invalid_request_error")
        record.audio_bytes, record.audio, record.audio_rate_hz = len(pcm), pcm, rate
        record.touch()
        fault = self._faults.get("transcriptions")
        if fault is Fault.HANG:
            await self._hang()
        if fault is not None and fault is not Fault.CLOSE:
            return _openai_error(500, "The server had an error processing your request.", "server_error")
        await self._sleep(self.stt_final_delay_ms / 1000.0)
        text = await self._transcript_of(pcm, rate)
        record.transcripts.append(text)
        if fault is Fault.CLOSE:
            return StreamingResponse(_dropped(b'{"text": '), media_type="application/json")
        response_format = params.get("response_format", "json")
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            duration = len(pcm) / 2 / rate
            return JSONResponse(
                {"task": "transcribe", "language": "english", "duration": duration, "text": text,
                 "segments": []}
            )  # fmt: skip
        return JSONResponse({"text": text, "usage": {"type": "duration", "seconds": int(len(pcm) / 2 / rate)}})

    async def _speech(self, http: Request) -> Response:
        if not http.headers.get("authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.", "invalid_request_error")
        body = orjson.loads(await http.body())
        text = str(body.get("input", ""))
        params = {k: str(v) for k, v in body.items() if k != "input"}
        record = self._record("speech", params)
        record.text = text
        response_format = params.get("response_format", "mp3")
        if not text or response_format not in {"pcm", "wav"}:
            return _openai_error(400, f"unsupported request: format {response_format}", "invalid_request_error")
        fault = self._faults.get("speech")
        if fault is Fault.HANG:
            await self._hang()
        if fault is Fault.ERROR or fault is Fault.HANG:
            return _openai_error(500, "The server had an error processing your request.", "server_error")
        pcm = await asynthesize(text, sample_rate_hz=OPENAI_PCM_RATE_HZ)
        data = pcm if response_format == "pcm" else pcm_to_wav(pcm, OPENAI_PCM_RATE_HZ)
        chunk = 2 * OPENAI_PCM_RATE_HZ * TTS_CHUNK_MS // 1000

        async def stream() -> Any:
            await self._sleep(self.tts_first_byte_ms / 1000.0)
            for offset in range(0, len(data), chunk):
                yield data[offset : offset + chunk]
                if fault is Fault.CLOSE:
                    raise ConnectionAbortedError("fake voice: dropping the speech stream")

        media = "audio/pcm" if response_format == "pcm" else "audio/wav"
        return StreamingResponse(stream(), media_type=media)

    # ---------------------------------------------------------------- Deepgram

    async def _refuse_or_accept(self, ws: WebSocket, endpoint: Endpoint) -> VoiceRequest | None:
        """Check the key, play an ERROR fault, accept; None when the handshake was refused."""
        record = self._record(endpoint, dict(ws.query_params))
        if not ws.headers.get("authorization", "").lower().startswith("token "):
            await ws.send_denial_response(Response(b'{"err_code":"INVALID_AUTH"}', status_code=401))
            return None
        if self._faults.get(endpoint) is Fault.ERROR:
            await ws.send_denial_response(Response(b'{"err_code":"INTERNAL"}', status_code=500))
            return None
        await ws.accept()
        return record

    async def _listen(self, ws: WebSocket) -> None:
        record = await self._refuse_or_accept(ws, "listen")
        if record is None:
            return
        session = _ListenSession(self, ws, record)
        await session.run()

    async def _speak(self, ws: WebSocket) -> None:
        record = await self._refuse_or_accept(ws, "speak")
        if record is None:
            return
        session = _SpeakSession(self, ws, record)
        await session.run()


class _ListenSession:
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
        sender = asyncio.create_task(self._send_finals())
        try:
            await self._receive()
        finally:
            await self.finals.put(None)
            if self.server._faults.get("listen") is Fault.HANG:
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
                if self.server._faults.get("listen") is Fault.CLOSE:
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
        hang = self.server._faults.get("listen") is Fault.HANG
        while (item := await self.finals.get()) is not None:
            pcm, start_s, from_finalize, ended_at = item
            if hang:
                await self.server._hang()
                return
            text = await self.server._transcript_of(pcm, self.rate) if pcm else ""
            self.record.transcripts.append(text)
            wait_s = self.server.stt_final_delay_ms / 1000.0 - (time.monotonic() - ended_at)
            duration = len(pcm) / 2 / self.rate
            if self.interim and text:
                await self._send(self._results(text, start_s, duration, final=False, from_finalize=False))
            await self.server._sleep(max(0.0, wait_s))
            await self._send(self._results(text, start_s, duration, final=True, from_finalize=from_finalize))
            if self.utterance_end_ms is not None and text:
                await self._send({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": start_s + duration})
        await self._send(
            {"type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
             "sha256": "0" * 64, "created": datetime.now(UTC).isoformat(), "duration": self.received_s,
             "channels": 1, "models": [self.request_id], "model_info": {}}
        )  # fmt: skip

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
                            {"word": w, "start": start_s + i * step, "end": start_s + (i + 1) * step,
                             "confidence": 0.9, "punctuated_word": w}
                            for i, w in enumerate(words)
                        ],  # fmt: skip
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


class _SpeakSession:
    """One Deepgram Aura ``/v1/speak`` connection: Speak texts, audio on Flush, Clear, Close."""

    def __init__(self, server: FakeVoiceServer, ws: WebSocket, record: VoiceRequest) -> None:
        self.server, self.ws, self.record = server, ws, record
        self.rate = int(record.params.get("sample_rate", "24000"))
        self.text: list[str] = []
        self.sequence_id = 0
        self.flushes: set[asyncio.Task[None]] = set()
        self.previous: asyncio.Task[None] | None = None

    async def run(self) -> None:
        model = self.record.params.get("model", "aura-2-helena-en")
        await self._send({"type": "Metadata", "request_id": str(uuid.uuid4()), "model_name": model,
                          "model_version": "fake", "model_uuid": str(uuid.uuid4())})  # fmt: skip
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
                self.record.text = " ".join(t.strip() for t in [self.record.text, *self.text[-1:]] if t.strip())
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
        fault = self.server._faults.get("speak")
        if fault is Fault.HANG:
            await self.server._hang()
            return
        pcm = await asynthesize(text, sample_rate_hz=self.rate) if text else b""
        await self.server._sleep(self.server.tts_first_byte_ms / 1000.0)
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


def _openai_error(status: int, message: str, kind: str) -> JSONResponse:
    """An OpenAI-shaped error body (``{"error": {"message", "type", "param", "code"}}``)."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status_code=status
    )


async def _dropped(first: bytes) -> Any:
    """A response body that sends `first`, then breaks the connection."""
    yield first
    raise ConnectionAbortedError("fake voice: dropping the connection")
