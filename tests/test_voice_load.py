"""Voice mode under load, and Asterisk's flow control (issue 11, test 6).

Twenty callers talk to one gateway process at once (real pipecat pipelines, Silero VAD,
espeak-ng speech, Redis memory); each must hear the greeting and the answer without holes,
and every call must end in the dialplan with ``AI_STATUS=OK``. A second test makes the
fake Asterisk's playout queue tiny so it sends ``MEDIA_XOFF``: the gateway must stop
sending until ``MEDIA_XON`` and no message may be dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.testing import chan_websocket, fake_voice
from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_caller import FakeCaller
from app.testing.fake_llm import FakeLLMServer, LLMRequest, Reply, TextReply, ToolCallReply
from app.testing.fake_voice import FakeVoiceServer
from tests.conftest import state_of
from tests.utils import create_prompt
from tests.voice_utils import (
    BASE_VOICE,
    final_vars,
    live_bridges,
    place_voice_call,
    voice_gateway,
    voice_settings,
    wait_heard_after,
    wait_quiet,
)

pytestmark = pytest.mark.slow

CALLS = 20
ANSWER = "Order 42 has shipped with DHL and arrives in two days. Thank you for calling, goodbye."
#: A stretch of at least this long (ms) with no frame inside the agent's speech is a gap.
MIN_GAP_MS = 100


@pytest.fixture
async def voice_vendor(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeVoiceServer]:
    """OpenAI audio (transcriptions, speech) on loopback; each distinct text synthesised once.

    Forty espeak-ng and sox runs for the same two sentences would load the two cores this
    test shares with the gateway: the stand-in's speed is not what this test is about.
    """
    cache: dict[tuple[str, int], bytes] = {}
    synthesize = fake_voice.asynthesize

    async def cached(text: str, *, sample_rate_hz: int = 16000, **kwargs: Any) -> bytes:
        key = (text, sample_rate_hz)
        if key not in cache:
            cache[key] = await synthesize(text, sample_rate_hz=sample_rate_hz, **kwargs)
        return cache[key]

    monkeypatch.setattr(fake_voice, "asynthesize", cached)
    async with FakeVoiceServer() as server:
        yield server


def closing_answer(request: LLMRequest) -> Reply:
    """Every caller asks once: the model calls ``end_call``, then says its closing answer."""
    if request.messages and request.messages[-1].role == "tool":
        return TextReply(ANSWER)
    return ToolCallReply([("end_call", {"reason": "answered"})])


async def one_caller(fake_ari: FakeAriServer, chan: FakeChannel, caller: FakeCaller) -> dict[str, Any]:
    """Greeting, one question, the answer; what the caller noticed."""
    session = await _session_when_bridged(fake_ari, chan)
    greeting_at = await caller.wait_for_agent_audio(20)
    greeting_end = await wait_quiet(caller, greeting_at, timeout=20)
    await caller.say("where is my order forty two")
    asked = asyncio.get_running_loop().time()
    answer_at = await wait_heard_after(caller, asked, timeout=20)
    await chan.wait_left_stasis(20)
    rec = caller.recording
    answer_end = rec.speech_frames()[-1].time  # the call ended after the closing answer
    return {
        "greeting_gaps": rec.gaps(greeting_at, greeting_end, min_gap_ms=MIN_GAP_MS),
        "answer_gaps": rec.gaps(answer_at, answer_end, min_gap_ms=MIN_GAP_MS),
        "answer_s": answer_end - answer_at,
        "vars": final_vars(chan),
        "dropped": (session.dropped_messages, session.dropped_bytes),
    }


async def test_twenty_simultaneous_calls_complete_without_gaps(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
) -> None:
    settings = voice_settings(make_settings, fake_llm, voice_vendor, ai_turn_timeout_seconds=20.0)
    async with voice_gateway(settings, fake_ari) as app:
        voice = {**BASE_VOICE, "tts_provider": "openai"}
        await create_prompt(state_of(app).session_factory, "support", voice=voice)
        voice_vendor.script_transcripts(["where is my order 42"] * CALLS)
        fake_llm.set_responder(closing_answer)
        calls = [
            await place_voice_call(fake_ari, f"AI_PROMPT_NAME=support,UNIQUEID=load-{i}", f"55501{i:02d}")
            for i in range(CALLS)
        ]
        results = await asyncio.gather(*(one_caller(fake_ari, chan, caller) for chan, caller in calls))

        holes = [
            (i, part, [f"{g.ms:.0f} ms" for g in r[f"{part}_gaps"]])
            for i, r in enumerate(results)
            for part in ("greeting", "answer")
            if r[f"{part}_gaps"]
        ]
        assert holes == [], "holes in the agent's speech: (call, part, gaps)"
        for i, result in enumerate(results):
            # Both sentences of the answer were heard (~9.5 s at the stand-in's rate; one is ~5 s).
            assert result["answer_s"] > 7.0, f"call {i}: answer cut short ({result['answer_s']:.1f} s)"
            variables = result["vars"]
            assert variables["AI_STATUS"] == "OK", (i, variables)
            assert variables["AI_END_REASON"] == "agent_ended"
            assert variables["AI_TURNS"] == "1"
            assert variables["AI_RESPONSE"] == ANSWER
            assert result["dropped"] == (0, 0), f"call {i}: audio dropped by Asterisk's queue"
        assert [chan.continued_count for chan, _ in calls] == [1] * CALLS
        assert live_bridges(fake_ari) == []


async def _wait_for(predicate: Any, timeout: float) -> float:
    """Poll `predicate` every 10 ms; the loop time it first held (s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.01)
    return loop.time()


LONG_GREETING = (
    "Hello, this is the order line of Example Shop. We can tell you where your parcel is, "
    "change a delivery address, or take a return. How can I help you today?"
)


async def test_media_xoff_stops_sending_until_xon(
    make_settings: Any,
    fake_ari: FakeAriServer,
    fake_llm: FakeLLMServer,
    voice_vendor: FakeVoiceServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tiny playout queue: XOFF at 10 frames (200 ms), and no XON until the test allows it.
    monkeypatch.setattr(chan_websocket, "XOFF_LEVEL", 10)
    monkeypatch.setattr(chan_websocket, "XON_LEVEL", -1)
    settings = voice_settings(make_settings, fake_llm, voice_vendor)
    async with voice_gateway(settings, fake_ari) as app:
        await create_prompt(
            state_of(app).session_factory, "support", voice={**BASE_VOICE, "greeting": LONG_GREETING}
        )
        chan, caller = await place_voice_call(fake_ari, "AI_PROMPT_NAME=support,UNIQUEID=xoff-1")
        session = await _session_when_bridged(fake_ari, chan)
        xoff_at = await _wait_for(lambda: session.events_named("MEDIA_XOFF"), 10)

        # Held off: after the messages already on the wire, nothing more arrives.
        await asyncio.sleep(1.0)
        late = [t for t, _ in session.binary_received if t > xoff_at + 0.1]
        assert late == [], f"{len(late)} messages sent during MEDIA_XOFF"
        assert session.queue_frames == 0  # the caller has heard everything sent

        # XON at 4 frames from now on: the greeting resumes, with XOFF/XON cycles and no holes.
        monkeypatch.setattr(chan_websocket, "XON_LEVEL", 4)
        resumed = await wait_heard_after(caller, xoff_at + 1.0, timeout=5)
        ended = await wait_quiet(caller, resumed, timeout=20)
        assert len(session.events_named("MEDIA_XON")) >= 2
        assert len(session.events_named("MEDIA_XOFF")) >= 2
        assert caller.recording.gaps(resumed, ended, min_gap_ms=MIN_GAP_MS) == []
        assert ended - resumed > 2.0  # the rest of the greeting, not a fragment
        assert session.dropped_messages == 0
        assert session.dropped_bytes == 0
        await caller.hangup()
        await chan.wait_left_stasis(10)


async def _session_when_bridged(fake_ari: FakeAriServer, chan: FakeChannel) -> Any:
    """The media session of the external channel bridged with `chan`, once it exists."""
    found: list[Any] = []

    def bridged() -> bool:
        for peer in fake_ari.bridges.peers(chan.id):
            session = fake_ari.media.session_for(peer.id)
            if session is not None and session.connected:
                found.append(session)
                return True
        return False

    await _wait_for(bridged, 10)
    return found[0]
