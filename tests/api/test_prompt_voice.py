"""Voice settings of a prompt in the REST API: create, PUT, PATCH, read, 422s, audit, voice sample,
and a voice call's timeline in the call detail."""

from __future__ import annotations

import io
import warnings
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI

from app.api.deps import get_providers
from app.core.config import Settings
from app.services.domain import CallContext, TurnOutcome, TurnStatus
from app.services.providers.base import Capability, Provider, ProviderSettings
from app.services.providers.registry import ProviderRegistry
from app.testing.fake_voice import FakeVoiceServer
from app.testing.voice_model import Fault
from tests.api.conftest import make_client
from tests.conftest import run_gateway, state_of

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

VOICE = {
    "default_mode": "voice",
    "greeting": "Thanks for calling Acme.",
    "tts_provider": "standin_tts",
    "tts_voice": "alloy",
    "stt_provider": "standin_stt",
    "end_of_turn_ms": 900,
    "barge_in": False,
    "transfer_targets": [
        {"name": "sales", "description": "New orders", "context": "from-internal", "extension": "600"},
        {"name": "desk", "description": "The front desk", "endpoint": "PJSIP/200"},
    ],
}


class StandinTTS(Provider):
    """A TTS provider that answers 100 ms of a 440 Hz-ish square wave and records what it was asked."""

    name = "standin_tts"
    capability = Capability.TTS
    label = "Stand-in TTS"
    asked: ClassVar[list[dict[str, Any]]] = []

    async def synthesize(self, text: str, *, voice: str | None, sample_rate_hz: int) -> bytes:
        self.asked.append({"text": text, "voice": voice, "sample_rate_hz": sample_rate_hz})
        period = sample_rate_hz // 440
        samples = [8000 if (i // (period // 2)) % 2 else -8000 for i in range(sample_rate_hz // 10)]
        return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


class StandinSTT(Provider):
    name = "standin_stt"
    capability = Capability.STT
    label = "Stand-in STT"


class BrokenTTS(Provider):
    name = "broken_tts"
    capability = Capability.TTS
    label = "Broken TTS"

    async def synthesize(self, text: str, *, voice: str | None, sample_rate_hz: int) -> bytes:
        raise ConnectionError("vendor down")


@pytest.fixture
def providers(app: FastAPI) -> ProviderRegistry:
    """The app runs with the stand-in STT/TTS providers (and one TTS that fails)."""
    StandinTTS.asked.clear()
    settings = ProviderSettings()
    registry = ProviderRegistry([StandinTTS(settings), StandinSTT(settings), BrokenTTS(settings)])
    app.dependency_overrides[get_providers] = lambda: registry
    return registry


@pytest.fixture
async def voice_prompt(
    client: httpx.AsyncClient, providers: ProviderRegistry
) -> AsyncIterator[dict[str, Any]]:
    response = await client.post(
        "/api/v1/prompts", json={"name": "support", "content": "Help.", "voice": VOICE}
    )
    assert response.status_code == 201, response.text
    yield response.json()


async def test_prompt_without_voice_reads_back_the_defaults(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/v1/prompts", json={"name": "plain", "content": "Hi."})).json()
    voice = created["voice"]
    assert voice["default_mode"] == "text"
    assert (voice["end_of_turn_ms"], voice["barge_in"], voice["transfer_targets"]) == (700, True, [])
    assert (await client.get("/api/v1/prompts/1")).json()["voice"]["reprompt_text"] == "Are you still there?"


async def test_voice_settings_are_saved_and_read_back(
    client: httpx.AsyncClient, voice_prompt: dict[str, Any]
) -> None:
    got = (await client.get(f"/api/v1/prompts/{voice_prompt['id']}")).json()["voice"]
    assert got["greeting"] == "Thanks for calling Acme."
    assert (got["tts_provider"], got["tts_voice"], got["end_of_turn_ms"]) == ("standin_tts", "alloy", 900)
    assert got["transfer_targets"] == [
        {
            "name": "sales",
            "description": "New orders",
            "context": "from-internal",
            "extension": "600",
            "priority": 1,
            "endpoint": "",
        },
        {
            "name": "desk",
            "description": "The front desk",
            "context": "",
            "extension": "",
            "priority": 1,
            "endpoint": "PJSIP/200",
        },
    ]


async def test_patch_changes_only_the_voice_fields_sent(
    client: httpx.AsyncClient, voice_prompt: dict[str, Any]
) -> None:
    url = f"/api/v1/prompts/{voice_prompt['id']}"
    patched = await client.patch(url, json={"voice": {"greeting": "Hello!", "max_reprompts": 4}})
    assert patched.status_code == 200, patched.text
    voice = patched.json()["voice"]
    assert (voice["greeting"], voice["max_reprompts"]) == ("Hello!", 4)
    assert (voice["tts_voice"], voice["barge_in"], len(voice["transfer_targets"])) == ("alloy", False, 2)
    assert patched.json()["version"] == 2

    untouched = await client.patch(url, json={"content": "Be brief."})
    assert untouched.json()["voice"] == voice  # a PATCH without voice keeps it

    reset = await client.patch(url, json={"voice": None})
    assert reset.json()["voice"]["greeting"] == ""
    assert reset.json()["voice"]["transfer_targets"] == []


async def test_put_replaces_the_voice_settings(
    client: httpx.AsyncClient, voice_prompt: dict[str, Any]
) -> None:
    url = f"/api/v1/prompts/{voice_prompt['id']}"
    replaced = await client.put(
        url, json={"name": "support", "content": "Help.", "voice": {"greeting": "Yo"}}
    )
    assert replaced.status_code == 200
    assert replaced.json()["voice"]["greeting"] == "Yo"
    assert replaced.json()["voice"]["tts_voice"] == ""  # not sent: back to the default
    again = await client.put(url, json={"name": "support", "content": "Help."})
    assert again.json()["voice"]["greeting"] == ""


@pytest.mark.parametrize(
    ("voice", "field", "words"),
    [
        ({"end_of_turn_ms": 50}, "voice.end_of_turn_ms", "greater than or equal to 100"),
        ({"reprompt_after_s": 0.5}, "voice.reprompt_after_s", "greater than or equal to 1"),
        ({"max_duration_s": -1}, "voice.max_duration_s", "greater than or equal to 0"),
        ({"default_mode": "video"}, "voice.default_mode", "'text' or 'voice'"),
        ({"stt_language": "english please"}, "voice.stt_language", "should match pattern"),
        (
            {
                "transfer_targets": [
                    {"name": "sales", "context": "x", "extension": "1", "endpoint": "PJSIP/2"}
                ]
            },
            "voice.transfer_targets.0.endpoint",
            "either a dialplan context and extension or an endpoint, not both",
        ),
        (
            {"transfer_targets": [{"name": "sales", "context": "from-internal"}]},
            "voice.transfer_targets.0.endpoint",
            "give a dialplan context and extension, or an endpoint",
        ),
        (
            {"transfer_targets": [{"name": "sales", "endpoint": "200"}]},
            "voice.transfer_targets.0.endpoint",
            "TECHNOLOGY/resource",
        ),
        (
            {"transfer_targets": [{"name": "Sales Team", "endpoint": "PJSIP/200"}]},
            "voice.transfer_targets.0.name",
            "should match pattern",
        ),
        (
            {"transfer_targets": [{"name": "x", "context": "c", "extension": "1", "priority": 0}]},
            "voice.transfer_targets.0.priority",
            "greater than or equal to 1",
        ),
        (
            {
                "transfer_targets": [
                    {"name": "x", "endpoint": "PJSIP/1"},
                    {"name": "x", "endpoint": "PJSIP/2"},
                ]
            },
            "voice.transfer_targets",
            "names must be unique: 'x' appears twice",
        ),
        ({"greeting_text": "hi"}, "voice.greeting_text", "Extra inputs are not permitted"),
    ],
)
async def test_invalid_voice_settings_are_422_naming_the_field(
    client: httpx.AsyncClient, voice: dict[str, Any], field: str, words: str
) -> None:
    response = await client.post("/api/v1/prompts", json={"name": "bad", "content": "x", "voice": voice})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("validation_error", field)
    assert words in error["message"]
    assert (await client.get("/api/v1/prompts", params={"name": "bad"})).json()["total"] == 0


async def test_provider_names_must_be_in_the_registry(
    client: httpx.AsyncClient, providers: ProviderRegistry
) -> None:
    body = {"name": "support", "content": "x", "voice": {"tts_provider": "nosuch"}}
    response = await client.post("/api/v1/prompts", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "voice.tts_provider"
    assert error["message"] == "unknown TTS provider 'nosuch' (known: broken_tts, standin_tts)"

    created = await client.post("/api/v1/prompts", json={"name": "support", "content": "x"})
    patched = await client.patch(
        f"/api/v1/prompts/{created.json()['id']}", json={"voice": {"stt_provider": "STANDIN_TTS"}}
    )
    assert patched.status_code == 422
    assert patched.json()["error"] == {
        "code": "validation_error",
        "message": "unknown STT provider 'standin_tts' (known: standin_stt)",
        "field": "voice.stt_provider",
    }
    ok = await client.patch(
        f"/api/v1/prompts/{created.json()['id']}", json={"voice": {"stt_provider": "Standin_STT"}}
    )
    assert ok.json()["voice"]["stt_provider"] == "standin_stt"  # names are case-insensitive


async def test_voice_changes_are_audited_field_by_field(
    client: httpx.AsyncClient, voice_prompt: dict[str, Any]
) -> None:
    await client.patch(f"/api/v1/prompts/{voice_prompt['id']}", json={"voice": {"greeting": "Hello!"}})
    entries = (await client.get("/api/v1/audit", params={"entity_type": "prompt"})).json()["items"]
    update = next(e for e in entries if e["action"] == "update")
    assert update["changes"] == {"voice.greeting": ["Thanks for calling Acme.", "Hello!"]}
    create = next(e for e in entries if e["action"] == "create")
    assert create["changes"]["voice.barge_in"] == [None, False]
    assert create["changes"]["voice.transfer_targets"][1][1]["endpoint"] == "PJSIP/200"


async def test_voice_sample_is_a_wav_of_the_prompts_voice(
    client: httpx.AsyncClient, voice_prompt: dict[str, Any]
) -> None:
    response = await client.post(f"/api/v1/prompts/{voice_prompt['id']}/voice-sample")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == 800  # the provider's 100 ms
    assert StandinTTS.asked == [
        {"text": "Thanks for calling Acme.", "voice": "alloy", "sample_rate_hz": 8000}
    ]


async def test_voice_sample_says_why_it_cannot_play(
    client: httpx.AsyncClient, voice_prompt: dict[str, Any], app: FastAPI
) -> None:
    url = f"/api/v1/prompts/{voice_prompt['id']}"
    await client.patch(url, json={"voice": {"tts_provider": "broken_tts"}})
    broken = await client.post(f"{url}/voice-sample")
    assert broken.status_code == 503
    assert broken.json()["error"] == {
        "code": "voice_sample_unavailable",
        "message": "TTS provider 'broken_tts' failed: ConnectionError",
    }
    app.dependency_overrides[get_providers] = lambda: ProviderRegistry([])
    none = await client.post(f"{url}/voice-sample")
    assert none.status_code == 503
    assert none.json()["error"]["message"] == "no TTS provider configured"
    assert (await client.post("/api/v1/prompts/999/voice-sample")).status_code == 404


async def test_call_detail_returns_each_turns_voice_timeline(app: FastAPI, client: httpx.AsyncClient) -> None:
    state = state_of(app)
    context = CallContext("1700.42", channel_id="1700.42", caller_id_number="5551234")
    heard = {"mode": "voice", "interrupted": True, "heard": "Your order", "stt_final_ms": 150.0}
    last = {
        "mode": "voice",
        "interrupted": False,
        "end_reason": "agent_ended",
        "end_status": "OK",
        "dtmf": ["4"],
    }
    state.turn_service.log_turn(
        "call", context, "where is my order", TurnOutcome("Your order", TurnStatus.OK, details=heard)
    )
    state.turn_service.log_turn("call", context, "thanks", TurnOutcome("Bye.", TurnStatus.OK, details=last))
    await state.call_log.flush()
    call_id = (await client.get("/api/v1/calls")).json()["items"][0]["id"]
    turns = (await client.get(f"/api/v1/calls/{call_id}")).json()["turns"]
    assert [t["details"] for t in turns] == [heard, last]


async def test_voice_sample_without_a_tts_provider_uses_the_gateways(
    api_settings: Callable[..., Settings],
) -> None:
    StandinTTS.asked.clear()
    registry = ProviderRegistry([StandinTTS(ProviderSettings())])
    async with run_gateway(api_settings(voice_tts_provider="standin_tts")) as application:
        application.dependency_overrides[get_providers] = lambda: registry
        async with make_client(application) as http:
            prompt = (await http.post("/api/v1/prompts", json={"name": "plain", "content": "Hi."})).json()
            response = await http.post(f"/api/v1/prompts/{prompt['id']}/voice-sample")
    assert response.status_code == 200, response.text
    assert StandinTTS.asked == [
        {
            "text": "Hello, thanks for calling. This is how I sound on the phone.",
            "voice": None,
            "sample_rate_hz": 8000,
        }
    ]


@pytest.fixture
async def voice_vendor() -> AsyncIterator[FakeVoiceServer]:
    """OpenAI speech and Deepgram Aura (REST) on loopback."""
    async with FakeVoiceServer() as server:
        yield server


def _vendor_registry(vendor: FakeVoiceServer, **openai: Any) -> ProviderRegistry:
    """The real TTS providers, OpenAI and Deepgram pointed at the stand-in."""
    return ProviderRegistry.builtin(
        overrides={
            "tts:openai": {"openai_base_url": vendor.openai_base_url, **openai},
            "tts:deepgram": {"deepgram_api_key": "dg-test-key", "deepgram_base_url": vendor.base_url},
        }
    )


async def _sample(
    client: httpx.AsyncClient, app: FastAPI, registry: ProviderRegistry, voice: dict[str, Any]
) -> httpx.Response:
    app.dependency_overrides[get_providers] = lambda: registry
    created = await client.post(
        "/api/v1/prompts",
        json={"name": f"p-{voice['tts_provider']}", "content": "Help.", "voice": voice},
    )
    assert created.status_code == 201, created.text
    return await client.post(f"/api/v1/prompts/{created.json()['id']}/voice-sample")


def _speech_seconds(wav_bytes: bytes) -> float:
    """Seconds of sound (100 ms windows louder than RMS 300) in an 8 kHz 16-bit mono WAV."""
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        pcm = wav.readframes(wav.getnframes())
    windows = [pcm[i : i + 1600] for i in range(0, len(pcm), 1600)]
    return 0.1 * sum(1 for w in windows if audioop.rms(w, 2) > 300)


@pytest.mark.slow
async def test_espeak_voice_sample_is_speech_at_the_call_rate(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    registry = ProviderRegistry.builtin()
    voice = {"greeting": "Thanks for calling Acme, how can I help?", "tts_provider": "espeak"}
    response = await _sample(client, app, registry, voice)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert _speech_seconds(response.content) > 1.0


@pytest.mark.slow
async def test_openai_and_deepgram_voice_samples_come_from_their_apis(
    client: httpx.AsyncClient, app: FastAPI, voice_vendor: FakeVoiceServer
) -> None:
    registry = _vendor_registry(voice_vendor, openai_api_key="sk-test-sample-0000000000000000")
    greeting = "Thanks for calling Acme."
    openai = await _sample(
        client, app, registry, {"greeting": greeting, "tts_provider": "openai", "tts_voice": "nova"}
    )
    assert openai.status_code == 200, openai.text
    assert _speech_seconds(openai.content) > 0.5
    deepgram = await _sample(client, app, registry, {"greeting": greeting, "tts_provider": "deepgram"})
    assert deepgram.status_code == 200, deepgram.text
    assert _speech_seconds(deepgram.content) > 0.5
    speech, speak = voice_vendor.requests
    assert (speech.endpoint, speech.text) == ("speech", greeting)
    assert speech.params["voice"] == "nova" and speech.params["response_format"] == "pcm"
    assert (speak.endpoint, speak.text) == ("speak", greeting)
    assert speak.params == {
        "model": "aura-2-helena-en",
        "encoding": "linear16",
        "sample_rate": "8000",
        "container": "none",
    }


async def test_vendor_voice_sample_says_why_it_cannot_play(
    client: httpx.AsyncClient, app: FastAPI, voice_vendor: FakeVoiceServer
) -> None:
    registry = _vendor_registry(voice_vendor, openai_api_key=None)
    no_key = await _sample(client, app, registry, {"tts_provider": "openai"})
    assert no_key.status_code == 503
    assert no_key.json()["error"]["message"] == "TTS provider 'openai': OPENAI_API_KEY is not set"
    voice_vendor.fail("speak", Fault.ERROR)
    down = await _sample(client, app, registry, {"tts_provider": "deepgram"})
    assert down.status_code == 503
    assert down.json()["error"]["message"] == "TTS provider 'deepgram': Deepgram speak answered HTTP 500"
