"""Deepgram streaming speech-to-text: the ``/v1/listen`` WebSocket through pipecat's `DeepgramSTTService`.

Caller audio (``encoding=linear16``, ``sample_rate`` = the call's rate) is sent as binary
messages while the caller speaks; Deepgram answers with ``Results`` messages
(``is_final`` / ``speech_final``), ``UtteranceEnd`` and ``Metadata``. At the end of turn
pipecat sends ``{"type": "Finalize"}`` and the final ``Results`` comes back with
``from_finalize``. ``DEEPGRAM_BASE_URL`` points it at another host (the wire-level
stand-in in `app.testing.fake_voice`); ``http``/``https`` map to ``ws``/``wss``.
Source: https://developers.deepgram.com/reference/speech-to-text/listen-streaming
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from app.services.providers.base import ProviderSettings, import_sdk
from app.services.providers.registry import register
from app.services.providers.stt.base import STTProvider
from app.services.providers.voice import pipecat_language

if TYPE_CHECKING:
    from pipecat.services.stt_service import STTService


class DeepgramSettings(ProviderSettings):
    """``DEEPGRAM_API_KEY``, ``DEEPGRAM_BASE_URL`` (empty = api.deepgram.com), ``DEEPGRAM_STT_MODEL``.

    Shared by the Deepgram STT and TTS (Aura) providers.
    """

    deepgram_api_key: SecretStr | None = None
    deepgram_base_url: str | None = None
    deepgram_stt_model: str = "nova-3-general"
    deepgram_tts_voice: str = "aura-2-helena-en"


@register
class DeepgramSTTProvider(STTProvider):
    """Deepgram live transcription, streaming while the caller speaks."""

    name = "deepgram"
    label = "Deepgram (streaming)"
    settings_class = DeepgramSettings
    streaming: ClassVar[bool] = True
    settings: DeepgramSettings

    def model(self) -> str:
        """``DEEPGRAM_STT_MODEL``."""
        return self.settings.deepgram_stt_model

    def unconfigured_reason(self) -> str | None:
        """Set when ``DEEPGRAM_API_KEY`` is missing."""
        return None if self.settings.deepgram_api_key else "DEEPGRAM_API_KEY is not set"

    def build_service(self, *, sample_rate_hz: int, language: str, model: str) -> STTService:
        """A `DeepgramSTTService` streaming linear16 at `sample_rate_hz`, interim results on."""
        import_sdk("deepgram", "deepgram-sdk")
        stt: Any = import_sdk("pipecat.services.deepgram.stt", "pipecat-ai[deepgram]")
        key = self.settings.deepgram_api_key
        service: STTService = stt.DeepgramSTTService(
            api_key=key.get_secret_value() if key else "",
            base_url=self.settings.deepgram_base_url or "",
            encoding="linear16",
            sample_rate=sample_rate_hz,
            settings=stt.DeepgramSTTService.Settings(
                model=model, language=pipecat_language(language), interim_results=True
            ),
        )
        return service
