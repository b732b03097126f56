"""The voice call's timeline for the call log: turns, interruptions, DTMF, the end, latencies.

Voice turns run with ``TurnRequest.defer_log`` so that each is filed once what the caller
heard is known. Per turn (times in ms, from the caller's end of speech):

* ``stt_final_ms``: the transcript arrived (when the STT service reports it);
* ``llm_first_sentence_ms``: the agent's first sentence;
* ``tts_first_audio_ms``: text-to-speech's first audio;
* ``first_frame_sent_ms``: the first answer frame went to Asterisk.

``interrupted`` turns keep only what the caller heard (from the marks).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from app.services.domain import TurnOutcome, TurnRequest, TurnRunner, TurnStatus
from app.services.media.agent_stage import AgentTurn
from app.services.media.playout import PlayoutTracker

logger = logging.getLogger(__name__)


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000.0, 1)


@dataclass(slots=True)
class _Entry:
    user_text: str
    outcome: TurnOutcome
    details: dict[str, Any]
    started_at: datetime
    started: float = 0.0
    first_sentence_at: float | None = None


def _last_before(times: list[float], moment: float) -> float | None:
    return max((t for t in times if t <= moment), default=None)


def latencies(entry: _Entry, tracker: PlayoutTracker) -> dict[str, float | None]:
    """Per-turn latencies (ms) from the caller's end of speech (or the turn's start for DTMF).

    End of speech is the VAD's; the STT final is the last transcript before the turn began.
    """
    t0 = entry.started
    eos = _last_before(tracker.speech_stops, t0)
    origin = eos if eos is not None else t0
    stt = _last_before(tracker.transcripts, t0)
    tts = next((t for t in tracker.tts_onsets if t >= t0), None)
    return {
        "stt_final_ms": _ms(origin, stt) if eos is not None and stt is not None and stt >= eos else None,
        "llm_first_sentence_ms": _ms(origin, entry.first_sentence_at),
        "tts_first_audio_ms": _ms(origin, tts),
        "first_frame_sent_ms": _ms(origin, tracker.first_audio_after(t0)),
    }


@dataclass(slots=True)
class VoiceTimeline:
    """Collects one voice call's events and files them in the call log at the end.

    Attributes:
        stasis_start: `time.monotonic()` of `StasisStart` (s).
        greeting_at: when the greeting was queued (`time.monotonic()`, s).
        greeting_cached: whether it came from the greeting cache.
    """

    stasis_start: float = 0.0
    greeting_at: float | None = None
    greeting_cached: bool = False
    entries: list[_Entry] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    end: dict[str, str] = field(default_factory=dict)

    def greeting_queued(self, cached: bool) -> None:
        """The greeting went into the pipeline."""
        self.greeting_at, self.greeting_cached = time.monotonic(), cached

    def dtmf(self, digit: str) -> None:
        """The caller pressed `digit`."""
        self.digits.append(digit)

    def turn(self, turn: AgentTurn, tracker: PlayoutTracker) -> None:
        """A turn finished or was interrupted (barge-in)."""
        outcome = turn.outcome or TurnOutcome("", TurnStatus.OK)
        details: dict[str, Any] = {"mode": "voice", "interrupted": turn.interrupted}
        if turn.interrupted:
            heard = " ".join(tracker.heard[turn.heard_from :])
            details["heard"] = heard
            outcome = replace(outcome, response=heard or "", status=TurnStatus.OK, error=None)
        self.entries.append(
            _Entry(
                turn.user_text,
                outcome,
                details,
                datetime.now(UTC),
                turn.started,
                turn.first_sentence_at,
            )
        )

    def cut_off(self, heard: list[str]) -> None:
        """A barge-in cut the last finished turn's answer short: it is filed as what was heard."""
        if not self.entries:
            return
        entry = self.entries[-1]
        entry.details.update(interrupted=True, heard=" ".join(heard))
        entry.outcome = replace(entry.outcome, response=" ".join(heard))

    def _summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"dtmf": list(self.digits)}
        if self.end:
            summary.update(end_reason=self.end["reason"], end_status=self.end["status"])
        if self.greeting_at is not None:
            summary["greeting_queued_ms"] = _ms(self.stasis_start, self.greeting_at)
            summary["greeting_cached"] = self.greeting_cached
        return summary

    def ended(self, end: Any) -> None:
        """The call ended (an `EndRequest`)."""
        self.end = {"reason": end.reason, "status": end.status, "error": end.error}

    def finish(
        self,
        turns: TurnRunner,
        request: TurnRequest | None,
        tracker: PlayoutTracker,
        *,
        hung_up: bool = False,
    ) -> None:
        """File every turn (with its details) in the call log; the last one as HANGUP when cut off."""
        if request is None:
            return
        last = len(self.entries) - 1
        for i, entry in enumerate(self.entries):
            entry.details.update(latencies(entry, tracker))
            outcome = replace(entry.outcome, details=entry.details)
            if i == last:
                outcome.details = {**entry.details, **self._summary()}
                if hung_up and entry.details.get("interrupted"):
                    outcome = replace(outcome, status=TurnStatus.HANGUP, error="caller_hung_up")
            try:
                turns.log_turn("call", request.context, entry.user_text, outcome, entry.started_at)
            except Exception:
                logger.exception("channel=%s voice turn not logged", request.context.channel_id)
