"""Conversation memory in real Redis: faithful serialisation, TTL, trimming, the lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from redis.asyncio import Redis

from app.core.redis import create_redis
from app.services.agent.memory import ConversationMemory, deserialize_turn, serialize_turn
from tests.conftest import REDIS_URL


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


def a_turn(i: int) -> list:
    return [
        HumanMessage(f"where is order {i}?"),
        AIMessage(
            "",
            tool_calls=[{"id": f"call_{i}", "name": "check_order", "args": {"order_id": str(i)}}],
            usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
        ),
        ToolMessage('{"status": "shipped"}', tool_call_id=f"call_{i}", name="check_order"),
        AIMessage(f"Order {i} has shipped."),
    ]


async def test_turns_round_trip_with_tool_calls(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix, ttl_seconds=60, max_turns=5)
    await mem.append_turn("c1", a_turn(1))
    await mem.append_turn("c1", a_turn(2))
    loaded = await mem.load("c1")
    assert loaded == a_turn(1) + a_turn(2)
    assert loaded[1].tool_calls[0]["args"] == {"order_id": "1"}
    assert isinstance(loaded[2], ToolMessage) and loaded[2].tool_call_id == "call_1"
    assert await mem.load("other") == []


async def test_ttl_is_set_and_old_turns_are_trimmed_whole(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix, ttl_seconds=120, max_turns=3)
    for i in range(5):
        await mem.append_turn("c2", a_turn(i))
    ttl = await redis.ttl(mem.key("c2"))
    assert 100 < ttl <= 120
    loaded = await mem.load("c2")
    assert len(loaded) == 12 and loaded[0].content == "where is order 2?"


async def test_corrupt_entry_is_skipped(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix)
    await mem.append_turn("c3", a_turn(1))
    await redis.rpush(mem.key("c3"), b"{not json")
    await mem.append_turn("c3", a_turn(2))
    assert len(await mem.load("c3")) == 8


async def test_lock_serialises_turns_of_one_conversation(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix)
    order: list[str] = []

    async def turn(name: str, hold: float) -> None:
        lock = await mem.acquire_lock("c4", wait_seconds=5, hold_seconds=10)
        assert lock is not None
        order.append(f"{name}-start")
        await asyncio.sleep(hold)
        order.append(f"{name}-end")
        await mem.release_lock(lock)

    await asyncio.gather(turn("a", 0.3), turn("b", 0.0))
    assert order in (["a-start", "a-end", "b-start", "b-end"], ["b-start", "b-end", "a-start", "a-end"])


async def test_lock_gives_up_after_its_wait(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix)
    first = await mem.acquire_lock("c5", wait_seconds=1, hold_seconds=10)
    second = await mem.acquire_lock("c5", wait_seconds=0.2, hold_seconds=10)
    assert first is not None and second is None
    await mem.release_lock(first)


text = st.text(max_size=50)
messages = st.one_of(
    text.map(HumanMessage),
    text.map(lambda t: AIMessage(t)),
    text.map(SystemMessage),
    st.builds(
        lambda t, name, arg: AIMessage(t, tool_calls=[{"id": "c1", "name": name or "f", "args": {"x": arg}}]),
        text,
        st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
        st.integers() | text,
    ),
    st.builds(
        lambda t, i: ToolMessage(t, tool_call_id=i or "id"),
        text,
        st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True),
    ),
)


@settings(max_examples=200)
@given(st.lists(messages, max_size=8))
def test_serialiser_round_trips(turn: list) -> None:
    assert deserialize_turn(serialize_turn(turn)) == turn


async def test_acquire_and_load_takes_the_lock_and_reads_history_together(
    redis: Redis, redis_prefix: str
) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix)
    await mem.append_turn("c6", a_turn(1))
    lock, history = await mem.acquire_and_load("c6", wait_seconds=1, hold_seconds=10)
    assert lock is not None and history == a_turn(1)
    # While held, another turn waits and then gives up without the lock...
    other, other_history = await mem.acquire_and_load("c6", wait_seconds=0.2, hold_seconds=10)
    assert other is None and other_history == a_turn(1)
    # ...and once released, it gets it.
    await mem.release_lock(lock)
    again, _ = await mem.acquire_and_load("c6", wait_seconds=0.2, hold_seconds=10)
    assert again is not None
    await mem.release_lock(again)
    assert await redis.exists(f"{redis_prefix}lock:c6") == 0


async def test_saving_a_turn_releases_its_lock_in_the_same_step(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix, ttl_seconds=60, max_turns=5)
    lock, _ = await mem.acquire_and_load("c7", wait_seconds=1, hold_seconds=10)
    assert lock is not None
    await mem.append_turn("c7", a_turn(1), unlock=lock)
    assert await mem.load("c7") == a_turn(1)
    assert await redis.exists(f"{redis_prefix}lock:c7") == 0
    nxt, history = await mem.acquire_and_load("c7", wait_seconds=0.2, hold_seconds=10)
    assert nxt is not None and history == a_turn(1)
    # The script survives a flushed script cache (as after a Redis restart).
    await redis.script_flush()
    await mem.append_turn("c7", a_turn(2), unlock=nxt)
    assert await mem.load("c7") == a_turn(1) + a_turn(2)
    assert await redis.exists(f"{redis_prefix}lock:c7") == 0


async def test_saving_never_releases_a_lock_another_turn_took_over(
    redis: Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix)
    slow = await mem.acquire_lock("c8", wait_seconds=1, hold_seconds=0.2)
    assert slow is not None
    await asyncio.sleep(0.3)  # the slow turn's lock expired...
    other = await mem.acquire_lock("c8", wait_seconds=1, hold_seconds=10)  # ...and was taken
    assert other is not None
    await mem.append_turn("c8", a_turn(1), unlock=slow)
    assert await mem.load("c8") == a_turn(1)  # the turn is still saved
    assert await redis.get(f"{redis_prefix}lock:c8") == other.local.token  # other keeps its lock
    assert "could not release conversation lock" in caplog.text
    await mem.release_lock(other)


async def test_new_pool_connections_do_not_reread_package_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A burst of calls grows the pool; each new connection must not parse package metadata."""
    import importlib.metadata

    reads: list[str] = []
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: reads.append(name) or real(name))
    client = create_redis(REDIS_URL, timeout_seconds=2, max_connections=40)
    try:
        await asyncio.gather(*(client.blpop([f"aigw-test-none-{i}"], timeout=0.05) for i in range(30)))
        assert (
            len(client.connection_pool._in_use_connections)
            + len(client.connection_pool._available_connections)
            >= 30
        )
        assert await client.client_getname() is None  # and the connections work
    finally:
        await client.aclose()
    assert reads == []


async def test_barge_in_rewrites_a_saved_answer_to_what_was_heard(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix, ttl_seconds=60, max_turns=5)
    await mem.append_turn("b1", a_turn(1))
    await mem.append_turn("b1", a_turn(2))
    await mem.record_interrupted("b1", "where is order 2?", "Order 2 [interrupted by the caller]")
    loaded = await mem.load("b1")
    # The earlier turn is untouched; the tool call and its result stay; only the answer changes.
    assert loaded[:7] == a_turn(1) + a_turn(2)[:3]
    assert len(loaded) == 8
    assert loaded[-1].content == "Order 2 [interrupted by the caller]"
    assert loaded[-1].additional_kwargs == {"interrupted": True}


async def test_barge_in_before_the_turn_was_saved_appends_it(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix, ttl_seconds=60, max_turns=5)
    await mem.append_turn("b2", a_turn(1))
    await mem.record_interrupted("b2", "and order 3?", "[interrupted by the caller]")
    loaded = await mem.load("b2")
    assert loaded[:4] == a_turn(1)
    assert [(m.type, m.content) for m in loaded[4:]] == [
        ("human", "and order 3?"),
        ("ai", "[interrupted by the caller]"),
    ]
    assert loaded[-1].additional_kwargs == {"interrupted": True}
    assert 0 < await redis.ttl(mem.key("b2")) <= 60


async def test_barge_in_rewrite_waits_for_the_turn_still_saving(redis: Redis, redis_prefix: str) -> None:
    mem = ConversationMemory(redis, prefix=redis_prefix, ttl_seconds=60, max_turns=5)
    lock = await mem.acquire_lock("b3", wait_seconds=1, hold_seconds=10)
    assert lock is not None
    rewrite = asyncio.create_task(mem.record_interrupted("b3", "where is order 1?", "Order 1 [cut]"))
    await asyncio.sleep(0.2)
    assert not rewrite.done()
    await mem.append_turn("b3", a_turn(1), unlock=lock)
    await asyncio.wait_for(rewrite, 2)
    loaded = await mem.load("b3")
    assert len(loaded) == 4 and loaded[-1].content == "Order 1 [cut]"
