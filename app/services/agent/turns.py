"""One agent turn, end to end, shared by phone calls and the admin chat.

`run_turn` never raises: every failure becomes a `TurnOutcome` with an
`AI_STATUS`, a short `AI_ERROR` without secrets, and the prompt's fallback text
as `AI_RESPONSE`, so the channel can always continue in the dialplan.

Order of work: a concurrency slot (`MAX_CONCURRENT_CALLS`, else BUSY), the
prompt (cached), the model, then under the turn deadline
(`AI_TURN_TIMEOUT_SECONDS`): the conversation lock, history, the agent, and the
history write. Redis failures degrade the turn (no history) instead of failing it.

`stream_turn` runs the same turn in its own task and yields the answer as it is
produced: `TextDelta` per model chunk, `SentenceReady` per whole sentence (checked
for leaks, for text-to-speech), then one `TurnFinished`. `run_turn` is the same
turn without the events. When the consumer is cancelled with
`HANGUP_CANCEL_MSG` (the caller hung up), the turn's task is cancelled too: the
model's HTTP request is closed, no tool call starts afterwards, and the call log
files the turn as `HANGUP`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from langchain_core.messages import BaseMessage
from redis.asyncio.lock import Lock

from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.text import clean_text
from app.services.agent.call_log import CallLogEntry, CallLogWriter
from app.services.agent.catalog import Catalog, CatalogUnavailable, PromptNotFound
from app.services.agent.guard import find_leak
from app.services.agent.memory import ConversationMemory, MemoryUnavailable
from app.services.agent.runner import AgentResult, AiService
from app.services.agent.sentences import SentenceSplitter
from app.services.domain import (
    HANGUP_CANCEL_MSG,
    CallContext,
    PromptSpec,
    SentenceReady,
    TextDelta,
    TurnEvent,
    TurnFinished,
    TurnOutcome,
    TurnRequest,
    TurnStatus,
)
from app.services.providers.llm import ModelSpec, ProviderNotConfigured, UnknownProvider

logger = logging.getLogger(__name__)

#: Receives a streamed turn's events (`TextDelta`, `SentenceReady`); None when nobody listens.
Emit = Callable[[TurnEvent], None]

#: A turn that gets a concurrency slot with less time than this (s) left answers BUSY.
MIN_TURN_SECONDS = 0.5
NO_INPUT_TEXT = "Sorry, I didn't catch that. Could you say it again?"


#: Ends an answer the caller cut off (barge-in) in memory, so the model knows the rest went unheard.
INTERRUPTED_MARKER = "[interrupted by the caller]"


def describe_llm_error(exc: BaseException) -> str:
    """A short, secret-free reason for a failed model call (`AI_ERROR`)."""
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    if isinstance(status, int):
        return f"llm_error: HTTP {status}"
    return f"llm_error: {type(exc).__name__}"


def _left(deadline: float) -> float:
    """Seconds until `deadline` (a `time.monotonic()` value); at least 0."""
    return max(0.0, deadline - time.monotonic())


class TurnService:
    """Runs turns with a deadline, a concurrency bound, memory and the call log."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        ai: AiService,
        memory: ConversationMemory,
        call_log: CallLogWriter,
        metrics: Metrics,
    ) -> None:
        """Wire the collaborators; `MAX_CONCURRENT_CALLS` sizes the turn semaphore."""
        self._settings = settings
        self._catalog = catalog
        self._ai = ai
        self._memory = memory
        self._call_log = call_log
        self._metrics = metrics
        self._slots = asyncio.Semaphore(settings.max_concurrent_calls)
        self._saving: set[asyncio.Task[None]] = set()

    async def run_turn(self, request: TurnRequest) -> TurnOutcome:
        """Run one turn and log it. Never raises (except on task cancellation).

        The same turn as `stream_turn`, consumed in the caller's task (no extra task,
        no events), which is what text mode and the admin chat need.
        """
        return await self._turn(request, None)

    async def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run one turn in its own task, yielding its events as they happen.

        Yields:
            `TextDelta` and `SentenceReady` events in order, then one `TurnFinished`.
            Cancelling the consumer cancels the turn (with the consumer's cancel
            message, so a hang-up is filed as `HANGUP`).
        """
        queue: asyncio.Queue[TurnEvent] = asyncio.Queue()

        async def produce() -> None:
            queue.put_nowait(TurnFinished(await self._turn(request, queue.put_nowait)))

        task = asyncio.create_task(produce(), name=f"turn-{request.context.uniqueid}")
        try:
            while True:
                event = await queue.get()
                yield event
                if isinstance(event, TurnFinished):
                    return
        except asyncio.CancelledError as exc:
            task.cancel(*exc.args)
            raise
        finally:
            if not task.done():
                task.cancel()
            await asyncio.wait({task})

    async def _turn(self, request: TurnRequest, emit: Emit | None) -> TurnOutcome:
        started_at = datetime.now(UTC)
        start = time.perf_counter()
        budget = request.deadline_seconds or self._settings.ai_turn_timeout_seconds
        deadline = time.monotonic() + budget
        user_input = clean_text(request.user_input, self._settings.max_user_input_chars)
        ctx = request.context
        outcome: TurnOutcome | None = None
        busy = TurnOutcome(
            self._settings.default_fallback_text, TurnStatus.BUSY, "busy: too many concurrent calls"
        )
        try:
            async with asyncio.timeout(budget):
                await self._slots.acquire()
        except TimeoutError:
            outcome = busy
        else:
            if _left(deadline) < min(MIN_TURN_SECONDS, budget / 2):
                # A slot freed up too late to run a turn in what is left of the deadline.
                self._slots.release()
                outcome = busy
        if outcome is None:
            self._metrics.active_calls.inc()
            try:
                outcome = await self._run(request, user_input, deadline, emit)
            except asyncio.CancelledError as exc:
                if exc.args == (HANGUP_CANCEL_MSG,):
                    logger.info(
                        "uniqueid=%s channel=%s caller hung up: turn cancelled", ctx.uniqueid, ctx.channel_id
                    )
                    hung_up = TurnOutcome("", TurnStatus.HANGUP, "caller_hung_up", model=request.model)
                    hung_up.latency_ms = round((time.perf_counter() - start) * 1000.0, 1)
                    if not request.defer_log:
                        self.log_turn(request.source, ctx, user_input, hung_up, started_at)
                raise
            except Exception:
                logger.exception("uniqueid=%s turn failed unexpectedly", ctx.uniqueid)
                outcome = TurnOutcome(
                    self._settings.default_fallback_text, TurnStatus.ERROR, "internal_error"
                )
            finally:
                self._metrics.active_calls.dec()
                self._slots.release()
        outcome.latency_ms = round((time.perf_counter() - start) * 1000.0, 1)
        model_label = outcome.model or "none"
        self._metrics.turns.labels(outcome.status.value, model_label).inc()
        self._metrics.turn_latency.labels(model_label).observe(outcome.latency_ms / 1000.0)
        if outcome.llm_latency_ms:
            self._metrics.llm_latency.labels(model_label).observe(outcome.llm_latency_ms / 1000.0)
        logger.info(
            "uniqueid=%s channel=%s status=%s error=%s latency_ms=%.1f llm_ms=%.1f tools=%d",
            ctx.uniqueid,
            ctx.channel_id,
            outcome.status.value,
            outcome.error,
            outcome.latency_ms,
            outcome.llm_latency_ms,
            len(outcome.tool_calls),
        )
        if not request.defer_log:
            self.log_turn(request.source, ctx, user_input, outcome, started_at)
        return outcome

    def log_turn(
        self,
        source: str,
        context: CallContext,
        user_input: str,
        outcome: TurnOutcome,
        started_at: datetime | None = None,
    ) -> None:
        """File a turn in the call log (queued; never waits on the database).

        Also used for channels answered without a turn (recovered after a restart,
        or refused while shutting down), so the log accounts for every channel.
        """
        self._call_log.submit(
            CallLogEntry(
                source=source,
                uniqueid=context.uniqueid,
                channel_id=context.channel_id,
                caller_id_number=context.caller_id_number,
                caller_id_name=context.caller_id_name,
                user_input=user_input,
                outcome=outcome,
                started_at=started_at or datetime.now(UTC),
                ended_at=datetime.now(UTC),
            )
        )

    def _fallback(self, prompt: PromptSpec | None) -> str:
        if prompt is not None and prompt.fallback_text:
            return prompt.fallback_text
        return self._settings.default_fallback_text

    async def _run(
        self, request: TurnRequest, user_input: str, deadline: float, emit: Emit | None
    ) -> TurnOutcome:
        settings = self._settings
        try:
            prompt = await self._catalog.get_prompt(request.prompt_name)
        except PromptNotFound:
            return TurnOutcome(
                await self._default_fallback(),
                TurnStatus.ERROR,
                f"unknown_prompt: {request.prompt_name}"[:120],
                prompt_name=request.prompt_name,
            )
        except CatalogUnavailable:
            return TurnOutcome(settings.default_fallback_text, TurnStatus.ERROR, "database_unavailable")
        fallback = self._fallback(prompt)
        if not user_input:
            return TurnOutcome(NO_INPUT_TEXT, TurnStatus.NO_INPUT, "no_input", prompt_name=prompt.name)
        try:
            models = [self._ai.models.resolve(request.model or settings.default_ai_model)]
            if settings.fallback_ai_model:
                fallback_model = self._ai.models.resolve(settings.fallback_ai_model)
                if fallback_model != models[0]:
                    models.append(fallback_model)
        except UnknownProvider as exc:
            return TurnOutcome(
                fallback, TurnStatus.ERROR, f"unknown_model: {exc}"[:120], prompt_name=prompt.name
            )
        outcome = TurnOutcome(fallback, TurnStatus.ERROR, None, model=str(models[0]), prompt_name=prompt.name)
        uid = request.context.uniqueid
        # Lock + history: bounded by the lock wait (what is left of the deadline) and the
        # Redis command timeouts. Then each stage gets its own timeout from what is left,
        # so a library that swallows one cancellation cannot disable the deadline.
        lock: Lock | None = None
        result = None
        try:
            try:
                lock, history = await self._memory.acquire_and_load(
                    uid, wait_seconds=_left(deadline), hold_seconds=settings.ai_turn_timeout_seconds + 5
                )
                outcome.degraded = lock is None
            except MemoryUnavailable as exc:
                logger.warning("uniqueid=%s memory unavailable (%s): no history", uid, exc)
                history, outcome.degraded = [], True
            async with asyncio.timeout(_left(deadline)):
                result = await self._run_models(
                    models, prompt, history, user_input, request, deadline, outcome, emit
                )
        except TimeoutError:
            outcome.status, outcome.error, outcome.response = TurnStatus.TIMEOUT, "turn_timeout", fallback
        finally:
            if result is None:
                await self._memory.release_lock(lock)
        if result is not None:
            # The caller is waiting for the answer, not for the history write: save it
            # and release the lock in the background. The next turn of this
            # conversation waits for the lock, so history stays in order.
            task = asyncio.create_task(self._save_turn(uid, result, lock))
            self._saving.add(task)
            task.add_done_callback(self._saving.discard)
        return outcome

    async def _save_turn(self, uid: str, result: AgentResult, lock: Lock | None) -> None:
        try:
            await self._memory.append_turn(uid, result.new_messages, unlock=lock)
        except MemoryUnavailable as exc:
            logger.warning("uniqueid=%s memory unavailable (%s): turn not saved", uid, exc)
            await self._memory.release_lock(lock)

    async def record_interruption(self, request: TurnRequest, heard: list[str]) -> None:
        """After a barge-in, memory keeps `heard` (sentences, from the media marks) + `INTERRUPTED_MARKER`.

        The AI message carries ``additional_kwargs={"interrupted": True}``. Never raises.
        """
        uid = request.context.uniqueid
        user_input = clean_text(request.user_input, self._settings.max_user_input_chars)
        answer = " ".join([*(s.strip() for s in heard if s.strip()), INTERRUPTED_MARKER])
        wait = self._settings.ai_turn_timeout_seconds
        try:
            await self._memory.record_interrupted(uid, user_input, answer, wait_seconds=wait)
        except MemoryUnavailable as exc:
            logger.warning("uniqueid=%s memory unavailable (%s): barge-in not recorded", uid, exc)
            return
        logger.info(
            "uniqueid=%s channel=%s barge-in: %d sentence(s) heard",
            uid,
            request.context.channel_id,
            len(heard),
        )

    async def aclose(self, timeout_seconds: float = 5.0) -> None:
        """Wait (up to `timeout_seconds`, s) for history writes still in progress."""
        if self._saving:
            await asyncio.wait(set(self._saving), timeout=timeout_seconds)

    async def _run_models(
        self,
        models: list[ModelSpec],
        prompt: PromptSpec,
        history: list[BaseMessage],
        user_input: str,
        request: TurnRequest,
        deadline: float,
        outcome: TurnOutcome,
        emit: Emit | None,
    ) -> AgentResult | None:
        """Try the primary model, then `FALLBACK_AI_MODEL`; fill `outcome`. None on failure."""
        for spec in models:
            outcome.model = str(spec)
            try:
                result = await self._stream_model(prompt, spec, history, user_input, request, deadline, emit)
            except ProviderNotConfigured as exc:
                logger.warning("model %s not configured: %s", spec, exc)
                outcome.error = "llm_not_configured"
                continue
            except TimeoutError:
                raise
            except Exception as exc:
                outcome.error = describe_llm_error(exc)
                logger.warning(
                    "uniqueid=%s model %s failed: %s", request.context.uniqueid, spec, outcome.error
                )
                continue
            if not result.text:
                outcome.error = "empty_response"
                outcome.tool_calls = result.tool_calls
                continue
            outcome.response = result.text
            outcome.status = TurnStatus.OK
            outcome.error = None
            outcome.tool_calls = result.tool_calls
            outcome.token_usage = result.token_usage
            outcome.llm_latency_ms = result.llm_latency_ms
            return result
        return None

    async def _stream_model(
        self,
        prompt: PromptSpec,
        spec: ModelSpec,
        history: list[BaseMessage],
        user_input: str,
        request: TurnRequest,
        deadline: float,
        emit: Emit | None,
    ) -> AgentResult:
        """One model's run; text deltas and leak-checked sentences go to `emit`."""
        splitter = SentenceSplitter()
        leaked = False
        async for item in self._ai.stream(
            prompt,
            spec,
            history,
            user_input,
            request.context,
            deadline=deadline,
            extra_tools=request.extra_tools,
            token_stream=emit is not None,
        ):
            if isinstance(item, AgentResult):
                if emit is not None and not leaked and not item.withheld:
                    for sentence in splitter.flush():
                        emit(SentenceReady(sentence))
                return item
            if emit is None:
                continue
            emit(TextDelta(item))
            for sentence in splitter.feed(item):
                leaked = leaked or find_leak(sentence, prompt) is not None
                if not leaked:
                    emit(SentenceReady(sentence))
        raise RuntimeError("agent stream ended without a result")  # pragma: no cover

    async def _default_fallback(self) -> str:
        try:
            return self._fallback(await self._catalog.get_prompt(None))
        except (PromptNotFound, CatalogUnavailable):
            return self._settings.default_fallback_text
