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

from sqlalchemy import and_, insert, or_, select, update
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
        linger_seconds: how long the worker lets a batch fill once an entry arrives,
            in s (bigger batches cost the database, and this process, less per turn;
            `flush()` and `stop()` still wait for everything queued).
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
        linger_seconds: float = 0.05,
    ) -> None:
        """Create the queue; call `start()` to run the worker."""
        self._sessions = session_factory
        self._metrics = metrics
        self._queue: asyncio.Queue[CallLogEntry] = asyncio.Queue(maxsize=max_queue)
        self._batch = batch_size
        self._attempts = attempts
        self._max_backoff = max_backoff_seconds
        self._linger = linger_seconds
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
            try:
                if self._linger > 0 and self._queue.qsize() < self._batch - 1:
                    await asyncio.sleep(self._linger)
                while len(batch) < self._batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
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

    async def _find_calls(
        self, session: AsyncSession, entries: list[CallLogEntry]
    ) -> dict[tuple[str, str], int]:
        """Ids of existing calls for `entries` (one SELECT; the newest call per key)."""
        by_channel: dict[str, list[str]] = {}
        by_uniqueid: dict[str, list[str]] = {}
        for entry in entries:
            if entry.channel_id:
                by_channel.setdefault(entry.source, []).append(entry.channel_id)
            else:
                by_uniqueid.setdefault(entry.source, []).append(entry.uniqueid)
        conditions = [
            and_(Call.source == src, Call.channel_id.in_(ids)) for src, ids in by_channel.items()
        ] + [and_(Call.source == src, Call.uniqueid.in_(ids)) for src, ids in by_uniqueid.items()]
        wanted = {_call_key(e) for e in entries}
        found: dict[tuple[str, str], int] = {}
        rows = await session.execute(
            select(Call.id, Call.source, Call.channel_id, Call.uniqueid)
            .where(or_(*conditions))
            .order_by(Call.id)
        )
        for call_id, source, channel_id, uniqueid in rows:
            for key in ((source, channel_id), (source, uniqueid)):
                if key in wanted:
                    found[key] = call_id  # ascending ids: the newest call wins
        return found

    async def _write(self, batch: list[CallLogEntry]) -> None:
        """Write a batch in one transaction, with a fixed number of statements.

        At most: one SELECT for the calls not in the id cache, one bulk INSERT of the
        calls that do not exist yet (with their final status), one bulk UPDATE of the
        calls that did, and one bulk INSERT of the turns. Turns are inserted by
        `call_id`, so a call's earlier turns are never loaded.
        """
        last: dict[tuple[str, str], CallLogEntry] = {}
        first: dict[tuple[str, str], CallLogEntry] = {}
        for entry in batch:
            key = _call_key(entry)
            first.setdefault(key, entry)
            last[key] = entry  # entries are in turn order: the latest one wins
        async with self._sessions() as session, session.begin():
            found = {key: self._call_ids[key] for key in first if key in self._call_ids}
            missing = [key for key in first if key not in found]
            if missing:
                found.update(await self._find_calls(session, [first[k] for k in missing]))
            new_keys = [key for key in first if key not in found]
            if new_keys:
                # One multi-row INSERT … RETURNING; rows come back in no set order, so
                # they are matched to their keys by what they hold.
                created_rows = await session.execute(
                    insert(Call).returning(Call.id, Call.source, Call.channel_id, Call.uniqueid),
                    [_call_row(first[k], last[k]) for k in new_keys],
                )
                for call_id, source, channel_id, uniqueid in created_rows:
                    found[(source, channel_id or uniqueid)] = call_id
            created = set(new_keys)
            updates = [
                {"id": found[key], **_call_status(entry)} for key, entry in last.items() if key not in created
            ]
            if updates:
                await session.execute(update(Call), updates)
            degraded = [found[_call_key(e)] for e in batch if e.outcome.degraded]
            if degraded:
                await session.execute(update(Call).where(Call.id.in_(degraded)).values(degraded=True))
            await session.execute(insert(Turn), [_turn_row(found[_call_key(e)], e) for e in batch])
        self._call_ids.update(found)
        while len(self._call_ids) > CALL_ID_CACHE_SIZE:
            self._call_ids.popitem(last=False)


def _call_key(entry: CallLogEntry) -> tuple[str, str]:
    return (entry.source, entry.channel_id or entry.uniqueid)


def _call_status(entry: CallLogEntry) -> dict[str, Any]:
    outcome = entry.outcome
    return {
        "prompt_name": outcome.prompt_name,
        "model": outcome.model,
        "status": outcome.status.value,
        "ended_at": entry.ended_at,
    }


def _call_row(first: CallLogEntry, last: CallLogEntry) -> dict[str, Any]:
    return {
        "source": first.source,
        "channel_id": first.channel_id,
        "uniqueid": first.uniqueid,
        "caller_id_number": first.caller_id_number,
        "caller_id_name": first.caller_id_name,
        "started_at": first.started_at,
        "degraded": False,
        **_call_status(last),
    }


def _turn_row(call_id: int, entry: CallLogEntry) -> dict[str, Any]:
    outcome = entry.outcome
    return {
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
        "details": outcome.details,
        "created_at": entry.ended_at,
    }
