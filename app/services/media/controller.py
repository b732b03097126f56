"""The voice call's clock: silence and reprompts, DTMF, the maximum duration, and ending.

`CallController` sits between pipecat's user aggregator and the agent stage. It watches
who is speaking (`UserStarted/StoppedSpeakingFrame` downstream,
`BotStarted/StoppedSpeakingFrame` coming back from the output transport) and ticks every
`TICK_S`:

* **DTMF**: digits are collected until `dtmf_pause_ms` passes without one, then reach the
  agent as text (``[caller pressed 1 2]``). With barge-in on, a key pressed while the agent
  speaks cuts it off at once, as speech would (an IVR menu the caller has already answered).
* **Silence**: with nobody speaking and no turn running for `reprompt_after_s`, the
  reprompt text is spoken; after `max_reprompts`, the goodbye, then the call ends with
  ``NO_INPUT``.
* **Maximum duration**: the agent is cut off, the goodbye is spoken, the call ends.
* **Ending**: an end requested by the agent (``end_call``/``transfer_call``), by silence or
  by the clock takes effect once its last sentence has been heard (its mark came back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputDTMFFrame,
    InterruptionFrame,
    StartFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from app.services.domain import VoiceSettings
from app.services.media.agent_stage import AgentStage
from app.services.media.playout import PlayoutTracker, SpeechEndFrame

logger = logging.getLogger(__name__)

TICK_S = 0.05
#: Longest wait (s) for the last sentence's mark before ending anyway.
END_GRACE_S = 5.0


@dataclass(slots=True)
class EndRequest:
    """Why the conversation is ending.

    Attributes:
        reason: ``AI_END_REASON``: ``agent_ended``, ``caller_silent``, ``max_duration``, ``error``.
        status: ``AI_STATUS``: ``OK``, ``NO_INPUT``, ``TIMEOUT``, ``ERROR`` or ``TRANSFER``.
        error: ``AI_ERROR`` ('' when none).
    """

    reason: str
    status: str
    error: str = ""


class CallController(FrameProcessor):
    """Timers and ending for one voice call.

    Args:
        voice: the prompt's voice settings.
        max_duration_s: the call's maximum duration, in s.
        stage: the agent stage (to start DTMF turns and cut the agent off).
        tracker: what the caller has heard (marks).
        on_end: called once with the `EndRequest`, after its last sentence was heard.
        on_dtmf: called with each digit (for the call log timeline).
        channel_id: the caller's channel (for the log).
    """

    def __init__(
        self,
        voice: VoiceSettings,
        max_duration_s: float,
        stage: AgentStage,
        tracker: PlayoutTracker,
        on_end: Callable[[EndRequest], Awaitable[None]],
        on_dtmf: Callable[[str], None] | None = None,
        channel_id: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._voice = voice
        self._max_duration_s = max_duration_s
        self._stage = stage
        self._tracker = tracker
        self._on_end = on_end
        self._on_dtmf = on_dtmf
        self._channel_id = channel_id
        self._started = time.monotonic()
        self._last_activity = self._started
        self.bot_speaking = False
        self.user_speaking = False
        self.reprompts = 0
        self._digits: list[str] = []
        self._last_digit = 0.0
        self._pending: EndRequest | None = None
        self._pending_since = 0.0
        self._expect_speech = False
        self._bot_stopped_at = 0.0
        self._responses_at_request = 0
        self._ended = False
        self._ticker: asyncio.Task[None] | None = None

    def request_end(self, end: EndRequest, goodbye: str = "", *, expect_speech: bool = False) -> None:
        """End the call once what is being said (and `goodbye`, if given) has been heard.

        Args:
            end: why.
            goodbye: text to say first.
            expect_speech: wait for the agent to finish speaking after this moment even
                without a goodbye (the closing sentence of an ``end_call`` turn).
        """
        if self._pending is not None or self._ended:
            return
        self._pending, self._pending_since = end, time.monotonic()
        self._responses_at_request = self._tracker.responses_heard
        self._expect_speech = bool(goodbye) or expect_speech
        if goodbye:
            self.create_task(self.speak(goodbye))

    async def speak(self, text: str) -> None:
        """Say `text` through text-to-speech (reprompt, goodbye, greeting)."""
        await self.push_frame(TTSSpeakFrame(text))
        await self.push_frame(SpeechEndFrame())

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Track speaking state and DTMF; everything passes on unchanged."""
        await super().process_frame(frame, direction)
        now = time.monotonic()
        if isinstance(frame, StartFrame) and self._ticker is None:
            await self.push_frame(frame, direction)
            self._ticker = self.create_task(self._tick())
            return
        if isinstance(frame, BotStartedSpeakingFrame):
            self.bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.bot_speaking, self._last_activity, self._bot_stopped_at = False, now, now
        elif isinstance(frame, UserStartedSpeakingFrame):
            self.user_speaking, self.reprompts = True, 0
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self.user_speaking, self._last_activity = False, now
        elif isinstance(frame, InterruptionFrame) and direction is FrameDirection.DOWNSTREAM:
            self._caller_cancels_agent_end()  # barge-in, before the output transport flushes
        elif isinstance(frame, InputDTMFFrame):
            await self._on_digit(str(frame.button.value), now)
        await self.push_frame(frame, direction)

    def _caller_cancels_agent_end(self) -> None:
        """A caller who talks over the agent's closing sentence (barge-in) keeps the call.

        Only an end the agent asked for (``end_call``/``transfer_call``) is dropped, and only
        while its sentence has not been heard to the end; the model may ask again next turn.
        Silence, the maximum duration and errors still end the call.
        """
        end = self._pending
        if end is None or end.reason != "agent_ended" or not self._voice.barge_in:
            return
        unheard = (
            self.bot_speaking or bool(self._tracker.pending) or self._bot_stopped_at <= self._pending_since
        )
        if unheard:
            logger.info(
                "channel=%s caller talked over the closing sentence: %s cancelled",
                self._channel_id,
                end.status,
            )
            self._pending = None

    async def _on_digit(self, digit: str, now: float) -> None:
        """Collect a DTMF digit; a key pressed while the agent speaks cuts it off (with barge-in on)."""
        self._digits.append(digit)
        self._last_digit = self._last_activity = now
        self.reprompts = 0
        if self._on_dtmf is not None:
            self._on_dtmf(digit)
        if self._voice.barge_in and self._pending is None and (self.bot_speaking or self._stage.busy):
            await self._cut_off()

    async def _cut_off(self) -> None:
        """Stop the agent: its turn, and the audio already queued (an interruption: FLUSH_MEDIA)."""
        await self._stage.interrupt()
        await self.broadcast_interruption()  # type: ignore[no-untyped-call]

    async def _tick(self) -> None:
        while not self._ended:
            await asyncio.sleep(TICK_S)
            try:
                await self._step(time.monotonic())
            except Exception:
                logger.exception("channel=%s voice controller step failed", self._channel_id)

    def _quiet(self) -> bool:
        return not (self.bot_speaking or self.user_speaking or self._stage.busy)

    async def _step(self, now: float) -> None:
        v = self._voice
        if self._digits and now - self._last_digit >= v.dtmf_pause_ms / 1000.0:
            text = "[caller pressed " + " ".join(self._digits) + "]"
            self._digits.clear()
            await self._stage.start_turn(text)
        if self._pending is not None:
            # The closing answer (or goodbye) has been heard once its end-of-speech mark came back.
            spoken = not self._expect_speech or self._tracker.responses_heard > self._responses_at_request
            heard = spoken and not self._tracker.pending and self._quiet()
            if heard or now - self._pending_since > END_GRACE_S + v.reprompt_after_s:
                self._ended = True
                await self._on_end(self._pending)
            return
        if now - self._started >= self._max_duration_s:
            await self._cut_off()
            self.request_end(EndRequest("max_duration", "TIMEOUT"), v.goodbye_text)
            return
        if self._quiet() and not self._digits and now - self._last_activity >= v.reprompt_after_s:
            self._last_activity = now
            if self.reprompts < v.max_reprompts:
                self.reprompts += 1
                await self.speak(v.reprompt_text)
            else:
                self.request_end(EndRequest("caller_silent", "NO_INPUT", "no_input"), v.goodbye_text)
