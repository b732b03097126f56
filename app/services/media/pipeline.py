"""The pipecat pipeline of one voice call, and the greeting cache.

Order (each stage a pipecat `FrameProcessor`)::

    Asterisk input ─▶ STT ─▶ user aggregator (Silero VAD, end of turn) ─▶ CallerAudioStop ─▶ CallController
      ─▶ AgentStage (our LangChain agent) ─▶ TTS ─▶ GreetingRecorder ─▶ SentenceMarker
      ─▶ Asterisk output ─▶ assistant aggregator

* Voice activity detection is pipecat's Silero VAD (the ONNX model inside the pipecat
  wheel). ``barge_in_min_speech_ms`` is its ``start_secs``: shorter sounds never count as
  speech, so they neither interrupt the agent nor start a turn.
* End of turn: the caller's turn ends ``end_of_turn_ms`` after the VAD hears speech stop
  (pipecat's speech-timeout strategy), or, with ``VOICE_SMART_TURN=true``, when pipecat's
  smart-turn model (also inside the wheel) says the sentence is complete.
* Barge-in: a caller who starts speaking while the agent speaks broadcasts an
  interruption (FLUSH_MEDIA, the turn and TTS cancelled); with barge-in off the caller is
  muted while the agent speaks.
"""

from __future__ import annotations

import copy
import functools
import gc
from typing import Any

from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.user_mute import BaseUserMuteStrategy
from pipecat.turns.user_mute.always_user_mute_strategy import AlwaysUserMuteStrategy
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from app.services.domain import VoiceSettings
from app.services.media.playout import SentenceMarker, TimelineTap, note_transcripts
from app.services.media.transport import AsteriskMediaTransport

#: Silero VAD's loudness gate (0-1, pipecat's BS.1770 scale). pipecat's default (0.6) rises
#: over a 400 ms window and alone delays the start of speech by ~80 ms, too slow for a
#: barge-in within 300 ms; phone speech at normal level passes 0.3 at once.
VAD_MIN_VOLUME = 0.3

# The modules imported by now (pipecat, onnxruntime, LangChain, the app) live as long as the
# process. Python's full collection walks every tracked object each time, which took
# 150-330 ms with voice mode loaded: the event loop stood still and 20 callers heard a hole
# in the agent's speech. Frozen objects are left out of every later collection.
gc.freeze()


class GreetingRecorder(FrameProcessor):
    """Captures the first thing text-to-speech says (the greeting) for the cache.

    A greeting interrupted before text-to-speech finished it is not kept (else the next
    thing said, such as the first answer, would be cached as the greeting).

    Args:
        on_recorded: called with the PCM and its sample rate (Hz) when the greeting ends.
    """

    def __init__(self, on_recorded: Any | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_recorded = on_recorded
        self._pcm = bytearray()
        self._rate = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass every frame on; keep the greeting's audio."""
        await super().process_frame(frame, direction)
        if self._on_recorded is not None and direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, InterruptionFrame):
                # Cut short (barge-in, DTMF): not a greeting to cache; a later call records it.
                self._on_recorded = None
                self._pcm.clear()
            elif isinstance(frame, TTSAudioRawFrame):
                self._pcm += frame.audio
                self._rate = frame.sample_rate
            elif isinstance(frame, TTSStoppedFrame) and self._pcm:
                callback, self._on_recorded = self._on_recorded, None
                callback(bytes(self._pcm), self._rate)
        await self.push_frame(frame, direction)


@functools.cache
def _silero_model() -> SileroOnnxModel:
    """The Silero ONNX model, loaded once per process (the file ships in the pipecat wheel)."""
    return SileroVADAnalyzer()._model


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """pipecat's Silero VAD with the process's one ONNX session and the call's own state.

    Loading the model (an ONNX Runtime session) took ~35 ms of event-loop time per call, so
    calls arriving together delayed each other's greetings. ``InferenceSession.run`` is
    thread-safe; the recurrent state and audio context stay per call (`reset_states`).

    Args:
        params: VAD parameters (start/stop seconds, confidence).
    """

    def __init__(self, *, params: VADParams) -> None:
        VADAnalyzer.__init__(self, sample_rate=None, params=params)
        self._model = copy.copy(_silero_model())
        self._model.reset_states()  # type: ignore[no-untyped-call]
        self._windows_since_reset = 0
        self._low_confidence_windows = 0


class CallerAudioStop(FrameProcessor):
    """Ends the caller's audio frames after voice activity and end-of-turn detection.

    pipecat's user aggregator passes every ``InputAudioRawFrame`` (50 per second per call
    at 20 ms) on downstream, though no later stage uses them; each stage a frame crosses
    costs event-loop time, which at 20 calls in one process left Asterisk's playout queue
    short of agent audio (gaps the caller hears).
    """

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Drop caller audio; pass everything else on."""
        if isinstance(frame, InputAudioRawFrame):
            return
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


def build_worker(
    transport: AsteriskMediaTransport,
    stt: FrameProcessor,
    tts: FrameProcessor,
    stages: list[FrameProcessor],
    marker: SentenceMarker,
    recorder: GreetingRecorder,
    voice: VoiceSettings,
    *,
    smart_turn: bool = False,
    mute: BaseUserMuteStrategy | None = None,
) -> PipelineWorker:
    """Assemble the call's pipeline (see the module docstring) and its worker.

    Args:
        transport: the call's Asterisk transport.
        stt: the speech-to-text service.
        tts: the text-to-speech service.
        stages: the call controller and the agent stage, in that order.
        marker: puts marks behind spoken text.
        recorder: captures the greeting.
        voice: the prompt's voice settings.
        smart_turn: use pipecat's smart-turn model for end of turn.
        mute: with barge-in off, mutes the caller while the agent talks
            (default: pipecat's `AlwaysUserMuteStrategy`).
    """
    rate = transport.input().sample_rate or 8000
    note_transcripts(stt, marker.tracker)
    pair = LLMContextAggregatorPair(LLMContext(), user_params=_user_turns(voice, smart_turn, mute))
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            pair.user(),
            CallerAudioStop(),
            TimelineTap(marker.tracker),
            *stages,
            tts,
            recorder,
            marker,
            transport.output(),
            pair.assistant(),
        ]
    )
    return PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate),
        idle_timeout_secs=None,
        enable_rtvi=False,
        enable_turn_tracking=False,
        check_dangling_tasks=False,
    )


def _user_turns(
    voice: VoiceSettings, smart_turn: bool, mute: BaseUserMuteStrategy | None
) -> LLMUserAggregatorParams:
    """How the caller's turns start and end: Silero VAD, the end-of-turn rule, barge-in muting."""
    vad = SharedSileroVADAnalyzer(
        params=VADParams(
            start_secs=max(0.05, voice.barge_in_min_speech_ms / 1000.0),
            stop_secs=0.2,
            min_volume=VAD_MIN_VOLUME,
        )
    )
    stop: list[Any]
    if smart_turn:
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
        from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

        stop = [TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())]
    else:
        stop = [SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=voice.end_of_turn_ms / 1000.0)]
    return LLMUserAggregatorParams(
        vad_analyzer=vad,
        user_turn_strategies=UserTurnStrategies(start=[VADUserTurnStartStrategy()], stop=stop),
        user_mute_strategies=[] if voice.barge_in else [mute or AlwaysUserMuteStrategy()],  # type: ignore[no-untyped-call]
        user_idle_timeout=0,
    )
