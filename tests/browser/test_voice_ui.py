"""Voice settings and voice calls in a real browser (headless Chromium).

Fill in the prompt form's Voice fieldset, save, press "Play a sample" (the page fetches the
WAV and plays it from a ``blob:`` URL, which the CSP must allow), then open a voice call's
timeline. Screenshots go to `test-artifacts/screenshots/` (or `docs/screenshots/` with
`make screenshots`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.async_api import BrowserContext, expect

from app.api.deps import get_providers
from app.services.domain import CallContext, TurnOutcome, TurnStatus
from app.services.providers.base import ProviderSettings
from app.services.providers.registry import ProviderRegistry
from tests.api.test_prompt_voice import StandinSTT, StandinTTS
from tests.browser.conftest import LiveGateway
from tests.browser.test_ui import watch_console
from tests.conftest import state_of

pytestmark = pytest.mark.browser


async def test_voice_settings_sample_and_timeline_in_a_browser(
    live_gateway: LiveGateway, admin_context: BrowserContext, screenshots: Path
) -> None:
    app: Any = live_gateway.app
    assert isinstance(app, FastAPI)
    StandinTTS.asked.clear()
    registry = ProviderRegistry([StandinTTS(ProviderSettings()), StandinSTT(ProviderSettings())])
    app.dependency_overrides[get_providers] = lambda: registry
    page = await admin_context.new_page()
    problems = watch_console(page)

    await page.goto(f"{live_gateway.url}/ui/prompts/new")
    await page.fill("#name", "support")
    await page.fill("#content", "You help callers with their orders.")
    await page.select_option("#voice_default_mode", "voice")
    await page.fill("#voice_greeting", "Thanks for calling Acme.")
    await page.select_option("#voice_tts_provider", "standin_tts")
    await page.fill("#voice_end_of_turn_ms", "40")  # too short: the form says so
    await page.fill("#voice_target_0_name", "desk")
    await page.fill("#voice_target_0_description", "The front desk")
    await page.fill("#voice_target_0_endpoint", "PJSIP/200")
    await page.get_by_role("button", name="Create prompt").click()
    await expect(page.locator("#voice_end_of_turn_ms-error")).to_have_text(
        "End-of-turn silence must be a whole number from 100 to 5000 ms."
    )
    await expect(page.locator("#voice_target_0_endpoint")).to_have_value("PJSIP/200")  # kept
    await page.fill("#voice_end_of_turn_ms", "800")
    await page.get_by_role("button", name="Create prompt").click()
    await expect(page.locator(".notice")).to_contain_text("created")
    await page.locator("#voice").screenshot(path=str(screenshots / "prompt-voice-settings.png"))

    await page.click("#voice-sample-play")
    audio = page.locator("#voice-sample-audio")
    await expect(audio).to_be_visible()
    assert (await audio.get_attribute("src") or "").startswith("blob:")
    assert StandinTTS.asked == [{"text": "Thanks for calling Acme.", "voice": None, "sample_rate_hz": 8000}]

    state = state_of(app)
    context = CallContext("1700.9", channel_id="1700.9", caller_id_number="5551234")
    first = {
        "mode": "voice",
        "interrupted": True,
        "heard": "Your order",
        "stt_final_ms": 150.0,
        "llm_first_sentence_ms": 310.0,
        "tts_first_audio_ms": 460.0,
        "first_frame_sent_ms": 470.0,
    }
    last = {
        "mode": "voice",
        "interrupted": False,
        "stt_final_ms": 149.0,
        "llm_first_sentence_ms": 305.0,
        "tts_first_audio_ms": 455.0,
        "first_frame_sent_ms": 468.0,
        "end_reason": "agent_ended",
        "end_status": "OK",
        "dtmf": ["4", "2"],
    }
    state.turn_service.log_turn(
        "call",
        context,
        "where is my order",
        TurnOutcome("Your order ships today.", TurnStatus.OK, details=first),
    )
    state.turn_service.log_turn(
        "call", context, "[caller pressed 42] thanks", TurnOutcome("Goodbye!", TurnStatus.OK, details=last)
    )
    await state.call_log.flush()
    await page.goto(f"{live_gateway.url}/ui/calls")
    await page.get_by_role("row").filter(has_text="5551234").get_by_role("link").first.click()
    await expect(page.locator(".bubble.interrupted")).to_contain_text("Heard: “Your order”")
    await expect(page.locator(".end-of-call")).to_contain_text("the agent (end_call)")
    await page.screenshot(path=str(screenshots / "voice-call-timeline.png"), full_page=True)
    assert problems == []
