"""`OpenAIPCMTTSService`: pipecat's `OpenAITTSService` producing audio at the rate a call asks for.

``POST /v1/audio/speech`` with ``response_format=pcm`` streams raw s16le mono at 24 kHz
(the only rate OpenAI produces). Pipecat's service labels its frames with its own
sample rate and warns when that is not 24 kHz; this subclass resamples the stream to
the call's rate (8 or 16 kHz) with pipecat's soxr stream resampler instead, and turns
every SDK error (HTTP 5xx, timeout, dropped connection) into an `ErrorFrame`.
Imported only by `app.services.providers.tts.openai`.
Source: https://platform.openai.com/docs/api-reference/audio/createSpeech
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

from pipecat.frames.frames import ErrorFrame, Frame, StartFrame
from pipecat.services.openai.tts import VALID_VOICES, OpenAITTSService
from pipecat.services.tts_service import TTSService

logger = logging.getLogger(__name__)

#: What ``/v1/audio/speech`` returns for ``response_format=pcm``, in Hz.
OPENAI_PCM_SAMPLE_RATE_HZ = 24000


class OpenAIPCMTTSService(OpenAITTSService):
    """OpenAI speech, streamed as pcm and resampled from 24 kHz to `sample_rate`.

    Args:
        sample_rate: rate of the produced frames, in Hz.
        **kwargs: passed to `OpenAITTSService` (``api_key``, ``base_url``, ``settings``).
    """

    def __init__(self, *, sample_rate: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # TTSService takes its output rate from this at setup; set after __init__ so
        # that OpenAITTSService does not warn about a rate other than 24 kHz.
        self._init_sample_rate = sample_rate

    async def start(self, frame: StartFrame) -> None:
        """Start without OpenAITTSService's 24 kHz warning (the stream is resampled)."""
        await TTSService.start(self, frame)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak `text`: audio frames at `sample_rate` as the response streams, or an `ErrorFrame`."""
        settings: Any = self._settings
        voice = str(settings.voice)
        if voice not in VALID_VOICES:
            yield ErrorFrame(error=f"OpenAI TTS voice {voice!r} is not supported")
            return
        params: dict[str, Any] = {
            "input": text,
            "model": settings.model,
            "voice": VALID_VOICES[voice],
            "response_format": "pcm",
        }
        if settings.instructions:
            params["instructions"] = settings.instructions
        try:
            async with self._client.audio.speech.with_streaming_response.create(**params) as response:
                await self.start_tts_usage_metrics(text)
                async for frame in self._stream_audio_frames_from_iterator(
                    response.iter_bytes(self.chunk_size),
                    in_sample_rate=OPENAI_PCM_SAMPLE_RATE_HZ,
                    context_id=context_id,
                ):
                    await self.stop_ttfb_metrics()
                    yield frame
        except Exception as exc:  # openai.APIError subclasses and httpx transport errors
            logger.warning("OpenAI speech failed: %s", exc)
            yield ErrorFrame(error=f"OpenAI TTS error: {exc}", exception=exc)
