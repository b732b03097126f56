"""OpenAI text-to-speech: ``POST /v1/audio/speech`` with ``response_format=pcm``, streamed.

One request per sentence; the 24 kHz s16le stream is resampled to the call's rate as it
arrives (`OpenAIPCMTTSService`). Honours ``OPENAI_BASE_URL``, so the wire-level
stand-in in `app.testing.fake_voice` (or any compatible server) can serve it.
Source: https://platform.openai.com/docs/api-reference/audio/createSpeech
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from app.services.providers.base import ProviderError, ProviderSettings, import_sdk
from app.services.providers.registry import register
from app.services.providers.tts.base import TTSProvider, resample_pcm

if TYPE_CHECKING:
    from pipecat.services.tts_service import TTSService


class OpenAITTSSettings(ProviderSettings):
    """``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_TTS_MODEL``, ``OPENAI_TTS_VOICE`` and the timeout.

    ``OPENAI_AUDIO_TIMEOUT_SECONDS`` bounds each speech or transcription request; the SDK
    does not retry (a call cannot wait for backoff; the conversation falls back instead).
    """

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_tts_model: str = "gpt-4o-mini-tts"
    openai_tts_voice: str = "alloy"
    openai_audio_timeout_seconds: float = 10.0


@register
class OpenAITTSProvider(TTSProvider):
    """OpenAI speech (``gpt-4o-mini-tts``, ``tts-1``), one streamed request per sentence."""

    name = "openai"
    label = "OpenAI speech"
    settings_class = OpenAITTSSettings
    streaming: ClassVar[bool] = False
    native_sample_rate_hz: ClassVar[int] = 24000
    settings: OpenAITTSSettings

    def voice(self) -> str:
        """``OPENAI_TTS_VOICE``."""
        return self.settings.openai_tts_voice

    def unconfigured_reason(self) -> str | None:
        """Set when ``OPENAI_API_KEY`` is missing."""
        return None if self.settings.openai_api_key else "OPENAI_API_KEY is not set"

    def build_service(self, *, voice: str, sample_rate_hz: int, language: str | None) -> TTSService:
        """An `OpenAIPCMTTSService` producing s16le at `sample_rate_hz` (`language` unused)."""
        import_sdk("openai", "openai")
        import_sdk("pipecat.services.openai.tts", "pipecat-ai[openai]")
        from app.services.providers.tts.openai_service import OpenAIPCMTTSService

        key = self.settings.openai_api_key
        service = OpenAIPCMTTSService(
            api_key=key.get_secret_value() if key else None,
            base_url=self.settings.openai_base_url or None,
            sample_rate=sample_rate_hz,
            settings=OpenAIPCMTTSService.Settings(model=self.settings.openai_tts_model, voice=voice),
        )
        # No SDK retries and a bounded wait: a caller cannot sit through backoff.
        service._client = service._client.with_options(
            max_retries=0, timeout=self.settings.openai_audio_timeout_seconds
        )
        return service

    async def synthesize_pcm(self, text: str, *, voice: str, sample_rate_hz: int) -> bytes:
        """One ``POST /v1/audio/speech`` (``response_format=pcm``, 24 kHz), resampled to `sample_rate_hz`.

        Raises:
            ProviderError: the request failed or timed out (no retries).
        """
        openai: Any = import_sdk("openai", "openai")
        key = self.settings.openai_api_key
        client = openai.AsyncOpenAI(
            api_key=key.get_secret_value() if key else None,
            base_url=self.settings.openai_base_url or None,
            max_retries=0,
            timeout=self.settings.openai_audio_timeout_seconds,
        )
        try:
            response = await client.audio.speech.create(
                model=self.settings.openai_tts_model, voice=voice, input=text, response_format="pcm"
            )
            pcm = bytes(response.content)
        except openai.OpenAIError as exc:
            raise ProviderError(f"OpenAI speech failed: {type(exc).__name__}") from exc
        finally:
            await client.close()
        return resample_pcm(pcm, self.native_sample_rate_hz, sample_rate_hz)
