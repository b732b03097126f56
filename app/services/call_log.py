"""Asynchronous call-log writes: a bounded queue, batched transactions, retries.

Turns never wait on the database: `submit()` only enqueues. One worker task writes
batches in a transaction each, retrying with backoff for as long as the database is
unreachable. A record that cannot be queued (queue full), is rejected by the
database `attempts` times, or is still queued at shutdown is counted in `dropped`
and the `aigw_call_log_dropped` metric, and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.metrics import Metrics
from app.models import Call, Turn
from app.services.domain import TurnOutcome

logger = logging.getLogger(__name__)

#: (source, channel id or UNIQUEID) -> calls.id kept in memory, so a turn costs no lookup.
CALL_ID_CACHE_SIZE = 10_000

# The database did not answer (as opposed to rejecting the write): worth waiting for.
_UNREACHABLE = (OperationalError, InterfaceError, OSError, TimeoutError)


@dataclass(slots=True)
class CallLogEntry:
    """One finished turn with the call facts needed to file it."""

    source: str
    uniqueid: str
    channel_id: str | None
    caller_id_number: str | None
    caller_id_name: str | None
    user_input: str
    outcome: TurnOutcome
    started_at: datetime
    ended_at: datetime


class CallLogWriter:
    """Writes `CallLogEntry` records to the `calls`/`turns` tables in the background.

    Args:
        max_queue: entries held while the database is slow or down.
        batch_size: entries written per transaction at most.
        attempts: tries for a batch the database rejects (not for an unreachable
            database, which is retried until it answers).
        max_backoff_seconds: longest wait between tries, in s.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        metrics: Metrics | None = None,
        max_queue: int = 10_000,
        batch_size: int = 100,
        attempts: int = 6,
        max_backoff_seconds: float = 5.0,
    ) -> None:
        """Create the queue; call `start()` to run the worker."""
        self._sessions = session_factory
        self._metrics = metrics
        self._queue: asyncio.Queue[CallLogEntry] = asyncio.Queue(maxsize=max_queue)
        self._batch = batch_size
        self._attempts = attempts
        self._max_backoff = max_backoff_seconds
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0
        self._call_ids: OrderedDict[tuple[str, str], int] = OrderedDict()

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-log-writer")

    def submit(self, entry: CallLogEntry) -> bool:
        """Queue one entry without waiting. False (and counted as dropped) when full."""
        try:
            self._queue.put_nowait(entry)
            return True
        except asyncio.QueueFull:
            self._drop(1, "queue full")
            return False

    async def flush(self) -> None:
        """Wait until every queued entry is written or dropped."""
        await self._queue.join()

    async def stop(self, timeout_seconds: float = 10.0) -> None:
        """Drain the queue (up to `timeout_seconds`, in s), then stop the worker."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_seconds)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self._queue.empty():
            self._drop(self._queue.qsize(), "shutdown with entries pending")

    @property
    def pending(self) -> int:
        """Entries waiting to be written."""
        return self._queue.qsize()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        if self._metrics is not None:
            self._metrics.call_log_dropped.inc(count)
        logger.error("call log: %d record(s) not written (%s); %d dropped in all", count, why, self.dropped)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write_with_retries(batch)
            except asyncio.CancelledError:
                self._drop(len(batch), "writer stopped")
                for _ in batch:
                    self._queue.task_done()
                raise
            for _ in batch:
                self._queue.task_done()

    async def _write_with_retries(self, batch: list[CallLogEntry]) -> None:
        """Write one batch, retrying while the database is unreachable.

        The bounded queue is what limits memory meanwhile. A batch the database
        rejects for another reason is dropped after `attempts` tries.
        """
        failures = 0
        while True:
            try:
                await self._write(batch)
                self.written += len(batch)
                if failures:
                    logger.info("call log: database back; wrote %d delayed record(s)", len(batch))
                return
            except _UNREACHABLE as exc:
                failures += 1
                if failures == 1:
                    logger.warning("call log: database unreachable (%s); retrying", type(exc).__name__)
            except SQLAlchemyError as exc:
                failures += 1
                if failures >= self._attempts:
                    self._drop(len(batch), type(exc).__name__)
                    return
            await asyncio.sleep(min(self._max_backoff, 0.1 * 2 ** min(failures, 8)))

    async def _write(self, batch: list[CallLogEntry]) -> None:
        """Write a batch in one transaction: one bulk UPDATE of calls, one bulk INSERT of turns.

        Each entry's call is found (ids cached) or created first. Turns are inserted by
        `call_id`, so a call's earlier turns are never loaded.
        """
        found: dict[tuple[str, str], int] = {}
        call_updates: dict[int, dict[str, Any]] = {}
        degraded_calls: set[int] = set()
        turn_rows: list[dict[str, Any]] = []
        async with self._sessions() as session, session.begin():
            for entry in batch:
                key = (entry.source, entry.channel_id or entry.uniqueid)
                call_id = found.get(key) or self._call_ids.get(key)
                if call_id is None:
                    stmt = select(Call.id).where(Call.source == entry.source)
                    if entry.channel_id:
                        stmt = stmt.where(Call.channel_id == entry.channel_id)
                    else:
                        stmt = stmt.where(Call.uniqueid == entry.uniqueid)
                    call_id = await session.scalar(stmt.order_by(Call.id.desc()).limit(1))
                if call_id is None:
                    call = Call(
                        source=entry.source,
                        channel_id=entry.channel_id,
                        uniqueid=entry.uniqueid,
                        caller_id_number=entry.caller_id_number,
                        caller_id_name=entry.caller_id_name,
                        started_at=entry.started_at,
                    )
                    session.add(call)
                    await session.flush()
                    call_id = call.id
                found[key] = call_id
                outcome = entry.outcome
                # The latest entry of a call wins (entries are in turn order).
                call_updates[call_id] = {
                    "id": call_id,
                    "prompt_name": outcome.prompt_name,
                    "model": outcome.model,
                    "status": outcome.status.value,
                    "ended_at": entry.ended_at,
                }
                if outcome.degraded:
                    degraded_calls.add(call_id)
                turn_rows.append(
                    {
                        "call_id": call_id,
                        "user_input": entry.user_input,
                        "response": outcome.response,
                        "status": outcome.status.value,
                        "error": outcome.error,
                        "model": outcome.model,
                        "tool_calls": outcome.tool_calls,
                        "latency_ms": round(outcome.latency_ms),
                        "llm_latency_ms": round(outcome.llm_latency_ms),
                        "token_usage": outcome.token_usage,
                        "degraded": outcome.degraded,
                        "created_at": entry.ended_at,
                    }
                )
            await session.execute(update(Call), list(call_updates.values()))
            if degraded_calls:
                await session.execute(update(Call).where(Call.id.in_(degraded_calls)).values(degraded=True))
            await session.execute(insert(Turn), turn_rows)
        self._call_ids.update(found)
        while len(self._call_ids) > CALL_ID_CACHE_SIZE:
            self._call_ids.popitem(last=False)
