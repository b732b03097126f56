"""OpenAI speech-to-text: ``POST /v1/audio/transcriptions`` through pipecat's `OpenAISTTService`.

Each utterance (cut by the pipeline's VAD / end of turn) is uploaded whole as a WAV
file (multipart ``file``, ``model``, ``language``); the answer's ``text`` is the
transcript. Honours ``OPENAI_BASE_URL``, so any OpenAI-compatible server with the audio
endpoints (and the wire-level stand-in in `app.testing.fake_voice`) works.
Source: https://platform.openai.com/docs/api-reference/audio/createTranscription
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


class OpenAISTTSettings(ProviderSettings):
    """``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` (empty = OpenAI), ``OPENAI_STT_MODEL``, the timeout.

    ``OPENAI_AUDIO_TIMEOUT_SECONDS`` bounds each request, in seconds; the SDK does not retry.
    """

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_stt_model: str = "gpt-4o-mini-transcribe"
    openai_audio_timeout_seconds: float = 10.0


@register
class OpenAISTTProvider(STTProvider):
    """OpenAI transcriptions (``gpt-4o-mini-transcribe``, ``whisper-1``), one request per utterance."""

    name = "openai"
    label = "OpenAI transcriptions"
    settings_class = OpenAISTTSettings
    streaming: ClassVar[bool] = False
    settings: OpenAISTTSettings

    def model(self) -> str:
        """``OPENAI_STT_MODEL``."""
        return self.settings.openai_stt_model

    def unconfigured_reason(self) -> str | None:
        """Set when ``OPENAI_API_KEY`` is missing."""
        return None if self.settings.openai_api_key else "OPENAI_API_KEY is not set"

    def build_service(self, *, sample_rate_hz: int, language: str, model: str) -> STTService:
        """An `OpenAISTTService` for `model` at `sample_rate_hz` (WAV upload at that rate)."""
        stt: Any = import_sdk("pipecat.services.openai.stt", "pipecat-ai[openai]")
        key = self.settings.openai_api_key
        service: STTService = stt.OpenAISTTService(
            api_key=key.get_secret_value() if key else None,
            base_url=self.settings.openai_base_url or None,
            sample_rate=sample_rate_hz,
            settings=stt.OpenAISTTService.Settings(model=model, language=pipecat_language(language)),
        )
        # No SDK retries and a bounded wait: a caller cannot sit through backoff.
        service._client = service._client.with_options(  # type: ignore[attr-defined]
            max_retries=0, timeout=self.settings.openai_audio_timeout_seconds
        )
        return service
