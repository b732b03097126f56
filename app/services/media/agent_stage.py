"""Our LangChain agent as pipecat's LLM stage.

pipecat's user aggregator decides when the caller's turn has ended and sends an
`LLMContextFrame`; this stage takes the caller's words from it (the last user message)
and runs one streamed turn through the same `TurnRunner` as text mode (same prompt,
tools, Redis memory by UNIQUEID, call log, deadline). Each `SentenceReady` goes on
downstream at once as an `LLMTextFrame`, so text-to-speech starts on the first sentence.

A barge-in (`InterruptionFrame`) cancels the turn in flight: the model's HTTP request is
closed and no tool call starts afterwards. pipecat's own conversation context is not used
for memory: the agent's memory is in Redis, like text mode. After a barge-in the
conversation rewrites that memory to what the caller heard (`TurnRunner.record_interruption`);
the next turn waits for it (`AgentStage.barrier`). With barge-in off, `AgentTalkingMute`
keeps the caller muted while the agent thinks or speaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.user_mute.always_user_mute_strategy import AlwaysUserMuteStrategy

from app.services.domain import SentenceReady, TurnFinished, TurnOutcome, TurnRequest, TurnRunner
from app.services.media.playout import PlayoutTracker

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class AgentTurn:
    """One voice turn as the agent stage saw it.

    Attributes:
        user_text: what the caller said (the transcript) or pressed (``[caller pressed 1]``).
        sentences: the sentences sent on to text-to-speech, in order.
        outcome: the turn's outcome; None while running or when interrupted.
        interrupted: True when a barge-in cancelled it.
        started: `time.monotonic()` when the turn began (s).
        first_sentence_at: `time.monotonic()` of the first sentence (s), or None.
        request: the `TurnRequest` it ran with (None until it started).
        heard_from: how many sentences the caller had heard (`PlayoutTracker.heard`)
            when the turn began; the turn's own heard sentences follow.
        cut_off: a barge-in cut its answer short (memory keeps only what was heard).
    """

    user_text: str
    sentences: list[str] = field(default_factory=list)
    outcome: TurnOutcome | None = None
    interrupted: bool = False
    started: float = 0.0
    first_sentence_at: float | None = None
    request: TurnRequest | None = None
    heard_from: int = 0
    responses_before: int = 0
    cut_off: bool = False


def last_user_text(frame: LLMContextFrame) -> str:
    """The text of the last user message in a pipecat context ('' when there is none)."""
    for message in reversed(frame.context.get_messages()):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content: Any = message.get("content")
        if isinstance(content, str):
            return content.strip()
        if isinstance(content, list):
            parts = [p.get("text", "") for p in content if isinstance(p, dict)]
            return " ".join(x for x in parts if x).strip()
    return ""


class AgentStage(FrameProcessor):
    """Runs a streamed agent turn for each end of the caller's turn.

    Args:
        turns: the turn runner (`TurnService`).
        build_request: makes the `TurnRequest` for a caller text (call context, prompt,
            model, per-call tools such as ``end_call``).
        on_turn_done: called with each finished or interrupted `AgentTurn`.
        tracker: what the caller heard (marks), to tell each turn's heard sentences.

    Attributes:
        current: the latest turn (running or done), None before the first.
        barrier: work the next turn waits for before it reads memory (the memory
            rewrite after a barge-in).
    """

    def __init__(
        self,
        turns: TurnRunner,
        build_request: Callable[[str], Any],
        on_turn_done: Callable[[AgentTurn], Awaitable[None]],
        tracker: PlayoutTracker | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._turns = turns
        self._build_request = build_request
        self._on_turn_done = on_turn_done
        self._task: asyncio.Task[None] | None = None
        self._tracker = tracker
        self.current: AgentTurn | None = None
        self.barrier: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        """True while a turn is running."""
        return self._task is not None and not self._task.done()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Start a turn on an `LLMContextFrame`; cancel it on an `InterruptionFrame`."""
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            if not frame.speculation:
                text = last_user_text(frame)
                if text:
                    await self.start_turn(text)
            return
        if isinstance(frame, InterruptionFrame):
            await self.interrupt()
        await self.push_frame(frame, direction)

    async def start_turn(self, text: str) -> None:
        """Run a turn for `text` (a transcript, or DTMF as text); a running one is cancelled first."""
        await self.interrupt()
        turn = AgentTurn(user_text=text, started=asyncio.get_running_loop().time())
        if self._tracker is not None:
            turn.heard_from = len(self._tracker.heard)
            turn.responses_before = self._tracker.responses_heard
        self.current = turn
        self._task = asyncio.create_task(self._run(turn), name="voice-turn")

    async def interrupt(self) -> None:
        """Cancel the turn in flight (barge-in); it is reported as interrupted."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, turn: AgentTurn) -> None:
        try:
            if self.barrier is not None:
                await asyncio.wait({self.barrier})
            turn.request = self._build_request(turn.user_text)
            await self.push_frame(LLMFullResponseStartFrame())
            async for event in self._turns.stream_turn(turn.request):
                if isinstance(event, SentenceReady):
                    if turn.first_sentence_at is None:
                        turn.first_sentence_at = asyncio.get_running_loop().time()
                    turn.sentences.append(event.text)
                    await self.push_frame(LLMTextFrame(event.text + " "))
                elif isinstance(event, TurnFinished):
                    turn.outcome = event.outcome
                    if not turn.sentences and event.outcome.response:
                        # A failed turn has no streamed sentences: speak its fallback text.
                        turn.sentences.append(event.outcome.response)
                        await self.push_frame(LLMTextFrame(event.outcome.response))
            await self.push_frame(LLMFullResponseEndFrame())
        except asyncio.CancelledError:
            turn.interrupted = True
            raise
        finally:
            await self._on_turn_done(turn)


class AgentTalkingMute(AlwaysUserMuteStrategy):
    """Barge-in off: the caller is muted while the agent thinks or speaks.

    pipecat's `AlwaysUserMuteStrategy` unmutes on ``BotStoppedSpeakingFrame``, which also
    comes in the pause while text-to-speech prepares the next sentence; a caller talking
    then would cut the agent off. This one also stays muted while the turn runs and
    while marks are outstanding (sentences sent but not yet played).

    Args:
        stage: the agent stage (`AgentStage.busy`).
        tracker: marks outstanding and when audio last went out.
    """

    def __init__(self, stage: AgentStage, tracker: PlayoutTracker) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._stage = stage
        self._tracker = tracker

    async def process_frame(self, frame: Frame) -> bool:
        """Whether the caller is muted after this frame."""
        speaking = await super().process_frame(frame)
        return bool(speaking or self._stage.busy or self._tracker.pending)
