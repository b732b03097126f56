"""What the caller has actually heard, from chan_websocket marks.

After each sentence's audio we send ``MARK_MEDIA``; Asterisk answers
``MEDIA_MARK_PROCESSED`` once the audio before the mark has played, and drops every mark
still queued on ``FLUSH_MEDIA`` (``../shared/ari-samples/media/README.md``). So at a
barge-in, the sentences whose marks came back are exactly what the caller heard.

`SentenceMarker` sits right after text-to-speech in the pipeline and puts a
`SentenceMarkFrame` behind each spoken text, which the output transport turns into
``MARK_MEDIA`` in order with the audio.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import (
    DataFrame,
    Frame,
    LLMFullResponseEndFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

#: A gap (s) in the agent's audio after which the next chunk counts as a new onset of speech.
ONSET_GAP_S = 0.25


@dataclass
class SentenceMarkFrame(DataFrame):
    """Sent in order after one sentence's audio; becomes ``MARK_MEDIA``.

    Parameters:
        mark_id: the ``correlation_id``.
        text: the sentence.
    """

    mark_id: str = ""
    text: str = ""


@dataclass
class SpeechEndFrame(DataFrame):
    """Pushed after a `TTSSpeakFrame` (greeting, reprompt, goodbye): marks where that speech ends.

    pipecat's TTS service queues it behind the speech's audio, like `LLMFullResponseEndFrame`
    behind an answer's, so `SentenceMarker` can put an end-of-speech mark there.
    """


#: The text of a mark that closes a whole answer (or a reprompt/goodbye), not a sentence.
END_OF_SPEECH = "\x00end"


@dataclass(slots=True)
class PlayoutTracker:
    """Marks sent and played, and when the agent's audio first reached the wire.

    Attributes:
        heard: sentences whose marks Asterisk reported played, in order.
        pending: mark id -> sentence, sent but not yet played.
        on_flush: called after each ``FLUSH_MEDIA`` (a barge-in), once `heard` is final.
        responses_heard: answers (and reprompts, goodbyes) whose end-of-speech mark came back.
        onsets: when agent audio went out after a pause (`time.monotonic()`, s).
        tts_onsets: when text-to-speech produced audio after a pause (s).
        speech_stops: when the VAD heard the caller stop (s). transcripts: when STT finals came (s).
    """

    heard: list[str] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    responses_heard: int = 0
    last_audio_sent_at: float | None = None
    onsets: list[float] = field(default_factory=list)
    tts_onsets: list[float] = field(default_factory=list)
    speech_stops: list[float] = field(default_factory=list)
    transcripts: list[float] = field(default_factory=list)
    _last_tts_audio: float = 0.0
    on_flush: Callable[[], None] | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> str:
        """A fresh ``correlation_id`` (short: commands must stay ≤ 128 bytes)."""
        return f"s{next(self._ids)}"

    def sent(self, mark_id: str, text: str) -> None:
        """``MARK_MEDIA`` `mark_id` went out after `text`'s audio."""
        self.pending[mark_id] = text

    def played(self, mark_id: str) -> None:
        """``MEDIA_MARK_PROCESSED`` for `mark_id`: its sentence was heard."""
        text = self.pending.pop(mark_id, None)
        if text == END_OF_SPEECH:
            self.responses_heard += 1
        elif text is not None:
            self.heard.append(text)

    def flushed(self) -> list[str]:
        """``FLUSH_MEDIA`` went out: pending marks are dropped; returns the unheard sentences."""
        unheard = list(self.pending.values())
        self.pending.clear()
        if self.on_flush is not None:
            self.on_flush()
        return unheard

    def audio_sent(self) -> None:
        """One agent audio chunk went out; a chunk after ≥ `ONSET_GAP_S` of none starts speech."""
        now = time.monotonic()
        if self.last_audio_sent_at is None or now - self.last_audio_sent_at >= ONSET_GAP_S:
            self.onsets.append(now)
        self.last_audio_sent_at = now

    def tts_audio(self) -> None:
        """Text-to-speech produced audio; after ≥ `ONSET_GAP_S` of none, a new onset."""
        now = time.monotonic()
        if now - self._last_tts_audio >= ONSET_GAP_S:
            self.tts_onsets.append(now)
        self._last_tts_audio = now

    def first_audio_after(self, moment: float) -> float | None:
        """When agent audio first went out after `moment` (`time.monotonic()` s), if it has."""
        return next((t for t in self.onsets if t >= moment), None)


class SentenceMarker(FrameProcessor):
    """After each piece of spoken text, queue a `SentenceMarkFrame` for the output transport.

    pipecat's text-to-speech services emit a `TTSTextFrame` behind the audio of the text it
    carries (a sentence, or a word for services with word timestamps), so a mark placed right
    after it is played once that text has been heard.

    Args:
        tracker: shared with the output transport.
    """

    def __init__(self, tracker: PlayoutTracker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracker = tracker

    @property
    def tracker(self) -> PlayoutTracker:
        """The shared tracker."""
        return self._tracker

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass every frame on; put a mark behind each spoken text."""
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, TTSAudioRawFrame):
            self._tracker.tts_audio()
        elif isinstance(frame, LLMFullResponseEndFrame | SpeechEndFrame):
            # Everything this answer (or reprompt/goodbye) said has played once this mark returns.
            await self.push_frame(SentenceMarkFrame(mark_id=self._tracker.next_id(), text=END_OF_SPEECH))
        elif isinstance(frame, TTSTextFrame) and frame.text.strip():
            await self.push_frame(SentenceMarkFrame(mark_id=self._tracker.next_id(), text=frame.text.strip()))


def note_transcripts(stt: FrameProcessor, tracker: PlayoutTracker) -> None:
    """Note when `stt` pushes each `TranscriptionFrame` (the STT final, for latencies).

    A wrapper on the service's own `push_frame` rather than another processor after it:
    every caller audio frame passes the STT service, and each extra pipeline stage costs
    those frames a queue hop (at 20 calls that shows as holes in the agent's speech).
    """
    push = stt.push_frame

    async def push_frame(frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, TranscriptionFrame):
            tracker.transcripts.append(time.monotonic())
        await push(frame, direction)

    stt.push_frame = push_frame  # type: ignore[method-assign]


class TimelineTap(FrameProcessor):
    """Notes when the caller stopped speaking (the VAD's `VADUserStoppedSpeakingFrame`).

    It sits after the user aggregator and after caller audio stops there, so no audio
    frame passes it; it passes every frame on unchanged.
    """

    def __init__(self, tracker: PlayoutTracker, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tracker = tracker

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Record the moment; pass the frame on."""
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._tracker.speech_stops.append(time.monotonic())
        await self.push_frame(frame, direction)
