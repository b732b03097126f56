"""The STT and TTS providers' pipecat services, run unchanged against the wire-level stand-ins.

Speech is made by espeak-ng in the test; transcripts come from the stand-in's
pocketsphinx (so a wrong upload format or sample rate would garble them). Each test
drives a real pipecat pipeline (`pipecat.tests.utils.run_test`) with the frames the call
pipeline will send: VAD start, caller audio, VAD stop for STT; a sentence for TTS.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Sequence

import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.tests.utils import SleepFrame, run_test

from app.services.providers.base import Capability, ProviderNotConfigured
from app.services.providers.registry import ProviderRegistry
from app.services.providers.stt.deepgram import DeepgramSettings, DeepgramSTTProvider
from app.services.providers.stt.openai import OpenAISTTProvider, OpenAISTTSettings
from app.services.providers.stt.pocketsphinx import PocketsphinxSTTProvider
from app.services.providers.tts.deepgram import DeepgramTTSProvider
from app.services.providers.tts.espeak import EspeakSettings, EspeakTTSProvider
from app.services.providers.tts.openai import OpenAITTSProvider, OpenAITTSSettings
from app.testing.fake_voice import FakeVoiceServer, Fault
from app.testing.voice_audio import rms, silence, synthesize

KEY = "sk-test-voice-0a1b2c3d"
PHRASE = "my order please"
FRAME_MS = 20


@pytest.fixture
async def voice() -> AsyncIterator[FakeVoiceServer]:
    """The vendor stand-in on a free loopback port."""
    async with FakeVoiceServer() as server:
        yield server


def caller_frames(pcm: bytes, sample_rate_hz: int, *, settle_s: float) -> list[Frame]:
    """What the call pipeline gives STT: VAD start, 20 ms audio frames, VAD stop, then a wait."""
    step = 2 * sample_rate_hz * FRAME_MS // 1000
    audio = [InputAudioRawFrame(pcm[i : i + step], sample_rate_hz, 1) for i in range(0, len(pcm), step)]
    return [VADUserStartedSpeakingFrame(), *audio, VADUserStoppedSpeakingFrame(), SleepFrame(settle_s)]


async def run_stt(service: STTService, pcm: bytes, sample_rate_hz: int) -> tuple[str, list[ErrorFrame]]:
    """Feed one utterance; the transcript (finals joined) and every error frame seen."""
    down, up = await run_test(
        service, frames_to_send=caller_frames(pcm, sample_rate_hz, settle_s=2.5), start_timeout=5
    )
    texts = [f.text for f in down if isinstance(f, TranscriptionFrame)]
    errors = [f for f in (*down, *up) if isinstance(f, ErrorFrame)]
    return " ".join(texts).lower(), errors


async def run_tts(service: TTSService, text: str) -> tuple[list[TTSAudioRawFrame], list[ErrorFrame]]:
    """Speak one sentence; the audio frames produced and every error frame seen."""
    down, up = await run_test(service, frames_to_send=[TTSSpeakFrame(text), SleepFrame(2.5)], start_timeout=5)
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    errors = [f for f in (*down, *up) if isinstance(f, ErrorFrame)]
    return audio, errors


def spoken(frames: Sequence[TTSAudioRawFrame]) -> bytes:
    """The audio of the frames, joined."""
    return b"".join(f.audio for f in frames)


def openai_stt(voice: FakeVoiceServer) -> OpenAISTTProvider:
    return OpenAISTTProvider(OpenAISTTSettings(openai_api_key=KEY, openai_base_url=voice.openai_base_url))


def openai_tts(voice: FakeVoiceServer) -> OpenAITTSProvider:
    return OpenAITTSProvider(OpenAITTSSettings(openai_api_key=KEY, openai_base_url=voice.openai_base_url))


def deepgram(voice: FakeVoiceServer) -> DeepgramSettings:
    return DeepgramSettings(deepgram_api_key=KEY, deepgram_base_url=voice.base_url)


# ----------------------------------------------------------------------------- STT


@pytest.mark.parametrize("sample_rate_hz", [16000, 8000])
async def test_openai_stt_transcribes_a_caller_utterance(voice: FakeVoiceServer, sample_rate_hz: int) -> None:
    service = openai_stt(voice).create_service(sample_rate_hz=sample_rate_hz, model="whisper-1")
    pcm = synthesize(PHRASE, sample_rate_hz=sample_rate_hz)
    text, errors = await run_stt(service, pcm, sample_rate_hz)
    assert not errors
    [upload] = voice.requests
    assert upload.endpoint == "transcriptions"
    assert (upload.params["model"], upload.params["language"]) == ("whisper-1", "en")
    assert upload.audio_rate_hz == sample_rate_hz
    assert upload.audio.startswith(pcm), "the whole utterance is uploaded, at the call's rate"
    assert text == upload.transcripts[0].lower()
    if sample_rate_hz == 16000:  # pocketsphinx on 8 kHz espeak speech is too unsteady to assert words
        assert "order" in text


async def test_openai_stt_server_error_surfaces_as_an_error_frame(voice: FakeVoiceServer) -> None:
    voice.fail("transcriptions", Fault.ERROR)
    service = openai_stt(voice).create_service(sample_rate_hz=16000)
    text, errors = await run_stt(service, synthesize(PHRASE), 16000)
    assert text == ""
    assert errors
    assert len(voice.requests) == 1, "no SDK retries: a caller cannot wait for backoff"


async def test_openai_stt_hang_ends_at_the_request_timeout_as_an_error_frame(voice: FakeVoiceServer) -> None:
    voice.fail("transcriptions", Fault.HANG)
    settings = OpenAISTTSettings(
        openai_api_key=KEY, openai_base_url=voice.openai_base_url, openai_audio_timeout_seconds=0.5
    )
    service = OpenAISTTProvider(settings).create_service(sample_rate_hz=8000)
    text, errors = await run_stt(service, synthesize(PHRASE, sample_rate_hz=8000), 8000)
    assert text == ""
    assert errors


async def test_deepgram_stt_streams_and_gets_the_final_after_finalize(voice: FakeVoiceServer) -> None:
    voice.stt_final_delay_ms = 150
    service = DeepgramSTTProvider(deepgram(voice)).create_service(sample_rate_hz=16000)
    text, errors = await run_stt(service, synthesize(PHRASE) + silence(100, 16000), 16000)
    assert "order" in text
    assert not errors
    [listen] = voice.requests
    assert listen.params["sample_rate"] == "16000"
    assert listen.params["encoding"] == "linear16"
    assert "Finalize" in listen.messages
    assert listen.audio_bytes >= len(synthesize(PHRASE))


@pytest.mark.parametrize("sample_rate_hz", [16000, 8000])
async def test_pocketsphinx_recognises_an_espeak_phrase_offline(sample_rate_hz: int) -> None:
    provider = PocketsphinxSTTProvider()
    assert provider.offline and "low accuracy" in provider.label
    service = provider.create_service(sample_rate_hz=sample_rate_hz)
    text, errors = await run_stt(service, synthesize(PHRASE, sample_rate_hz=sample_rate_hz), sample_rate_hz)
    assert "order" in text
    assert not errors


# ----------------------------------------------------------------------------- TTS


@pytest.mark.parametrize("sample_rate_hz", [8000, 16000])
async def test_openai_tts_streams_speech_at_the_asked_rate(
    voice: FakeVoiceServer, sample_rate_hz: int
) -> None:
    voice.tts_first_byte_ms = 150
    service = openai_tts(voice).create_service(sample_rate_hz=sample_rate_hz)
    frames, errors = await run_tts(service, "Your order has shipped.")
    assert not errors
    assert frames and all(f.sample_rate == sample_rate_hz for f in frames)
    audio = spoken(frames)
    expected = len(synthesize("Your order has shipped.", sample_rate_hz=sample_rate_hz))
    assert abs(len(audio) - expected) < expected * 0.1, "24 kHz stream resampled, not relabelled"
    assert rms(audio) > 500
    [speech] = voice.requests
    assert speech.params["response_format"] == "pcm"
    assert speech.text == "Your order has shipped."


async def test_openai_tts_server_error_surfaces_as_an_error_frame(voice: FakeVoiceServer) -> None:
    voice.fail("speech", Fault.ERROR)
    frames, errors = await run_tts(openai_tts(voice).create_service(sample_rate_hz=8000), "Hello.")
    assert not frames
    assert errors
    assert len(voice.requests) == 1


async def test_openai_tts_dropped_stream_surfaces_as_an_error_frame(voice: FakeVoiceServer) -> None:
    voice.fail("speech", Fault.CLOSE)
    _, errors = await run_tts(openai_tts(voice).create_service(sample_rate_hz=8000), "Hello there.")
    assert errors


async def test_deepgram_aura_streams_speech_at_the_asked_rate(voice: FakeVoiceServer) -> None:
    service = DeepgramTTSProvider(deepgram(voice)).create_service(sample_rate_hz=8000)
    frames, errors = await run_tts(service, "Your order has shipped.")
    assert not errors
    assert frames and all(f.sample_rate == 8000 for f in frames)
    assert rms(spoken(frames)) > 500
    [speak] = voice.requests
    assert speak.params["sample_rate"] == "8000"
    assert speak.params["model"] == "aura-2-helena-en"
    assert "Your order has shipped." in speak.text


async def test_deepgram_aura_refused_connection_surfaces_as_an_error_frame(voice: FakeVoiceServer) -> None:
    voice.fail("speak", Fault.ERROR)
    service = DeepgramTTSProvider(deepgram(voice)).create_service(sample_rate_hz=8000)
    frames, errors = await run_tts(service, "Hello.")
    assert not frames
    assert errors


@pytest.mark.parametrize("sample_rate_hz", [8000, 16000])
async def test_espeak_produces_non_silent_speech_at_the_asked_rate(sample_rate_hz: int) -> None:
    service = EspeakTTSProvider().create_service(sample_rate_hz=sample_rate_hz)
    frames, errors = await run_tts(service, "Your order has shipped.")
    assert not errors
    assert frames and all(f.sample_rate == sample_rate_hz for f in frames)
    audio = spoken(frames)
    assert len(audio) / 2 / sample_rate_hz > 0.8  # seconds of speech
    assert rms(audio) > 500


async def test_espeak_missing_binary_surfaces_as_an_error_frame(tmp_path: object) -> None:
    provider = EspeakTTSProvider(EspeakSettings(espeak_binary="espeak-ng"))
    service = provider.create_service(sample_rate_hz=8000)
    service._binary = "/nonexistent/espeak-ng"  # type: ignore[attr-defined]
    frames, errors = await run_tts(service, "Hello.")
    assert not frames
    assert errors


# ------------------------------------------------------------------------ registry


def test_registry_lists_the_voice_providers_with_labels_and_status() -> None:
    registry = ProviderRegistry.builtin(
        {"stt:openai": OpenAISTTSettings(openai_api_key=None), "tts:espeak": EspeakSettings()}
    )
    assert {"openai", "deepgram", "pocketsphinx"} <= set(registry.names(Capability.STT))
    assert {"openai", "deepgram", "espeak"} <= set(registry.names(Capability.TTS))
    statuses = {(s.capability, s.name): s for s in registry.statuses()}
    assert statuses[(Capability.STT, "pocketsphinx")].label == "pocketsphinx (offline, low accuracy)"
    assert statuses[(Capability.STT, "pocketsphinx")].configured
    assert statuses[(Capability.TTS, "espeak")].configured
    unconfigured = statuses[(Capability.STT, "openai")]
    assert not unconfigured.configured and "OPENAI_API_KEY" in unconfigured.detail
    with pytest.raises(ProviderNotConfigured, match="OPENAI_API_KEY"):
        registry.get(Capability.STT, "openai").create_service(sample_rate_hz=8000)  # type: ignore[attr-defined]


def test_missing_espeak_binary_is_reported_not_configured() -> None:
    provider = EspeakTTSProvider(EspeakSettings(espeak_binary="no-such-espeak"))
    assert not provider.status().configured
    assert "no-such-espeak" in provider.status().detail


def test_deepgram_key_is_a_secret_for_the_log_filter(voice: FakeVoiceServer) -> None:
    assert KEY in DeepgramSTTProvider(deepgram(voice)).secrets()


def test_importing_the_app_and_the_registry_loads_no_speech_sdk() -> None:
    code = (
        "import sys, app.main\n"
        "from app.services.providers.registry import ProviderRegistry\n"
        "ProviderRegistry.builtin()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'pipecat', 'deepgram', 'pocketsphinx'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""
