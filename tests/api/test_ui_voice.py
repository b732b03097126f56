"""Web UI: the prompt form's Voice fieldset, and a voice call shown as a timeline."""

from __future__ import annotations

import html

import httpx
import pytest
from fastapi import FastAPI

from app.api.deps import get_providers
from app.services.domain import CallContext, TurnOutcome, TurnStatus
from app.services.providers.base import ProviderSettings
from app.services.providers.registry import ProviderRegistry
from tests.api.test_prompt_voice import StandinSTT, StandinTTS
from tests.api.test_ui_pages import csrf
from tests.conftest import state_of


@pytest.fixture(autouse=True)
def providers(app: FastAPI) -> ProviderRegistry:
    settings = ProviderSettings()
    registry = ProviderRegistry([StandinTTS(settings), StandinSTT(settings)])
    app.dependency_overrides[get_providers] = lambda: registry
    return registry


def voice_form(token: str, **fields: str | list[str]) -> dict[str, str | list[str]]:
    """The prompt form as a browser posts it, Voice fieldset included, with two target rows."""
    form: dict[str, str | list[str]] = {
        "csrf_token": token,
        "name": "support",
        "content": "You help callers.",
        "voice_default_mode": "voice",
        "voice_greeting": "Thanks for calling.",
        "voice_stt_provider": "standin_stt",
        "voice_stt_model": "",
        "voice_stt_language": "en",
        "voice_tts_provider": "standin_tts",
        "voice_tts_voice": "alloy",
        "voice_tts_language": "en-GB",
        "voice_end_of_turn_ms": "800",
        "voice_dtmf_pause_ms": "1500",
        "voice_max_duration_s": "300",
        "voice_barge_in_min_speech_ms": "250",
        "voice_reprompt_text": "Hello?",
        "voice_reprompt_after_s": "6.5",
        "voice_max_reprompts": "1",
        "voice_goodbye_text": "Bye now.",
        "voice_offer_end_call": "on",
        "target_name": ["sales", ""],
        "target_description": ["New orders", ""],
        "target_context": ["from-internal", ""],
        "target_extension": ["600", ""],
        "target_priority": ["", ""],
        "target_endpoint": ["", ""],
    }
    form.update(fields)
    return form


async def test_prompt_form_shows_the_voice_fieldset_with_provider_pickers(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/prompts/new")
    assert page.status_code == 200
    text = page.text
    assert "<legend>Voice</legend>" in text
    assert '<option value="standin_tts">Stand-in TTS</option>' in text
    assert '<option value="standin_stt">Stand-in STT</option>' in text
    for label in (
        "Greeting",
        "End-of-turn silence",
        "Barge-in",
        "Minimum speech to interrupt",
        "Reprompt text",
        "Reprompts before goodbye",
        "Goodbye text",
        "Maximum call length",
        "DTMF pause",
        "Transfer targets",
    ):
        assert label in text, label
    assert 'name="voice_barge_in" id="voice_barge_in" checked' in text  # default on
    assert "Play a sample" not in text  # only once the prompt is saved


async def test_voice_fieldset_saves_every_setting(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/prompts/new")
    saved = await client.post("/ui/prompts/new", data=voice_form(csrf(page.text)))
    assert saved.status_code == 303, saved.text[:2000]
    prompt = (await client.get("/api/v1/prompts", params={"name": "support"})).json()["items"][0]
    voice = prompt["voice"]
    assert voice["default_mode"] == "voice"
    assert (voice["tts_provider"], voice["tts_voice"], voice["tts_language"]) == (
        "standin_tts",
        "alloy",
        "en-GB",
    )
    assert (voice["end_of_turn_ms"], voice["reprompt_after_s"], voice["max_duration_s"]) == (800, 6.5, 300)
    assert (voice["barge_in"], voice["offer_end_call"], voice["offer_transfer_call"]) == (False, True, False)
    assert voice["transfer_targets"] == [
        {
            "name": "sales",
            "description": "New orders",
            "context": "from-internal",
            "extension": "600",
            "priority": 1,
            "endpoint": "",
        }
    ]
    edit = await client.get(f"/ui/prompts/{prompt['id']}")
    assert 'value="from-internal"' in edit.text
    assert '<option value="standin_tts" selected>Stand-in TTS</option>' in edit.text
    assert 'id="voice-sample-play"' in edit.text
    assert f'data-endpoint="/api/v1/prompts/{prompt["id"]}/voice-sample"' in edit.text
    assert "<audio" in edit.text


async def test_voice_fieldset_errors_are_in_the_forms_words(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/prompts/new")
    form = voice_form(
        csrf(page.text),
        voice_end_of_turn_ms="lots",
        voice_reprompt_after_s="500",
        voice_tts_language="british english",
        target_name=["Sales Desk", "desk"],
        target_endpoint=["", "PJSIP/200"],
        target_context=["from-internal", "from-internal"],
        target_extension=["600", "200"],
    )
    response = await client.post("/ui/prompts/new", data=form)
    assert response.status_code == 422
    text = html.unescape(response.text)
    assert "End-of-turn silence must be a whole number from 100 to 5000 ms." in text
    assert "Reprompt after must be a number from 1 to 120 s." in text
    assert "Text-to-speech language must be a language tag such as en or en-US." in text
    assert (
        "Transfer target 1: Name must be 1 to 40 lower-case letters, digits and _ (what the model says)."
        in text
    )
    assert "Transfer target 2: give either a dialplan context and extension or an endpoint, not both." in text
    assert 'id="voice_target_1_endpoint" name="target_endpoint" value="PJSIP/200"' in text  # input kept
    assert 'href="#voice_end_of_turn_ms"' in text  # the summary links to the field
    assert (await client.get("/api/v1/prompts", params={"name": "support"})).json()["total"] == 0


async def test_voice_fieldset_refuses_a_provider_the_registry_lacks(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/prompts/new")
    response = await client.post(
        "/ui/prompts/new", data=voice_form(csrf(page.text), voice_tts_provider="gone")
    )
    assert response.status_code == 422
    assert (
        "Text-to-speech provider: unknown TTS provider &#39;gone&#39; (known: standin_tts)" in response.text
    )
    assert '<option value="gone" selected>gone (not installed)</option>' in response.text


async def test_voice_call_detail_is_a_timeline(app: FastAPI, client: httpx.AsyncClient) -> None:
    state = state_of(app)
    context = CallContext("1700.7", channel_id="1700.7", caller_id_number="5551234")
    first = {
        "mode": "voice",
        "interrupted": True,
        "heard": "Your order ships",
        "stt_final_ms": 151.2,
        "llm_first_sentence_ms": 320.4,
        "tts_first_audio_ms": 471.0,
        "first_frame_sent_ms": 482.9,
    }
    last = {
        "mode": "voice",
        "interrupted": False,
        "stt_final_ms": 140.0,
        "end_reason": "caller_silent",
        "end_status": "NO_INPUT",
        "dtmf": ["4", "2"],
    }
    state.turn_service.log_turn(
        "call", context, "where is order 42", TurnOutcome("Your order ships", TurnStatus.OK, details=first)
    )
    state.turn_service.log_turn(
        "call", context, "[caller pressed 42]", TurnOutcome("Anything else?", TurnStatus.OK, details=last)
    )
    await state.call_log.flush()
    call_id = (await client.get("/api/v1/calls")).json()["items"][0]["id"]
    page = await client.get(f"/ui/calls/{call_id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert 'aria-label="Voice timeline"' in text
    assert "Agent · interrupted by the caller" in text
    assert "Heard: “Your order ships”" in text
    assert "where is order 42" in text and "Anything else?" in text
    for figure in ("151 ms", "320 ms", "471 ms", "483 ms", "140 ms"):
        assert figure in text, figure
    assert "Call ended: caller silence · <code>AI_STATUS=NO_INPUT</code> · DTMF pressed: 4 2" in text


async def test_text_call_detail_has_no_timeline(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/chat", json={"message": "hello there"})
    call_id = (await client.get("/api/v1/calls")).json()["items"][0]["id"]
    page = await client.get(f"/ui/calls/{call_id}")
    assert 'aria-label="Transcript"' in page.text
    assert "end of speech" not in page.text
    assert "interrupted" not in page.text


async def test_two_transfer_targets_may_not_share_a_name(client: httpx.AsyncClient) -> None:
    page = await client.get("/ui/prompts/new")
    form = voice_form(
        csrf(page.text),
        target_name=["desk", "desk"],
        target_description=["Front desk", "Night desk"],
        target_context=["", ""],
        target_extension=["", ""],
        target_priority=["", ""],
        target_endpoint=["PJSIP/200", "PJSIP/201"],
    )
    response = await client.post("/ui/prompts/new", data=form)
    assert response.status_code == 422
    assert (
        "Transfer targets: transfer target names must be unique: &#39;desk&#39; appears twice."
        in response.text
    )
    assert 'href="#voice_transfer_targets"' in response.text
