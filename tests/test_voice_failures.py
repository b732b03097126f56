"""Voice mode: barge-in, and every failure ends with a spoken fallback (issue 11, tests 2 and 5).

The gateway runs for real (pipecat pipeline, Silero VAD, our agent, Redis memory); Asterisk,
the LLM and the speech vendors are wire-level stand-ins. Each test asserts what the caller
hears (the recording), what Asterisk was told (media commands, ARI playbacks) and what the
dialplan gets (channel variables).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from app.core.config import Settings
from app.services.agent.turns import INTERRUPTED_MARKER
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_caller import FakeCaller, read_wav, synthesize
from app.testing.fake_llm import FakeLLMServer, HangReply, TextReply
from app.testing.fake_voice import FakeVoiceServer
from tests.conftest import state_of
from tests.utils import create_prompt
from tests.voice_utils import (
    BASE_VOICE,
    final_vars,
    memory_of,
    place_voice_call,
    voice_gateway,
    voice_settings,
    wait_heard_after,
    wait_quiet,
)

pytestmark = pytest.mark.slow

#: A long answer: the caller talks over it during its second sentence.
LONG_ANSWER = (
    "Order 42 has shipped.",
    "It left our warehouse in Leeds on Monday morning together with the rest of your items.",
    "The carrier is DHL and the parcel should reach you within two working days.",
    "You can follow it online with the tracking number we sent you by email.",
    "Is there anything else I can help you with today?",
)


@pytest.fixture
async def voice_vendor() -> AsyncIterator[FakeVoiceServer]:
    """OpenAI audio, Deepgram and the TTS vendor on loopback."""
    async with FakeVoiceServer() as server:
        yield server


async def _prompt(app: Any, **voice: Any) -> None:
    sessions = state_of(app).session_factory
    await create_prompt(sessions, "support", voice={**BASE_VOICE, **voice})


async def _after_greeting(caller: FakeCaller) -> None:
    greeting_at = await caller.wait_for_agent_audio(10)
    await wait_quiet(caller, greeting_at)


def _media(fake_ari: FakeAriServer, chan_id: str) -> Any:
    ext = next(p for p in fake_ari.bridges.peers(chan_id))
    return fake_ari.media.session_for(ext.id)


async def test_barge_in_stops_the_answer_and_memory_keeps_only_what_was_heard(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app, tts_provider="openai", tts_voice="alloy", barge_in_min_speech_ms=150)
        voice_vendor.script_transcripts(["LONG-B1 where is my order", "STOP-B2 stop thanks"])
        fake_llm.script("LONG-B1", [TextReply(" ".join(LONG_ANSWER))])
        fake_llm.script("STOP-B2", [TextReply("Sure.")])
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-barge-1")
        await _after_greeting(caller)
        media = _media(fake_ari, chan.id)

        await caller.say("where is my order")
        asked_at = asyncio.get_running_loop().time()
        answer_at = await wait_heard_after(caller, asked_at)
        # The caller talks over the second sentence (the first, with its pause, lasts about 2.3 s).
        await asyncio.sleep(max(0.0, answer_at + 3.2 - asyncio.get_running_loop().time()))
        talk_mono = time.monotonic()
        talk_at = await caller.say("wait a moment please")

        # Reply audio stopped reaching the caller within 300 ms of the caller starting to speak.
        stopped_at = caller.recording.audio_stopped_after(talk_at)
        assert stopped_at - talk_at <= 0.3, f"agent kept talking {stopped_at - talk_at:.3f} s"
        flushes = media.command_times_of("FLUSH_MEDIA")
        assert any(talk_at <= t <= talk_at + 0.3 for t in flushes), flushes
        # The caller's words are answered next ("Sure."); the rest of the long answer, already
        # synthesised and queued, is never heard, and no more of it goes to text-to-speech.
        reply_at = await wait_heard_after(caller, talk_at + 0.5)
        await wait_quiet(caller, reply_at)
        assert sum(f.duration_s for f in caller.recording.speech_frames(talk_at + 0.3)) < 1.5
        assert not [r for r in voice_vendor.requests_after(talk_mono + 0.3) if r.text in LONG_ANSWER]

        # Memory holds only the sentence the caller heard (its mark came back), flagged.
        history = await memory_of(app, "voice-barge-1")
        answers = [m for m in history if m.type == "ai" and not m.tool_calls]
        cut = answers[0]
        print("HIST", [(m.type, m.content) for m in history], [(round(t-talk_at,2), c) for t, c in zip(media.command_times, media.commands) if isinstance(c, dict)], media.events_named("MEDIA_MARK_PROCESSED"))
        assert cut.content == f"{LONG_ANSWER[0]} {INTERRUPTED_MARKER}"
        assert cut.additional_kwargs.get("interrupted") is True
        # The model saw the marker on the next turn.
        last = orjson.dumps(fake_llm.requests[-1].raw).decode()
        assert "STOP-B2" in last and INTERRUPTED_MARKER in last and LONG_ANSWER[1] not in last
        await caller.hangup()
