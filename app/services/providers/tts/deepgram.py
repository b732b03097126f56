"""Deepgram Aura streaming text-to-speech: the ``/v1/speak`` WebSocket through pipecat's `DeepgramTTSService`.

Text goes up as ``{"type": "Speak", "text": ...}`` messages and ``{"type": "Flush"}`` at
the end of an answer; audio comes back as binary messages of raw ``linear16`` at the
``sample_rate`` asked for in the URL (Aura produces 8, 16, 24, 32 or 48 kHz itself, so
nothing is resampled), then ``{"type": "Flushed"}``. Barge-in sends ``{"type": "Clear"}``.
Chosen over ElevenLabs because pipecat's service takes a plain base URL, so
``DEEPGRAM_BASE_URL`` (shared with Deepgram STT) can point it at the wire-level stand-in.
Source: https://developers.deepgram.com/reference/text-to-speech/speak-streaming
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from app.services.providers.base import ProviderError, import_sdk
from app.services.providers.registry import register
from app.services.providers.stt.deepgram import DeepgramSettings
from app.services.providers.tts.base import TTSProvider

if TYPE_CHECKING:
    from pipecat.services.tts_service import TTSService

#: Aura's default WebSocket endpoint.
DEEPGRAM_WS_URL = "wss://api.deepgram.com"
#: Aura's default REST endpoint (one-shot speech, e.g. the prompt page's voice sample).
DEEPGRAM_HTTP_URL = "https://api.deepgram.com"
#: Longest wait for a one-shot speech request, in s.
SPEAK_REQUEST_TIMEOUT_S = 10.0


def websocket_base_url(base_url: str | None) -> str:
    """``DEEPGRAM_BASE_URL`` as a WebSocket URL: ``http`` → ``ws``, ``https`` → ``wss``, empty → Deepgram.

    Args:
        base_url: e.g. ``"http://127.0.0.1:8099"``, ``"https://api.deepgram.com"`` or ``None``.
    """
    if not base_url:
        return DEEPGRAM_WS_URL
    url = base_url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url.removeprefix("https://")
    if url.startswith("http://"):
        return "ws://" + url.removeprefix("http://")
    return url if "://" in url else "wss://" + url


@register
class DeepgramTTSProvider(TTSProvider):
    """Deepgram Aura over its WebSocket, streaming audio while the answer's text arrives."""

    name = "deepgram"
    label = "Deepgram Aura (streaming)"
    settings_class = DeepgramSettings
    streaming: ClassVar[bool] = True
    settings: DeepgramSettings

    def voice(self) -> str:
        """``DEEPGRAM_TTS_VOICE`` (an Aura model name such as ``aura-2-helena-en``)."""
        return self.settings.deepgram_tts_voice

    def unconfigured_reason(self) -> str | None:
        """Set when ``DEEPGRAM_API_KEY`` is missing."""
        return None if self.settings.deepgram_api_key else "DEEPGRAM_API_KEY is not set"

    def build_service(self, *, voice: str, sample_rate_hz: int, language: str | None) -> TTSService:
        """A `DeepgramTTSService` for the Aura `voice`, linear16 at `sample_rate_hz`."""
        tts: Any = import_sdk("pipecat.services.deepgram.tts", "pipecat-ai[deepgram]")
        key = self.settings.deepgram_api_key
        service: TTSService = tts.DeepgramTTSService(
            api_key=key.get_secret_value() if key else "",
            base_url=websocket_base_url(self.settings.deepgram_base_url),
            sample_rate=sample_rate_hz,
            encoding="linear16",
            settings=tts.DeepgramTTSService.Settings(voice=voice),
        )
        return service

    async def synthesize_pcm(self, text: str, *, voice: str, sample_rate_hz: int) -> bytes:
        """One ``POST /v1/speak`` (REST, ``encoding=linear16``, ``container=none``) at `sample_rate_hz`.

        Source: https://developers.deepgram.com/reference/text-to-speech/speak-request

        Raises:
            ProviderError: the request failed, timed out or was refused.
        """
        key = self.settings.deepgram_api_key
        base = (self.settings.deepgram_base_url or DEEPGRAM_HTTP_URL).rstrip("/")
        params = {
            "model": voice,
            "encoding": "linear16",
            "sample_rate": str(sample_rate_hz),
            "container": "none",
        }
        headers = {"Authorization": f"Token {key.get_secret_value() if key else ''}"}
        try:
            async with httpx.AsyncClient(timeout=SPEAK_REQUEST_TIMEOUT_S) as client:
                response = await client.post(
                    f"{base}/v1/speak", params=params, headers=headers, json={"text": text}
                )
        except httpx.HTTPError as exc:
            raise ProviderError(f"Deepgram speak failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ProviderError(f"Deepgram speak answered HTTP {response.status_code}")
        return response.content
