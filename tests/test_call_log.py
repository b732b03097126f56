"""The call-log writer against the real database (SQLite, or PostgreSQL with TEST_DATABASE_URL):
what lands in `calls`/`turns`, and how many statements a batch costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.database import create_session_factory
from app.models import Call, Turn
from app.services.agent.call_log import CallLogEntry, CallLogWriter
from app.services.domain import TurnOutcome, TurnStatus

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def entry(
    channel_id: str | None,
    uniqueid: str,
    n: int,
    status: TurnStatus = TurnStatus.OK,
    *,
    degraded: bool = False,
    source: str = "call",
) -> CallLogEntry:
    outcome = TurnOutcome(
        f"answer {n}",
        status,
        None if status is TurnStatus.OK else "llm_error: HTTP 500",
        model="openai:gpt-4o-mini",
        prompt_name="support",
        degraded=degraded,
        tool_calls=[{"name": "check_order", "args": {"order_id": str(n)}}],
    )
    at = T0 + timedelta(seconds=n)
    return CallLogEntry(source, uniqueid, channel_id, "5551234", "Ann", f"question {n}", outcome, at, at)


async def write(sessions: async_sessionmaker[AsyncSession], entries: list[CallLogEntry]) -> CallLogWriter:
    writer = CallLogWriter(sessions)
    for e in entries:  # queued before the worker starts: one batch
        assert writer.submit(e)
    writer.start()
    await writer.flush()
    await writer.stop()
    assert (writer.written, writer.dropped) == (len(entries), 0)
    return writer


async def calls_and_turns(sessions: async_sessionmaker[AsyncSession]) -> list[Call]:
    async with sessions() as session:
        return list((await session.scalars(select(Call).order_by(Call.id))).all())


async def test_one_batch_files_turns_under_their_calls(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    await write(
        sessions,
        [
            entry("1700.1", "conv-a", 1),
            entry("1700.2", "conv-b", 2, degraded=True),
            entry("1700.1", "conv-a", 3, TurnStatus.ERROR),
            entry(None, "chat-c", 4, source="chat"),
        ],
    )
    calls = await calls_and_turns(sessions)
    assert [(c.source, c.channel_id, c.uniqueid) for c in calls] == [
        ("call", "1700.1", "conv-a"),
        ("call", "1700.2", "conv-b"),
        ("chat", None, "chat-c"),
    ]
    a, b, c = calls
    # The call keeps its first turn's start and its last turn's status and end.
    assert a.started_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=1)
    assert a.ended_at is not None and a.ended_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=3)
    assert (a.status, a.prompt_name, a.degraded) == ("ERROR", "support", False)
    assert [(t.user_input, t.response, t.status) for t in a.turns] == [
        ("question 1", "answer 1", "OK"),
        ("question 3", "answer 3", "ERROR"),
    ]
    assert a.turns[1].error == "llm_error: HTTP 500"
    assert a.turns[0].tool_calls == [{"name": "check_order", "args": {"order_id": "1"}}]
    assert (b.degraded, b.turns[0].degraded) == (True, True)
    assert [t.user_input for t in c.turns] == ["question 4"]


async def test_a_new_writer_finds_calls_written_before_a_restart(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    await write(sessions, [entry("1700.1", "conv-a", 1), entry(None, "chat-c", 2, source="chat")])
    # A fresh writer (empty id cache), as after a gateway restart.
    await write(sessions, [entry("1700.1", "conv-a", 3), entry(None, "chat-c", 4, source="chat")])
    calls = await calls_and_turns(sessions)
    assert len(calls) == 2
    assert [[t.user_input for t in c.turns] for c in calls] == [
        ["question 1", "question 3"],
        ["question 2", "question 4"],
    ]
    async with sessions() as session:
        assert len((await session.scalars(select(Turn))).all()) == 4


async def test_a_batch_costs_a_fixed_number_of_statements(db_engine: AsyncEngine) -> None:
    """50 turns of 50 new calls: one lookup, one INSERT of calls, one INSERT of turns; a
    second batch for the same calls (ids cached): one UPDATE of calls and one INSERT."""
    sessions = create_session_factory(db_engine)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(db_engine.sync_engine, "before_cursor_execute", count)
    writer = CallLogWriter(sessions)
    try:
        for i in range(50):  # queued before the worker starts: one batch
            writer.submit(entry(f"1800.{i}", f"conv-{i}", i))
        writer.start()
        await writer.flush()
        first = [s for s in statements if s in ("SELECT", "INSERT", "UPDATE")]
        statements.clear()
        await writer.stop()  # the id cache stays; a stopped writer queues, then starts again
        for i in range(50):
            writer.submit(entry(f"1800.{i}", f"conv-{i}", 100 + i))
        writer.start()
        await writer.flush()
        second = [s for s in statements if s in ("SELECT", "INSERT", "UPDATE")]
        await writer.stop()
    finally:
        event.remove(db_engine.sync_engine, "before_cursor_execute", count)
    assert first == ["SELECT", "INSERT", "INSERT"]
    assert second == ["UPDATE", "INSERT"]
    calls = await calls_and_turns(sessions)
    assert len(calls) == 50 and all(len(c.turns) == 2 for c in calls)
