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
import time
from collections import deque
from typing import Any, Self

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from app.testing.fake_deepgram import ListenSession, SpeakSession
from app.testing.voice_audio import asynthesize, pcm_to_wav, transcribe, wav_to_pcm
from app.testing.voice_model import OPENAI_PCM_RATE_HZ, TTS_CHUNK_MS, Endpoint, Fault, VoiceRequest

__all__ = ["Endpoint", "FakeVoiceServer", "Fault", "VoiceRequest"]


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
                Route("/v1/speak", self._speak_rest, methods=["POST"]),
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
            self.app,
            host=self.host,
            port=self.port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
            ws="websockets-sansio",
        )
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

    def fault_for(self, endpoint: Endpoint) -> Fault | None:
        """The fault set for `endpoint`, if any."""
        return self._faults.get(endpoint)

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, waking at once when the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def hang(self) -> None:
        """Wait until the server stops (a HANG fault)."""
        await self.pause(3600.0)

    async def transcript_of(self, pcm: bytes, sample_rate_hz: int) -> str:
        """The next scripted transcript, else what pocketsphinx hears in `pcm`."""
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
        fault = self.fault_for("transcriptions")
        if fault is Fault.HANG:
            await self.hang()
        if fault is not None and fault is not Fault.CLOSE:
            return _openai_error(500, "The server had an error processing your request.", "server_error")
        await self.pause(self.stt_final_delay_ms / 1000.0)
        text = await self.transcript_of(pcm, rate)
        record.transcripts.append(text)
        if fault is Fault.CLOSE:
            return StreamingResponse(_dropped(b'{"text": '), media_type="application/json")
        response_format = params.get("response_format", "json")
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            duration = len(pcm) / 2 / rate
            return JSONResponse(
                {
                    "task": "transcribe",
                    "language": "english",
                    "duration": duration,
                    "text": text,
                    "segments": [],
                }
            )
        return JSONResponse(
            {"text": text, "usage": {"type": "duration", "seconds": int(len(pcm) / 2 / rate)}}
        )

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
            return _openai_error(
                400, f"unsupported request: format {response_format}", "invalid_request_error"
            )
        fault = self.fault_for("speech")
        if fault is Fault.HANG:
            await self.hang()
        if fault is Fault.ERROR or fault is Fault.HANG:
            return _openai_error(500, "The server had an error processing your request.", "server_error")
        pcm = await asynthesize(text, sample_rate_hz=OPENAI_PCM_RATE_HZ)
        data = pcm if response_format == "pcm" else pcm_to_wav(pcm, OPENAI_PCM_RATE_HZ)
        chunk = 2 * OPENAI_PCM_RATE_HZ * TTS_CHUNK_MS // 1000

        async def stream() -> Any:
            await self.pause(self.tts_first_byte_ms / 1000.0)
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
        if self.fault_for(endpoint) is Fault.ERROR:
            await ws.send_denial_response(Response(b'{"err_code":"INTERNAL"}', status_code=500))
            return None
        await ws.accept()
        return record

    async def _listen(self, ws: WebSocket) -> None:
        record = await self._refuse_or_accept(ws, "listen")
        if record is None:
            return
        session = ListenSession(self, ws, record)
        await session.run()

    async def _speak(self, ws: WebSocket) -> None:
        record = await self._refuse_or_accept(ws, "speak")
        if record is None:
            return
        session = SpeakSession(self, ws, record)
        await session.run()

    async def _speak_rest(self, http: Request) -> Response:
        """Deepgram Aura REST: ``POST /v1/speak?model=&encoding=linear16&sample_rate=&container=none``.

        Body ``{"text": …}``; answers the whole utterance as raw s16le at ``sample_rate``.
        Source: https://developers.deepgram.com/reference/text-to-speech/speak-request
        """
        record = self._record("speak", dict(http.query_params))
        if not http.headers.get("authorization", "").lower().startswith("token "):
            return JSONResponse({"err_code": "INVALID_AUTH"}, status_code=401)
        record.text = str(orjson.loads(await http.body()).get("text", ""))
        if self.fault_for("speak") is Fault.ERROR:
            return JSONResponse({"err_code": "INTERNAL"}, status_code=500)
        if http.query_params.get("encoding", "linear16") != "linear16" or not record.text:
            return JSONResponse({"err_code": "UNSUPPORTED"}, status_code=400)
        rate_hz = int(http.query_params.get("sample_rate", "24000"))
        await self.pause(self.tts_first_byte_ms / 1000.0)
        return Response(await asynthesize(record.text, sample_rate_hz=rate_hz), media_type="audio/l16")


def _openai_error(status: int, message: str, kind: str) -> JSONResponse:
    """An OpenAI-shaped error body (``{"error": {"message", "type", "param", "code"}}``)."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status_code=status
    )


async def _dropped(first: bytes) -> Any:
    """A response body that sends `first`, then breaks the connection."""
    yield first
    raise ConnectionAbortedError("fake voice: dropping the connection")
