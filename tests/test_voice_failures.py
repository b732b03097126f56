"""Voice mode: barge-in, and every failure ends with a spoken fallback (issue 11, tests 2 and 5).

The gateway runs for real (pipecat pipeline, Silero VAD, our agent, Redis memory); Asterisk,
the LLM and the speech vendors are wire-level stand-ins. Each test asserts what the caller
hears (the recording), what Asterisk was told (media commands, ARI playbacks) and what the
dialplan gets (channel variables).
"""

from __future__ import annotations

import asyncio
import audioop
import time
import wave
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from app.core.config import Settings
from app.models import Call
from app.services.agent.turns import INTERRUPTED_MARKER
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_caller import FakeCaller, read_wav, synthesize
from app.testing.fake_llm import FakeLLMServer, HangReply, TextReply
from app.testing.fake_voice import FakeVoiceServer, Fault
from tests.conftest import state_of
from tests.utils import create_prompt
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

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "speech"

#: A long answer: the caller talks over it during its second sentence.
LONG_ANSWER = (
    "Order 42 has shipped.",
    "It left our warehouse in Leeds on Monday morning together with the rest of your items.",
    "The carrier is DHL and the parcel should reach you within two working days.",
    "You can follow it online with the tracking number we sent you by email.",
    "Is there anything else I can help you with today?",
)


async def _prompt(app: Any, **voice: Any) -> None:
    sessions = state_of(app).session_factory
    await create_prompt(sessions, "support", voice={**BASE_VOICE, **voice})


async def _after_greeting(caller: FakeCaller) -> None:
    greeting_at = await caller.wait_for_agent_audio(10)
    await wait_quiet(caller, greeting_at)


def _external(fake_ari: FakeAriServer, chan_id: str) -> Any:
    return next(p for p in fake_ari.bridges.peers(chan_id))


def _media(fake_ari: FakeAriServer, chan_id: str) -> Any:
    return fake_ari.media.session_for(_external(fake_ari, chan_id).id)


def _speech_head(text: str, ms: int) -> Path:
    """The first `ms` of voiced audio of `text` (espeak-ng), as a WAV (a cough-length sound)."""
    pcm, rate = read_wav(synthesize(text))
    frame = rate * 20 // 1000 * 2
    start = next(i for i in range(0, len(pcm), frame) if audioop.rms(pcm[i : i + frame], 2) > 500)
    out = ARTIFACTS / f"head-{ms}ms.wav"
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm[start : start + rate * ms // 1000 * 2])
    return out


def _speech_s(caller: FakeCaller, start: float, end: float | None = None) -> float:
    """Seconds of agent speech the caller heard between `start` and `end` (loop time)."""
    return sum(f.duration_s for f in caller.recording.speech_frames(start, end))


async def _until_silent(caller: FakeCaller, quiet_s: float = 1.0, timeout: float = 20.0) -> None:
    """Wait until the caller has heard no agent speech for `quiet_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        frames = caller.recording.speech_frames()
        if not frames or loop.time() - frames[-1].time >= quiet_s:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the agent kept talking")


async def _ask(caller: FakeCaller, words: str) -> float:
    """Say `words`; when the agent's answer is first heard (s)."""
    await caller.say(words)
    return await wait_heard_after(caller, asyncio.get_running_loop().time())


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

        # The agent was audibly speaking when the caller began, and stopped within 300 ms.
        assert _speech_s(caller, talk_at - 0.2, talk_at) > 0
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
        assert cut.content == f"{LONG_ANSWER[0]} {INTERRUPTED_MARKER}"
        assert cut.additional_kwargs.get("interrupted") is True
        # The model saw the marker on the next turn.
        last = orjson.dumps(fake_llm.requests[-1].raw).decode()
        assert "STOP-B2" in last and INTERRUPTED_MARKER in last and LONG_ANSWER[1] not in last
        await caller.hangup()
        await chan.wait_left_stasis(10)
        # The call log's timeline shows the cut-off answer as heard.
        await asyncio.sleep(0.5)
        await state_of(app).call_log.flush()
        async with state_of(app).session_factory() as s:
            call = (await s.scalars(select(Call).where(Call.channel_id == chan.id))).one()
            first = call.turns[0]
            assert first.user_input == "LONG-B1 where is my order"
            assert (first.details or {}).get("interrupted") is True
            assert (first.details or {}).get("heard") == LONG_ANSWER[0]


async def test_barge_in_while_the_model_thinks_cancels_the_model_request(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app)
        voice_vendor.script_transcripts(["SLOW-T1 where is my order", "AGAIN-T2 wait a moment please"])
        fake_llm.script("SLOW-T1", [HangReply(20, "Too late.")])
        fake_llm.script("AGAIN-T2", [TextReply("Of course.")])
        _chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-barge-2")
        await _after_greeting(caller)
        await caller.say("where is my order")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not fake_llm.requests and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert fake_llm.requests, "the model was never asked"
        reply_at = await _ask(caller, "wait a moment please")

        # The hung model request was closed by the gateway; the caller hears the next answer.
        assert [r.user_texts[-1] for r in fake_llm.disconnected] == ["SLOW-T1 where is my order"]
        await wait_quiet(caller, reply_at)
        history = await memory_of(app, "voice-barge-2")
        assert [(m.type, m.content) for m in history] == [
            ("human", "SLOW-T1 where is my order"),
            ("ai", INTERRUPTED_MARKER),
            ("human", "AGAIN-T2 wait a moment please"),
            ("ai", "Of course."),
        ]
        assert history[1].additional_kwargs.get("interrupted") is True
        await caller.hangup()


async def test_barge_in_off_the_caller_cannot_interrupt(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app, barge_in=False)
        voice_vendor.script_transcripts(["LONG-O1 where is my order"])
        fake_llm.script("LONG-O1", [TextReply(" ".join(LONG_ANSWER[:2]))])
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-barge-3")
        await _after_greeting(caller)
        # Muted until the greeting's audio, trailing silence included, has played (its mark).
        await asyncio.sleep(1.5)
        media = _media(fake_ari, chan.id)
        answer_at = await _ask(caller, "where is my order")
        await asyncio.sleep(max(0.0, answer_at + 1.0 - asyncio.get_running_loop().time()))
        talk_at = await caller.say("wait a moment please")
        await _until_silent(caller)

        # The answer played on to its end: nothing was flushed, memory holds all of it.
        assert _speech_s(caller, talk_at) > 2.0
        assert not [t for t in media.command_times_of("FLUSH_MEDIA") if t >= talk_at]
        history = await memory_of(app, "voice-barge-3")
        assert [m.content for m in history if m.type == "ai"] == [" ".join(LONG_ANSWER[:2])]
        assert not any(m.additional_kwargs.get("interrupted") for m in history)
        await caller.hangup()


async def test_a_cough_shorter_than_the_minimum_speech_does_not_interrupt(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    cough = await asyncio.to_thread(_speech_head, "ahh", 100)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app, barge_in_min_speech_ms=300)
        voice_vendor.script_transcripts(["LONG-C1 where is my order"])
        fake_llm.script("LONG-C1", [TextReply(" ".join(LONG_ANSWER[:2]))])
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-barge-4")
        await _after_greeting(caller)
        media = _media(fake_ari, chan.id)
        answer_at = await _ask(caller, "where is my order")
        await asyncio.sleep(max(0.0, answer_at + 1.0 - asyncio.get_running_loop().time()))
        cough_at = await caller.play(cough)
        await asyncio.sleep(1.5)

        # The cough went unnoticed: the agent kept talking, nothing was flushed.
        assert _speech_s(caller, cough_at, asyncio.get_running_loop().time()) > 1.0
        assert not [t for t in media.command_times_of("FLUSH_MEDIA") if t >= cough_at]
        # Real speech, longer than the minimum, still interrupts.
        voice_vendor.script_transcripts(["NEXT-C2 wait a moment please"])
        fake_llm.script("NEXT-C2", [TextReply("Sure.")])
        talk_at = await caller.say("wait a moment please")
        assert [t for t in media.command_times_of("FLUSH_MEDIA") if t >= talk_at]
        assert caller.recording.audio_stopped_after(talk_at) - talk_at <= 0.5
        await caller.hangup()


# ---------------------------------------------------------------------------- failures


async def test_stt_failure_speaks_the_fallback_and_continues_with_error(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app)
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-fail-stt")
        await _after_greeting(caller)
        voice_vendor.fail("transcriptions", Fault.ERROR)
        fallback_at = await _ask(caller, "where is my order")

        await chan.wait_left_stasis(15)
        variables = final_vars(chan)
        assert variables["AI_STATUS"] == "ERROR"
        assert variables["AI_END_REASON"] == "error"
        assert (variables["AI_ERROR"] or "").startswith("stt_error")
        # The spoken fallback was heard before the channel went back to the dialplan.
        assert _speech_s(caller, fallback_at) > 1.0
        assert [r.endpoint for r in voice_vendor.requests] == ["transcriptions"]
        assert not fake_llm.requests
        assert chan.continued_count == 1


async def test_tts_down_plays_the_recorded_fallback_and_continues_with_error(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app, tts_provider="openai", tts_voice="alloy")
        voice_vendor.fail("speech", Fault.ERROR)
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-fail-tts")

        await chan.wait_left_stasis(20)
        variables = final_vars(chan)
        assert variables["AI_STATUS"] == "ERROR"
        assert (variables["AI_ERROR"] or "").startswith("tts_error")
        # The caller heard the recorded prompt through ARI play, not silence.
        assert [p.media_uri for p in caller.playbacks] == [settings.voice_fallback_sound]
        assert [r.endpoint for r in voice_vendor.requests] == ["speech"]
        assert chan.continued_count == 1
        assert live_bridges(fake_ari) == []


async def test_llm_hang_past_the_deadline_speaks_the_fallback_and_ends_with_timeout(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor, ai_turn_timeout_seconds=2.0)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app)
        voice_vendor.script_transcripts(["HANG-F1 where is my order"])
        fake_llm.script("HANG-F1", [HangReply(30, "Too late.")])
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-fail-llm")
        await _after_greeting(caller)
        said_at = await caller.say("where is my order")
        fallback_at = await wait_heard_after(caller, said_at + 1.0)

        await chan.wait_left_stasis(15)
        variables = final_vars(chan)
        # The deadline's own status: TIMEOUT (as text mode), with the fallback as the answer.
        assert variables["AI_STATUS"] == "TIMEOUT"
        assert variables["AI_END_REASON"] == "error"
        assert variables["AI_ERROR"] == "turn_timeout"
        assert variables["AI_RESPONSE"] == "Sorry, our assistant is unavailable. Transferring you now."
        # Heard about 2 s after the caller stopped (the deadline), and long enough to be the text.
        assert 1.5 <= fallback_at - caller.recording.event_times("play_end")[-1] <= 4.0
        assert _speech_s(caller, fallback_at) > 1.5
        assert len(fake_llm.disconnected) == 1
        assert chan.continued_count == 1


async def test_media_websocket_dropped_plays_the_recorded_fallback(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app)
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-fail-ws")
        await _after_greeting(caller)
        ext = _external(fake_ari, chan.id)
        await fake_ari.media.drop_connection(ext.id)

        await chan.wait_left_stasis(15)
        variables = final_vars(chan)
        assert variables["AI_STATUS"] == "ERROR"
        assert variables["AI_ERROR"] == "media_closed"
        assert [p.media_uri for p in caller.playbacks] == [settings.voice_fallback_sound]
        assert live_bridges(fake_ari) == []
        assert chan.continued_count == 1


async def test_caller_hangup_mid_sentence_stops_all_work_and_removes_the_media_path(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice_vendor: FakeVoiceServer
) -> None:
    settings: Settings = voice_settings(make_settings, fake_llm, voice_vendor)
    # Each sentence's speech takes 0.8 s to start: some are still to synthesise at the hang-up.
    voice_vendor.tts_first_byte_ms = 800
    async with voice_gateway(settings, fake_ari) as app:
        await _prompt(app, tts_provider="openai", tts_voice="alloy")
        voice_vendor.script_transcripts(["LONG-H1 where is my order"])
        fake_llm.script("LONG-H1", [TextReply(" ".join(LONG_ANSWER))])
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-fail-hup")
        await _after_greeting(caller)
        ext = _external(fake_ari, chan.id)
        answer_at = await _ask(caller, "where is my order")
        await asyncio.sleep(max(0.0, answer_at + 0.8 - asyncio.get_running_loop().time()))
        llm_requests = len(fake_llm.requests)
        hangup_mono = time.monotonic()
        await caller.hangup()
        await asyncio.sleep(3.0)

        # No request reached any provider after the hang-up (give 50 ms for one in flight).
        assert voice_vendor.requests_after(hangup_mono + 0.05) == []
        assert len(fake_llm.requests) == llm_requests
        spoken = {r.text for r in voice_vendor.requests if r.endpoint == "speech"}
        assert LONG_ANSWER[-1] not in spoken
        # The bridge and the external channel are gone; the caller's channel was not continued.
        assert live_bridges(fake_ari) == []
        assert fake_ari.channels[ext.id].hung_up
        assert chan.continued_count == 0
        assert not [op for op in chan.operations if op[0] == "setvar"]
