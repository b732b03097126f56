"""Chaos: 300 calls while Redis dies and returns, the LLM fails at random, and the ARI WebSocket drops.

At the end every channel was continued exactly once with a status, the call log holds every
turn (or counted what it could not write), and no conversation's history is out of order.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.models import Turn
from app.services.agent.memory import ConversationMemory
from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_llm import ErrorReply, FakeLLMServer, HangReply, LLMRequest, Reply, TextReply
from tests.conftest import run_gateway, state_of
from tests.redis_proc import RedisProcess
from tests.test_call_path import final_vars

CONVERSATIONS = 30
TURNS_EACH = 10
STATUSES = {"OK", "ERROR", "TIMEOUT", "BUSY", "NO_INPUT"}
MARKER = re.compile(r"CHAOS-(\d+)-(\d+)")


def chaotic_llm(rng: random.Random) -> Any:
    def respond(request: LLMRequest) -> Reply:
        roll = rng.random()
        if roll < 0.10:
            return ErrorReply(429, "rate limited")
        if roll < 0.20:
            return ErrorReply(500, "internal error")
        if roll < 0.25:
            return HangReply(5.0, "too late")
        return TextReply(f"answer to {request.last_user_text}")

    return respond


@pytest.mark.slow
async def test_chaos_every_call_continued_exactly_once(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tmp_path: Any
) -> None:
    rng = random.Random(20261123)
    fake_llm.set_responder(chaotic_llm(rng))
    redis = RedisProcess(tmp_path)
    await redis.start()
    settings = make_settings(
        redis_url=redis.url,
        redis_timeout_seconds=0.3,
        ai_turn_timeout_seconds=1.5,
        llm_max_retries=1,
        ari_reconnect_min_seconds=0.05,
        ari_reconnect_max_seconds=0.2,
    )
    channels: list[FakeChannel] = []
    try:
        async with run_gateway(settings, fake_ari) as app:

            async def conversation(n: int) -> None:
                for t in range(TURNS_EACH):
                    chan = await fake_ari.place_call(
                        f"ai_ari_app,USER_INPUT=CHAOS-{n}-{t} hello,UNIQUEID=chaos-{n}"
                    )
                    channels.append(chan)
                    await chan.wait_left_stasis(30)

            async def chaos() -> None:
                await asyncio.sleep(1.0)
                await redis.stop()
                await asyncio.sleep(0.5)
                await fake_ari.drop_websockets()
                await asyncio.sleep(1.0)
                await redis.start()
                await asyncio.sleep(1.5)
                await fake_ari.drop_websockets()
                await asyncio.sleep(0.5)
                await redis.stop()
                await asyncio.sleep(0.7)
                await redis.start()

            await asyncio.gather(chaos(), *(conversation(n) for n in range(CONVERSATIONS)))
            st = state_of(app)
            await asyncio.wait_for(st.call_log.flush(), 30)
            async with st.session_factory() as session:
                logged = await session.scalar(select(func.count(Turn.id)))
            events = st.ari_events
            assert events is not None and events.reconnects >= 2

            # History order, read back through the gateway's own memory code.
            client = Redis.from_url(redis.url)
            memory = ConversationMemory(client, prefix=settings.redis_key_prefix)
            try:
                for n in range(CONVERSATIONS):
                    history = await memory.load(f"chaos-{n}")
                    turns = [
                        int(m.group(2))
                        for msg in history
                        if msg.type == "human" and (m := MARKER.search(str(msg.content)))
                    ]
                    assert turns == sorted(turns), f"conversation {n} out of order: {turns}"
            finally:
                await client.aclose()
            dropped = st.call_log.dropped
    finally:
        await redis.stop()

    assert len(channels) == CONVERSATIONS * TURNS_EACH
    for chan in channels:
        assert chan.continued_count == 1, (chan.id, chan.operations)
        assert final_vars(chan).get("AI_STATUS") in STATUSES
        assert final_vars(chan).get("AI_RESPONSE")
    assert fake_ari.parked_channels("ai_ari_app") == []
    assert logged + dropped == len(channels)
    statuses = {final_vars(c)["AI_STATUS"] for c in channels}
    assert "OK" in statuses and statuses - {"OK"}, statuses
    counts = {s: sum(1 for c in channels if final_vars(c)["AI_STATUS"] == s) for s in statuses}
    errors = sorted({final_vars(c)["AI_ERROR"] or "" for c in channels})
    print(f"chaos: {counts} errors={errors} logged={logged} dropped={dropped}")
