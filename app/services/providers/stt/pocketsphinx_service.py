"""`PocketsphinxSTTService`: a pipecat `SegmentedSTTService` on the CMU pocketsphinx decoder.

Imported only by `app.services.providers.stt.pocketsphinx` when it builds a service, so
that pipecat and pocketsphinx stay out of `import app.main`. Offline: it uses the US
English acoustic model, dictionary and language model that the ``pocketsphinx`` wheel
ships (``pocketsphinx.get_model_path()``); nothing is downloaded. Low accuracy: fine
for short, clearly spoken phrases, not for real callers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

import pocketsphinx  # type: ignore[import-untyped]
from pipecat.audio.utils import create_file_resampler
from pipecat.frames.frames import ErrorFrame, Frame, TranscriptionFrame
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601

logger = logging.getLogger(__name__)

#: The rate of the acoustic model the wheel ships (``en-us``), in Hz.
MODEL_SAMPLE_RATE_HZ = 16000


class PocketsphinxSTTService(SegmentedSTTService):
    """Transcribes each VAD segment (16-bit mono PCM) with pocketsphinx, off the event loop.

    Segments at another rate (8 kHz ulaw calls) are resampled to 16 kHz with pipecat's
    soxr resampler first. One decoder per service (per call), created on first use in
    a worker thread (about 0.2 s); segments are decoded one at a time, in order.

    Args:
        sample_rate: rate of the caller audio, in Hz.
        language: reported on each `TranscriptionFrame` (the model is US English).
        **kwargs: passed to `SegmentedSTTService`.
    """

    def __init__(self, *, sample_rate: int, language: Language = Language.EN_US, **kwargs: Any) -> None:
        # pipecat's own default, stated so it does not warn: one segment decodes well within 1 s.
        kwargs.setdefault("ttfs_p99_latency", 1.0)
        kwargs.setdefault("settings", STTSettings(model="pocketsphinx-en-us", language=str(language.value)))
        super().__init__(sample_rate=sample_rate, **kwargs)
        self._language = language
        self._decoder: Any = None
        self._resampler = create_file_resampler()

    @property
    def wants_wav_segments(self) -> bool:
        """False: the decoder reads raw 16-bit PCM."""
        return False

    def can_generate_metrics(self) -> bool:
        """True: time to transcript is measured."""
        return True

    def _decode(self, pcm_16k: bytes) -> str:
        """Run the decoder on one utterance (blocking; called in a worker thread)."""
        if self._decoder is None:
            self._decoder = pocketsphinx.Decoder(samprate=MODEL_SAMPLE_RATE_HZ, loglevel="FATAL")
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(pcm_16k, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return str(hypothesis.hypstr).strip() if hypothesis is not None else ""

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Transcribe one segment of raw s16le mono audio at `sample_rate`.

        Yields:
            One `TranscriptionFrame` (nothing when the decoder heard no words), or an
            `ErrorFrame` when decoding fails.
        """
        await self.start_processing_metrics()
        try:
            if self.sample_rate != MODEL_SAMPLE_RATE_HZ:
                audio = await self._resampler.resample(audio, self.sample_rate, MODEL_SAMPLE_RATE_HZ)
            text = await asyncio.to_thread(self._decode, audio)
        except Exception as exc:  # the decoder raises RuntimeError/ValueError on bad input
            logger.warning("pocketsphinx failed on a %d-byte segment: %s", len(audio), exc)
            yield ErrorFrame(error=f"pocketsphinx error: {exc}")
            return
        finally:
            await self.stop_processing_metrics()
        if text:
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), self._language)
