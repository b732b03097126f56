"""Voice mode end to end: a scripted caller on the fake Asterisk's media WebSocket.

The gateway runs for real (pipecat pipeline, Silero VAD, our agent, espeak-ng speech, Redis
memory, the call log); Asterisk, the LLM and OpenAI's transcription endpoint are wire-level
stand-ins. Each test asserts what the caller hears and what the dialplan gets.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from app.core.config import Settings
from app.models import Call
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer, TextReply, ToolCallReply
from app.testing.fake_voice import FakeVoiceServer
from tests.conftest import state_of
from tests.utils import ToolApi, create_prompt, create_tool
from tests.voice_utils import (
    BASE_VOICE,
    final_vars,
    live_bridges,
    memory_of,
    place_voice_call,
    voice_gateway,
    voice_settings,
    wait_heard_after,
    wait_quiet,
)

pytestmark = pytest.mark.slow


async def _support_prompt(app: Any, tool_api: ToolApi, **voice: Any) -> None:
    sessions = state_of(app).session_factory
    tool = await create_tool(sessions, url=f"{tool_api.url}/orders/{{order_id}}")
    await create_prompt(sessions, "support", tools=[tool], voice={**BASE_VOICE, **voice})


async def test_greeting_then_three_turns_with_a_tool_and_end_call(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
    tool_api: ToolApi,
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await _support_prompt(app, tool_api)
        voice_vendor.script_transcripts(
            ["ORDER-V1 where is my order 42", "THANKS-V2 when will it come", "BYE-V3 thank you goodbye"]
        )
        fake_llm.script(
            "ORDER-V1",
            [ToolCallReply([("check_order", {"order_id": "42"})]), TextReply("Order 42 has shipped.")],
        )
        fake_llm.script("THANKS-V2", [TextReply("It arrives in two days.")])
        fake_llm.script(
            "BYE-V3",
            [ToolCallReply([("end_call", {"reason": "done"})]), TextReply("Goodbye, have a nice day.")],
        )
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-conv-1")

        # The greeting is heard first.
        greeting_at = await caller.wait_for_agent_audio(10)
        await wait_quiet(caller, greeting_at)
        for words in ("where is my order forty two", "when will it come", "thank you goodbye"):
            await caller.say(words)
            spoke_at = asyncio.get_running_loop().time()
            await wait_heard_after(caller, spoke_at)
            await wait_quiet(caller, spoke_at)

        await chan.wait_left_stasis(15)
        variables = final_vars(chan)
        assert variables["AI_STATUS"] == "OK"
        assert variables["AI_END_REASON"] == "agent_ended"
        assert variables["AI_TURNS"] == "3"
        assert variables["AI_RESPONSE"] == "Goodbye, have a nice day."
        # The tool ran with the model's argument.
        assert [r["path"] for r in tool_api.requests] == ["/orders/42"]
        # Memory holds the transcript turns, in order.
        history = await memory_of(app, "voice-conv-1")
        said = [m.content for m in history if m.type == "human"]
        assert said == [
            "ORDER-V1 where is my order 42",
            "THANKS-V2 when will it come",
            "BYE-V3 thank you goodbye",
        ]
        # The bridge and the external channel are gone; only the caller's channel was continued.
        assert live_bridges(fake_ari) == []
        assert chan.continued_count == 1
        await state_of(app).call_log.flush()
        async with state_of(app).session_factory() as s:
            call = (await s.scalars(select(Call).where(Call.channel_id == chan.id))).one()
            assert [t.user_input for t in call.turns] == said
            assert all((t.details or {}).get("mode") == "voice" for t in call.turns)
            # Each spoken turn's latencies, from the caller's end of speech, are in order.
            for turn in call.turns:
                d = turn.details or {}
                steps = [
                    d["stt_final_ms"],
                    d["llm_first_sentence_ms"],
                    d["tts_first_audio_ms"],
                    d["first_frame_sent_ms"],
                ]
                assert all(v is not None and v > 0 for v in steps), d
                assert steps == sorted(steps), d
            assert call.turns[-1].details["end_reason"] == "agent_ended"
