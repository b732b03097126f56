"""The speech-to-text capability: a provider builds one pipecat `STTService` per call.

A provider module subclasses `STTProvider`, sets its class attributes and implements
`STTProvider.build_service`. Pipecat and the vendor SDK are imported inside
`build_service` (through `import_sdk`), never when the module is imported, so that
`import app.main` stays free of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from app.services.providers.base import Capability, ProviderNotConfigured
from app.services.providers.voice import VoiceProvider

if TYPE_CHECKING:
    from pipecat.services.stt_service import STTService


class STTProvider(VoiceProvider):
    """Base of the speech-to-text providers.

    Class attributes:
        streaming: True when audio is sent while the caller speaks and finals arrive
            shortly after the end of speech (Deepgram); False when each utterance is
            sent whole after the end of turn (OpenAI transcriptions, pocketsphinx).
        offline: True when no network service is used.
        default_model: model used when a prompt names none.
        default_language: BCP-47 tag used when a prompt names none.
    """

    capability: ClassVar[Capability] = Capability.STT
    streaming: ClassVar[bool] = False
    offline: ClassVar[bool] = False
    default_model: ClassVar[str] = ""
    default_language: ClassVar[str] = "en"

    def create_service(
        self, *, sample_rate_hz: int, language: str | None = None, model: str | None = None
    ) -> STTService:
        """Build the pipecat service for one call.

        Args:
            sample_rate_hz: rate of the caller audio the service receives (16-bit mono
                PCM), e.g. 8000 for ulaw calls, 16000 for slin16.
            language: BCP-47 tag; None means `default_language`.
            model: vendor model name; None means `model()`.

        Raises:
            ProviderNotConfigured: a key, base URL or binary is missing.
            MissingDependency: pipecat or the vendor SDK is not installed.
        """
        reason = self.unconfigured_reason()
        if reason is not None:
            raise ProviderNotConfigured(f"{self.capability} provider '{self.name}': {reason}")
        return self.build_service(
            sample_rate_hz=sample_rate_hz,
            language=language or self.default_language,
            model=model or self.model(),
        )

    def model(self) -> str:
        """The model used when a prompt names none; default: `default_model`."""
        return self.default_model

    def build_service(self, *, sample_rate_hz: int, language: str, model: str) -> STTService:
        """Build the vendor's pipecat service (called by `create_service`, defaults applied)."""
        raise NotImplementedError
