"""Voice mode dialogue control: silence, DTMF, transfer, maximum duration, media modes, greeting cache.

Issue 11 tests 3 and 4, the ``server`` connection type, the ``slin16`` codec and the cached
greeting, plus what a caller does to them: a key pressed over a menu, talking over the
transfer sentence, talking before the greeting was synthesised. As in ``tests/test_voice.py`` the gateway runs for real (pipecat, Silero VAD, our
agent, espeak-ng speech, Redis, the call log) against wire-level stand-ins for Asterisk, the
LLM and OpenAI's transcription endpoint. Each test asserts what the caller hears (the
recording: when speech arrives and how long it lasts, compared with espeak-ng speaking the
same text) and what the dialplan gets (channel variables, the ``continue`` target).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from fastapi import FastAPI

from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_caller import CallerRecording, FakeCaller
from app.testing.fake_llm import FakeLLMServer, TextReply, ToolCallReply
from app.testing.fake_voice import FakeVoiceServer
from app.testing.voice_audio import DEFAULT_WORDS_PER_MINUTE as STAND_IN_WPM
from app.testing.voice_audio import rms, synthesize
from tests.conftest import run_gateway, state_of
from tests.utils import create_prompt
from tests.voice_utils import (
    BASE_VOICE,
    final_vars,
    live_bridges,
    place_voice_call,
    voice_gateway,
    voice_settings,
    wait_heard_after,
)

pytestmark = pytest.mark.slow

#: The gateway's espeak-ng rate (``EspeakTTSProvider`` default ``-s``), words per minute.
GATEWAY_WPM = 160
#: Quiet (s) that separates two things the agent said (longer than espeak-ng's pause at a full stop).
SEGMENT_QUIET_S = 0.7
#: A greeting without pauses inside, so the end of it is plain to hear.
GREETING = "How can I help you today?"


@functools.cache
def spoken_seconds(text: str, words_per_minute: int = GATEWAY_WPM) -> float:
    """How long espeak-ng speaks `text` (by default at the gateway's rate), silence cut (s)."""
    pcm = synthesize(text, sample_rate_hz=8000, words_per_minute=words_per_minute)
    frame = 320  # 20 ms at 8 kHz, 2 bytes per sample
    loud = [i for i in range(0, len(pcm), frame) if rms(pcm[i : i + frame]) > 300]
    return (loud[-1] - loud[0] + frame) / 16000 if loud else 0.0


def segments(recording: CallerRecording, start: float | None = None) -> list[tuple[float, float]]:
    """The agent's utterances as heard: ``(first speech arrival, end of last speech)`` in s."""
    out: list[tuple[float, float]] = []
    for frame in recording.speech_frames(start=start):
        end = frame.time + frame.duration_s
        if out and frame.time - out[-1][1] < SEGMENT_QUIET_S:
            out[-1] = (out[-1][0], end)
        else:
            out.append((frame.time, end))
    return out


def assert_sounds_like(segment: tuple[float, float], text: str, words_per_minute: int = GATEWAY_WPM) -> None:
    """The heard `segment` lasts as long as espeak-ng saying `text` (±35 %, ±0.3 s)."""
    heard, expected = segment[1] - segment[0], spoken_seconds(text, words_per_minute)
    assert abs(heard - expected) <= max(0.35 * expected, 0.3), (
        f"heard {heard:.2f} s, but {text!r} takes {expected:.2f} s"
    )


async def wait_said(caller: FakeCaller, moment: float, timeout: float = 15.0) -> tuple[float, float]:
    """Wait until the agent said something after `moment` and then kept quiet; its segment (s)."""
    started = await wait_heard_after(caller, moment, timeout)
    while True:
        heard = segments(caller.recording, started)
        if heard and now() - heard[0][1] > SEGMENT_QUIET_S:
            return heard[0]
        await asyncio.sleep(0.05)


def now() -> float:
    """The event loop's clock (the recording's time base), in s."""
    return asyncio.get_running_loop().time()


async def voice_prompt(app: FastAPI, name: str = "support", **voice: Any) -> None:
    """A prompt with `BASE_VOICE` plus `voice`."""
    await create_prompt(state_of(app).session_factory, name, voice={**BASE_VOICE, **voice})


async def ended(chan: FakeChannel, timeout: float = 20.0) -> dict[str, str | None]:
    """Wait until the channel left Stasis; its final channel variables."""
    await chan.wait_left_stasis(timeout)
    return final_vars(chan)


def continued_to(chan: FakeChannel) -> list[dict[str, Any]]:
    """The ``continue`` requests' params, in order."""
    return [op[1] for op in chan.operations if op[0] == "continue"]


# --------------------------------------------------------------------------- silence


@pytest.mark.parametrize("send_frames", [False, True], ids=["no_frames", "silent_frames"])
async def test_silent_caller_hears_reprompts_then_goodbye_and_ends_no_input(
    send_frames: bool,
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    reprompt, goodbye = "Are you still there?", "We did not hear you, so we will end this call now. Goodbye."
    after_s = 1.5
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(
            app,
            greeting="Hello.",
            reprompt_after_s=after_s,
            reprompt_text=reprompt,
            max_reprompts=2,
            goodbye_text=goodbye,
        )
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-silent")
        quiet = asyncio.create_task(caller.silence(30, send_frames=send_frames))
        try:
            variables = await ended(chan, 25)
        finally:
            quiet.cancel()

    heard = segments(caller.recording)
    assert len(heard) == 4, f"expected greeting, 2 reprompts, goodbye; heard {heard}"
    greeting, first, second, bye = heard
    assert_sounds_like(greeting, "Hello.")
    assert_sounds_like(first, reprompt)
    assert_sounds_like(second, reprompt)
    assert_sounds_like(bye, goodbye)
    # Each comes `reprompt_after_s` after the previous one ended (audio is sent up to
    # VOICE_MAX_LEAD_MS ahead of real time, so the silence as heard may be that much shorter).
    for before, after in ((greeting, first), (first, second), (second, bye)):
        assert after_s - 0.4 <= after[0] - before[1] <= after_s + 1.2
    assert variables["AI_STATUS"] == "NO_INPUT"
    assert variables["AI_END_REASON"] == "caller_silent"
    assert variables["AI_TURNS"] == "0"
    assert fake_llm.requests == []
    # Continued once, after the goodbye was heard to the end.
    assert chan.continued_count == 1
    assert live_bridges(fake_ari) == []


# --------------------------------------------------------------------------- DTMF


async def test_dtmf_digits_pressed_together_reach_the_model_as_one_message(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    pause_ms = 800
    answer = "You chose billing."
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting="Press one for billing.", dtmf_pause_ms=pause_ms)
        fake_llm.script("[caller pressed 1 2]", [TextReply(answer)])
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-dtmf")
        await wait_said(caller, 0.0)

        await caller.press("1")
        await caller.press("2")
        pressed_at = now()
        await asyncio.sleep(pause_ms / 1000 * 0.6)
        assert fake_llm.requests == [], "the digits went to the model before the pause ended"
        heard = await wait_said(caller, pressed_at)

        assert [r.last_user_text for r in fake_llm.requests] == ["[caller pressed 1 2]"]
        assert heard[0] - pressed_at >= pause_ms / 1000
        assert_sounds_like(heard, answer)
        # The call goes on: nothing was handed back to the dialplan.
        assert chan.continued_count == 0
        await caller.hangup()


async def test_a_key_pressed_while_the_agent_speaks_cuts_it_off(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    menu = (
        "Press one for billing, two for orders, or stay on the line to talk to our assistant about anything."
    )
    answer = "You chose billing."
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting=menu, dtmf_pause_ms=1200)
        fake_llm.script("[caller pressed 1]", [TextReply(answer)])
        _chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-dtmf-cut")
        menu_at = await caller.wait_for_agent_audio(10)
        await asyncio.sleep(max(0.0, menu_at + 1.0 - now()))
        await caller.press("1")
        pressed_at = now()
        heard = await wait_said(caller, pressed_at + 0.8)
        await caller.hangup()

    # The menu (about 6 s) stops soon after the key (audio is sent up to 300 ms ahead).
    menu_heard = segments(caller.recording)[0]
    assert menu_heard[1] - pressed_at <= 0.6, f"menu went on {menu_heard[1] - pressed_at:.2f} s after the key"
    assert [r.last_user_text for r in fake_llm.requests] == ["[caller pressed 1]"]
    assert_sounds_like(heard, answer)


# --------------------------------------------------------------------------- transfer

TARGETS = [
    {"name": "sales", "description": "The sales team", "context": "sales-queue", "extension": "100"},
    {"name": "operator", "description": "A human operator", "endpoint": "PJSIP/200"},
]


async def test_transfer_refuses_an_unlisted_target_then_continues_at_the_dialplan_target(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    refusal_answer = "I can transfer you to sales or to an operator."
    closing = "Transferring you to sales now."
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting="", transfer_targets=TARGETS)
        voice_vendor.script_transcripts(["BILLING-T1 put me through to billing", "SALES-T2 sales then"])
        fake_llm.script(
            "BILLING-T1",
            [ToolCallReply([("transfer_call", {"target": "billing"})]), TextReply(refusal_answer)],
        )
        fake_llm.script(
            "SALES-T2", [ToolCallReply([("transfer_call", {"target": "sales"})]), TextReply(closing)]
        )
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-xfer")
        await asyncio.sleep(1.0)  # media up; no greeting

        said_at = await caller.say("put me through to billing")
        heard = await wait_said(caller, said_at)
        # The refusal went back to the model, listing the valid targets; the call goes on.
        refusal = [m for m in fake_llm.requests[1].messages if m.role == "tool"][-1].content
        assert "billing" in refusal and "sales" in refusal and "operator" in refusal
        assert_sounds_like(heard, refusal_answer)
        assert chan.continued_count == 0

        left_at: list[float] = []
        watch = asyncio.create_task(chan.left_stasis.wait())
        watch.add_done_callback(lambda _t: left_at.append(now()))
        said_at = await caller.say("sales then")
        variables = await ended(chan)
        await watch

    closing_heard = segments(caller.recording, said_at)
    assert len(closing_heard) == 1
    assert_sounds_like(closing_heard[0], closing)
    assert left_at[0] >= closing_heard[0][1] - 0.05, "continued before the closing sentence was heard"
    assert continued_to(chan) == [{"context": "sales-queue", "extension": "100", "priority": "1"}]
    assert variables["AI_STATUS"] == "TRANSFER"
    assert variables["AI_TRANSFER_TARGET"] == "sales-queue,100,1"
    assert variables["AI_RESPONSE"] == closing
    assert live_bridges(fake_ari) == []


async def test_a_caller_who_talks_over_the_transfer_sentence_is_not_transferred_later(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    closing = "Transferring you to our sales team now. Please stay on the line while I connect you."
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting="", transfer_targets=TARGETS)
        voice_vendor.script_transcripts(
            ["SALES-B1 sales please", "WAIT-B2 no wait one more question", "AGAIN-B3 ok sales then"]
        )
        fake_llm.script(
            "SALES-B1", [ToolCallReply([("transfer_call", {"target": "sales"})]), TextReply(closing)]
        )
        fake_llm.script("WAIT-B2", [TextReply("Of course, what is it?")])
        fake_llm.script(
            "AGAIN-B3", [ToolCallReply([("transfer_call", {"target": "sales"})]), TextReply("Sales, then.")]
        )
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-xfer-barge")
        await asyncio.sleep(1.0)
        await caller.say("sales please")
        talked_at = await caller.talk_over("no wait one more question", after_ms=600)
        await wait_said(caller, talked_at + 0.5)
        await asyncio.sleep(1.0)
        # The caller stopped the transfer: the call goes on after the next answer ...
        assert chan.continued_count == 0
        assert chan.in_stasis
        # ... until the model transfers again, when the caller lets it finish.
        await caller.say("ok sales then")
        variables = await ended(chan)
    assert continued_to(chan) == [{"context": "sales-queue", "extension": "100", "priority": "1"}]
    assert variables["AI_STATUS"] == "TRANSFER"


async def test_transfer_to_an_endpoint_hands_it_to_the_dialplan(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    closing = "Connecting you to an operator."
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting="", transfer_targets=TARGETS)
        voice_vendor.script_transcripts(["OPERATOR-T1 a person please"])
        fake_llm.script(
            "OPERATOR-T1",
            [ToolCallReply([("transfer_call", {"target": "operator"})]), TextReply(closing)],
        )
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-xfer-ep")
        await asyncio.sleep(1.0)
        said_at = await caller.say("a person please")
        variables = await ended(chan)

    assert_sounds_like(segments(caller.recording, said_at)[0], closing)
    assert variables["AI_STATUS"] == "TRANSFER"
    assert variables["AI_TRANSFER_TARGET"] == "PJSIP/200"
    # The dialplan's next step (`GotoIf`/`Dial(${AI_TRANSFER_TARGET})`) takes it from here.
    assert continued_to(chan) == [{}]
    assert chan.priority == 3


# --------------------------------------------------------------------------- maximum duration


async def test_maximum_duration_says_goodbye_and_ends(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    goodbye = "Our time is up. Goodbye."
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting="Hello.", max_duration_s=3, goodbye_text=goodbye)
        placed_at = now()
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-max")
        quiet = asyncio.create_task(caller.silence(10))
        try:
            variables = await ended(chan, 15)
        finally:
            quiet.cancel()

    heard = segments(caller.recording)
    assert len(heard) == 2, heard
    assert_sounds_like(heard[1], goodbye)
    assert 3.0 <= heard[1][0] - placed_at <= 4.5
    assert variables["AI_STATUS"] == "TIMEOUT"
    assert variables["AI_END_REASON"] == "max_duration"
    assert chan.continued_count == 1


async def test_maximum_duration_cuts_a_long_answer_off_for_the_goodbye(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    goodbye = "Our time is up. Goodbye."
    long_answer = " ".join(f"Item {n} of your order is a box of blue pencils." for n in range(1, 7))
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting="", max_duration_s=4, goodbye_text=goodbye)
        voice_vendor.script_transcripts(["LONG-D1 what is in my order"])
        fake_llm.script("LONG-D1", [TextReply(long_answer)])
        placed_at = now()
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-max-long")
        await asyncio.sleep(0.5)
        await caller.say("what is in my order")
        variables = await ended(chan, 20)

    # The answer (about 15 s of speech) is cut off at 4 s, and the goodbye follows at once
    # (no pause between them): speech ends one goodbye after the maximum duration.
    heard = segments(caller.recording)
    ended_at = heard[-1][1] - placed_at
    assert heard[0][0] - placed_at < 4.0
    assert 4.0 + spoken_seconds(goodbye) - 0.6 <= ended_at <= 4.0 + spoken_seconds(goodbye) + 1.2
    assert variables["AI_STATUS"] == "TIMEOUT"
    assert variables["AI_END_REASON"] == "max_duration"


# --------------------------------------------------------------------------- media modes


async def _one_turn(
    fake_ari: FakeAriServer, fake_llm: FakeLLMServer, voice: FakeVoiceServer, key: str
) -> tuple[FakeChannel, FakeCaller]:
    """Greeting, one question, one answer, all heard in full; then the caller hangs up."""
    answer = "Order 42 has shipped."
    voice.script_transcripts([f"{key} where is my order"])
    fake_llm.script(key, [TextReply(answer)])
    chan, caller = await place_voice_call(fake_ari, f"AI_PROMPT_NAME=support,UNIQUEID=voice-{key}")
    greeting = await wait_said(caller, 0.0)
    said_at = await caller.say("where is my order")
    heard = await wait_said(caller, said_at)
    assert segments(caller.recording) == [greeting, heard]
    assert_sounds_like(greeting, GREETING)
    assert_sounds_like(heard, answer)
    assert caller.recording.gaps(start=heard[0]) == []
    assert [r.last_user_text for r in fake_llm.requests] == [f"{key} where is my order"]
    await caller.hangup()
    # The hang-up ends the session: the bridge and the external channel are removed.
    for _ in range(100):
        if not live_bridges(fake_ari):
            break
        await asyncio.sleep(0.05)
    assert live_bridges(fake_ari) == []
    return chan, caller


async def test_server_connection_type_holds_a_turn(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    settings = voice_settings(make_settings, fake_llm, voice_vendor, voice_media_connection_type="server")
    async with run_gateway(settings, fake_ari) as app:
        voice = state_of(app).voice
        assert voice is not None and voice.listener is None  # nothing listens: the gateway dials
        await voice_prompt(app, greeting=GREETING)
        await _one_turn(fake_ari, fake_llm, voice_vendor, "SERVER-M1")
        external = [c for c in fake_ari.channels.values() if c.id.startswith("aigw-media-")]
        assert len(external) == 1
        session = fake_ari.media.session_for(external[0].id)
        assert session is not None and session.connection_type == "server"


async def test_slin16_codec_holds_a_turn(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    settings = voice_settings(make_settings, fake_llm, voice_vendor, voice_codec="slin16")
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting=GREETING)
        _chan, caller = await _one_turn(fake_ari, fake_llm, voice_vendor, "SLIN-M2")
    assert {f.format for f in caller.recording.frames} == {"slin16"}
    # 20 ms at 16 kHz, 16-bit: 640 bytes (a short last frame is allowed).
    sizes = [len(f.payload) for f in caller.recording.frames]
    assert max(sizes) == 640 and sizes.count(640) >= len(sizes) - 3


# --------------------------------------------------------------------------- cached greeting


async def test_second_call_hears_the_cached_greeting_within_200_ms(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    # OpenAI speech at the stand-in, 500 ms to its first byte: only a cached greeting is quick.
    voice_vendor.tts_first_byte_ms = 500
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting=GREETING, tts_provider="openai")
        started: list[float] = []
        for n in (1, 2):
            placed_at = now()
            chan, caller = await place_voice_call(
                fake_ari, f"AI_PROMPT_NAME=support,UNIQUEID=voice-greet-{n}"
            )
            greeting = await wait_said(caller, placed_at)
            assert segments(caller.recording) == [greeting]
            assert_sounds_like(greeting, GREETING, STAND_IN_WPM)
            # Time to greeting (issue 11): StasisStart → the greeting's first frame (the
            # gateway sends nothing before it; espeak-ng starts with a little silence).
            started.append(caller.recording.frames[0].time - placed_at)
            await caller.hangup()
            await chan.wait_left_stasis(5)

    first, second = started
    assert first >= 0.5, "the first call synthesises the greeting"
    assert second <= 0.2, f"cached greeting heard {second * 1000:.0f} ms after StasisStart"
    assert [r.text for r in voice_vendor.requests if r.endpoint == "speech"] == [GREETING]


async def test_a_greeting_cut_short_is_not_cached(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    answer = "Hi there, this is the order line assistant, what can I do for you?"
    voice_vendor.tts_first_byte_ms = 500
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await voice_prompt(app, greeting=GREETING, tts_provider="openai")
        voice_vendor.script_transcripts(["HELLO-G1 hello is anybody there"])
        fake_llm.script("HELLO-G1", [TextReply(answer)])
        # The first caller talks at once, over the greeting still being synthesised.
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-greet-cut")
        said_at = await caller.say("hello, is anybody there")
        await wait_said(caller, said_at)
        await caller.hangup()
        await chan.wait_left_stasis(5)

        placed_at = now()
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=voice-greet-next")
        greeting = await wait_said(caller, placed_at)
        await caller.hangup()

    # The next caller hears the greeting, whole: not what the first caller was answered.
    assert_sounds_like(greeting, GREETING, STAND_IN_WPM)
