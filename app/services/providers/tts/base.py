"""The text-to-speech capability: a provider builds one pipecat `TTSService` per call.

A provider module subclasses `TTSProvider`, sets its class attributes and implements
`TTSProvider.build_service`. Every service it builds produces 16-bit mono PCM
(s16le) at the sample rate asked for, resampling the vendor's own rate with pipecat's
stream resampler where they differ. Pipecat and the vendor SDK are imported inside
`build_service`, never when the module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from app.services.providers.base import Capability, ProviderError, ProviderNotConfigured
from app.services.providers.voice import VoiceProvider

if TYPE_CHECKING:
    from pipecat.services.tts_service import TTSService


class TTSProvider(VoiceProvider):
    """Base of the text-to-speech providers.

    Class attributes:
        streaming: True when audio arrives while the text is still being sent
            (a WebSocket vendor such as Deepgram Aura); False when each sentence is one
            HTTP request (its audio may still stream back, as OpenAI's does).
        offline: True when no network service is used.
        default_voice: voice used when a prompt names none.
        native_sample_rate_hz: the rate the vendor produces, in Hz (0 = as asked).
    """

    capability: ClassVar[Capability] = Capability.TTS
    streaming: ClassVar[bool] = False
    offline: ClassVar[bool] = False
    default_voice: ClassVar[str] = ""
    native_sample_rate_hz: ClassVar[int] = 0

    def create_service(
        self, *, voice: str | None = None, sample_rate_hz: int, language: str | None = None
    ) -> TTSService:
        """Build the pipecat service for one call.

        Args:
            voice: vendor voice name; None means `default_voice` (or the provider's
                voice setting).
            sample_rate_hz: rate of the s16le mono audio the service must produce, e.g.
                8000 for ulaw calls, 16000 for slin16.
            language: BCP-47 tag, for vendors that take one; None means the voice's own.

        Raises:
            ProviderNotConfigured: a key, base URL or binary is missing.
            MissingDependency: pipecat or the vendor SDK is not installed.
        """
        reason = self.unconfigured_reason()
        if reason is not None:
            raise ProviderNotConfigured(f"{self.capability} provider '{self.name}': {reason}")
        return self.build_service(
            voice=voice or self.voice(), sample_rate_hz=sample_rate_hz, language=language
        )

    def voice(self) -> str:
        """The voice used when a prompt names none; default: `default_voice`."""
        return self.default_voice

    def build_service(self, *, voice: str, sample_rate_hz: int, language: str | None) -> TTSService:
        """Build the vendor's pipecat service (called by `create_service`, defaults applied)."""
        raise NotImplementedError

    async def synthesize(self, text: str, *, voice: str | None, sample_rate_hz: int) -> bytes:
        """Speak `text` outside a call, e.g. the prompt page's voice sample.

        Args:
            text: what to say (a sentence or two).
            voice: vendor voice name; None means `voice()`.
            sample_rate_hz: rate of the audio returned, in Hz (8000: a ulaw call).

        Returns:
            The whole utterance as 16-bit mono little-endian PCM (s16le) at `sample_rate_hz`.

        Raises:
            ProviderNotConfigured: a key or binary is missing.
            ProviderError: the vendor failed, or this provider cannot speak outside a call.
        """
        reason = self.unconfigured_reason()
        if reason is not None:
            raise ProviderNotConfigured(reason)
        return await self.synthesize_pcm(text, voice=voice or self.voice(), sample_rate_hz=sample_rate_hz)

    async def synthesize_pcm(self, text: str, *, voice: str, sample_rate_hz: int) -> bytes:
        """The provider's own one-shot synthesis (called by `synthesize`, defaults applied)."""
        raise ProviderError(f"{self.capability} provider '{self.name}' cannot speak outside a call")


def resample_pcm(pcm: bytes, from_hz: int, to_hz: int) -> bytes:
    """Resample a whole utterance of s16le mono PCM with soxr (the library pipecat uses).

    Args:
        pcm: 16-bit mono little-endian samples at `from_hz`.
        from_hz: source rate, in Hz.
        to_hz: wanted rate, in Hz.
    """
    if from_hz == to_hz or not pcm:
        return pcm
    import numpy as np
    import soxr  # type: ignore[import-untyped]

    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16)
    out = soxr.resample(samples, from_hz, to_hz)
    return bytes(np.asarray(out, dtype=np.int16).tobytes())
