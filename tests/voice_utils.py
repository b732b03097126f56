"""Helpers for the voice-mode tests: a gateway wired to the fake media side and voice vendors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app.core.config import Settings
from app.services.agent.memory import ConversationMemory
from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_caller import FakeCaller
from app.testing.fake_llm import FakeLLMServer
from app.testing.fake_voice import FakeVoiceServer
from tests.conftest import llm_provider_overrides, run_gateway, state_of

TEST_OPENAI_AUDIO_KEY = "sk-test-voice-audio-000000000000"


#: The voice settings every test prompt starts from (short timers keep the tests quick).
BASE_VOICE: dict[str, Any] = {
    "greeting": "Hello, this is the order line. How can I help?",
    "stt_provider": "openai",
    "tts_provider": "espeak",
    "end_of_turn_ms": 400,
    "barge_in_min_speech_ms": 150,
    "reprompt_after_s": 6.0,
}


def voice_settings(
    make_settings: Callable[..., Settings],
    fake_llm: FakeLLMServer,
    voice: FakeVoiceServer,
    **overrides: Any,
) -> Settings:
    """Settings for a voice test: OpenAI audio at the stand-in, espeak-ng for speech."""
    providers = {
        **llm_provider_overrides(fake_llm),
        "stt:openai": {"openai_api_key": TEST_OPENAI_AUDIO_KEY, "openai_base_url": voice.openai_base_url},
        "tts:openai": {"openai_api_key": TEST_OPENAI_AUDIO_KEY, "openai_base_url": voice.openai_base_url},
    }
    values: dict[str, Any] = {
        "provider_overrides": providers,
        "voice_stt_provider": "openai",
        "voice_tts_provider": "espeak",
        "ai_turn_timeout_seconds": 8.0,
    }
    values.update(overrides)
    return make_settings(**values)


@asynccontextmanager
async def voice_gateway(settings: Settings, fake_ari: FakeAriServer) -> AsyncIterator[FastAPI]:
    """Run the gateway; point the fake's ``media_connection1`` at its media listener."""
    async with run_gateway(settings, fake_ari) as app:
        voice = state_of(app).voice
        assert voice is not None and voice.listener is not None
        fake_ari.media.websocket_clients["media_connection1"] = f"ws://127.0.0.1:{voice.listener.port}/media"
        await asyncio.sleep(0)
        yield app


async def place_voice_call(
    fake_ari: FakeAriServer, args: str, caller_number: str = "5550100"
) -> tuple[FakeChannel, FakeCaller]:
    """``Stasis(ai_ari_app,AI_MODE=voice,…)`` on a new channel, with its scripted caller."""
    chan = await fake_ari.place_call(f"ai_ari_app,AI_MODE=voice,{args}", caller_number=caller_number)
    return chan, FakeCaller(fake_ari, chan)


async def wait_heard_after(caller: FakeCaller, moment: float, timeout: float = 15.0) -> float:
    """When agent speech first reached the caller after `moment` (loop time, s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        started = caller.recording.audio_started_after(moment)
        if started is not None:
            return started
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no agent speech after t={moment:.2f}")


async def wait_quiet(caller: FakeCaller, moment: float, timeout: float = 15.0) -> float:
    """Wait until the agent, speaking after `moment`, has stopped (200 ms of quiet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        # 600 ms without speech: pauses between words and sentences are shorter.
        stopped = caller.recording.audio_stopped_after(moment, quiet_ms=600)
        if caller.recording.audio_started_after(moment) is not None and loop.time() - stopped > 0.6:
            return stopped
        await asyncio.sleep(0.05)
    raise TimeoutError("the agent kept talking")


def final_vars(chan: FakeChannel) -> dict[str, str | None]:
    """Channel variables as the gateway set them, last value wins."""
    out: dict[str, str | None] = {}
    for op in chan.operations:
        if op[0] == "setvar":
            out[op[1]] = op[2]
    return out


def live_bridges(fake_ari: FakeAriServer) -> list[str]:
    """Ids of the bridges not destroyed."""
    return [b.id for b in fake_ari.bridges.bridges.values() if not b.destroyed]


async def memory_of(app: FastAPI, uniqueid: str) -> list[Any]:
    """The conversation's messages in Redis, oldest first."""
    st = state_of(app)
    memory = ConversationMemory(st.redis, prefix=st.settings.redis_key_prefix)
    return await memory.load(uniqueid)
