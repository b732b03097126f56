"""The voice stand-ins speak the vendors' wire protocols (checked with plain HTTP/WebSocket clients)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import websockets

from app.testing.fake_voice import FakeVoiceServer, Fault
from app.testing.voice_audio import pcm_to_wav, rms, silence, synthesize

AUTH = {"Authorization": "Token dg-test-key"}
BEARER = {"Authorization": "Bearer sk-test"}


@pytest.fixture
async def voice() -> AsyncIterator[FakeVoiceServer]:
    """The stand-in on a free loopback port."""
    async with FakeVoiceServer() as server:
        yield server


def upload(pcm: bytes, rate: int) -> dict[str, Any]:
    return {"files": {"file": ("a.wav", pcm_to_wav(pcm, rate), "audio/wav")}, "data": {"model": "whisper-1"}}


async def test_transcription_returns_scripted_text_then_what_pocketsphinx_hears(
    voice: FakeVoiceServer,
) -> None:
    voice.script_transcripts(["I would like a refund"])
    async with httpx.AsyncClient(base_url=voice.openai_base_url, headers=BEARER) as client:
        first = await client.post("/audio/transcriptions", **upload(synthesize("my order please"), 16000))
        second = await client.post("/audio/transcriptions", **upload(synthesize("my order please"), 16000))
        as_text = await client.post(
            "/audio/transcriptions",
            files={"file": ("a.wav", pcm_to_wav(synthesize("my order please"), 16000), "audio/wav")},
            data={"model": "whisper-1", "response_format": "text"},
        )
    assert first.json()["text"] == "I would like a refund"
    assert "order" in second.json()["text"]
    assert "order" in as_text.text
    assert [r.endpoint for r in voice.requests] == ["transcriptions"] * 3


async def test_transcription_waits_the_configured_final_latency(voice: FakeVoiceServer) -> None:
    voice.stt_final_delay_ms = 150
    voice.script_transcripts(["hello"])
    async with httpx.AsyncClient(base_url=voice.openai_base_url, headers=BEARER) as client:
        started = time.monotonic()
        response = await client.post("/audio/transcriptions", **upload(silence(200, 8000), 8000))
    assert response.json()["text"] == "hello"
    assert time.monotonic() - started >= 0.15


async def test_openai_faults_error_and_hang(voice: FakeVoiceServer) -> None:
    async with httpx.AsyncClient(base_url=voice.openai_base_url, headers=BEARER) as client:
        voice.fail("transcriptions", Fault.ERROR)
        failed = await client.post("/audio/transcriptions", **upload(silence(100, 8000), 8000))
        voice.fail("speech", Fault.HANG)
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                "/audio/speech",
                json={"input": "hi", "model": "tts-1", "voice": "alloy", "response_format": "pcm"},
                timeout=0.5,
            )
        unauthorised = await client.post("/audio/speech", json={"input": "hi"}, headers={"Authorization": ""})
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "server_error"
    assert unauthorised.status_code == 401


async def test_speech_streams_real_pcm_at_24khz(voice: FakeVoiceServer) -> None:
    body = {"input": "Your order has shipped.", "model": "tts-1", "voice": "alloy", "response_format": "pcm"}
    async with httpx.AsyncClient(base_url=voice.openai_base_url, headers=BEARER) as client:
        response = await client.post("/audio/speech", json=body)
    assert response.status_code == 200
    seconds = len(response.content) / 2 / 24000
    assert 0.8 < seconds < 5
    assert rms(response.content) > 500
    assert voice.requests[0].text == "Your order has shipped."


async def _listen(voice: FakeVoiceServer, query: str, pcm: bytes, *control: str) -> list[dict[str, Any]]:
    """Send `pcm` in 20 ms messages, then the control messages; every JSON message received."""
    url = f"ws://127.0.0.1:{voice.port}/v1/listen?encoding=linear16&sample_rate=8000&{query}"
    received: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers=AUTH) as ws:
        for offset in range(0, len(pcm), 320):
            await ws.send(pcm[offset : offset + 320])
        for kind in control:
            await ws.send(orjson.dumps({"type": kind}).decode())
        async for message in ws:
            received.append(orjson.loads(message))
    return received


async def test_listen_endpointing_gives_speech_final_results_then_metadata(voice: FakeVoiceServer) -> None:
    pcm = synthesize("my order please", sample_rate_hz=8000) + silence(500, 8000)
    messages = await _listen(
        voice, "interim_results=true&utterance_end_ms=1000&vad_events=true", pcm, "CloseStream"
    )
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "SpeechStarted"
    results = [m for m in messages if m["type"] == "Results"]
    assert [r["is_final"] for r in results] == [False, True]
    final = results[-1]
    assert final["speech_final"] is True and final["from_finalize"] is False
    assert "order" in final["channel"]["alternatives"][0]["transcript"]
    assert final["channel"]["alternatives"][0]["words"]
    assert kinds[-2:] == ["UtteranceEnd", "Metadata"]


async def test_listen_finalize_flushes_the_utterance(voice: FakeVoiceServer) -> None:
    voice.script_transcripts(["press one"])
    pcm = synthesize("press one", sample_rate_hz=8000)  # no trailing silence: only Finalize ends it
    messages = await _listen(voice, "endpointing=false", pcm, "Finalize", "CloseStream")
    [final] = [m for m in messages if m["type"] == "Results"]
    assert final["from_finalize"] is True and final["is_final"] is True
    assert final["channel"]["alternatives"][0]["transcript"] == "press one"
    assert voice.requests[0].messages[-2:] == ["Finalize", "CloseStream"]


async def test_listen_refuses_bad_keys_and_error_faults(voice: FakeVoiceServer) -> None:
    url = f"ws://127.0.0.1:{voice.port}/v1/listen?encoding=linear16&sample_rate=8000"
    with pytest.raises(websockets.InvalidStatus) as no_key:
        async with websockets.connect(url):
            pass
    voice.fail("listen", Fault.ERROR)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers=AUTH):
            pass
    assert no_key.value.response.status_code == 401
    assert refused.value.response.status_code == 500


async def test_listen_close_fault_drops_the_socket(voice: FakeVoiceServer) -> None:
    voice.fail("listen", Fault.CLOSE)
    url = f"ws://127.0.0.1:{voice.port}/v1/listen?encoding=linear16&sample_rate=8000"
    async with websockets.connect(url, additional_headers=AUTH) as ws:
        await ws.send(silence(20, 8000))
        with pytest.raises(websockets.ConnectionClosedError):
            await ws.recv()


async def test_speak_flush_streams_audio_then_flushed_and_clear_is_acknowledged(
    voice: FakeVoiceServer,
) -> None:
    url = f"ws://127.0.0.1:{voice.port}/v1/speak?model=aura-2-helena-en&encoding=linear16&sample_rate=16000"
    audio = bytearray()
    kinds: list[str] = []
    async with websockets.connect(url, additional_headers=AUTH) as ws:
        await ws.send(orjson.dumps({"type": "Speak", "text": "Your order has shipped."}).decode())
        await ws.send(orjson.dumps({"type": "Flush"}).decode())
        async for message in ws:
            if isinstance(message, bytes):
                audio += message
                continue
            kinds.append(orjson.loads(message)["type"])
            if kinds[-1] == "Flushed":
                await ws.send(orjson.dumps({"type": "Clear"}).decode())
            elif kinds[-1] == "Cleared":
                await ws.send(orjson.dumps({"type": "Close"}).decode())
    assert kinds == ["Metadata", "Flushed", "Cleared"]
    assert len(audio) / 2 / 16000 > 0.8
    assert rms(bytes(audio)) > 500


async def test_requests_after_a_moment_shows_late_traffic_only(voice: FakeVoiceServer) -> None:
    async with httpx.AsyncClient(base_url=voice.openai_base_url, headers=BEARER) as client:
        voice.script_transcripts(["a", "b"])
        await client.post("/audio/transcriptions", **upload(silence(100, 8000), 8000))
        moment = time.monotonic()
        assert voice.requests_after(moment) == []
        await client.post("/audio/transcriptions", **upload(silence(100, 8000), 8000))
    assert [r.transcripts for r in voice.requests_after(moment)] == [["b"]]
