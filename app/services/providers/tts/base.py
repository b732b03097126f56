"""The text-to-speech capability: a provider builds one pipecat `TTSService` per call.

A provider module subclasses `TTSProvider`, sets its class attributes and implements
`TTSProvider.build_service`. Every service it builds produces 16-bit mono PCM
(s16le) at the sample rate asked for, resampling the vendor's own rate with pipecat's
stream resampler where they differ. Pipecat and the vendor SDK are imported inside
`build_service`, never when the module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from app.services.providers.base import Capability, ProviderNotConfigured
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
