"""Offline text-to-speech with the local ``espeak-ng`` binary (Debian package ``espeak-ng``).

Robotic but instant and free of any network: the engine of the offline demo and of
tests. The pipecat service is `EspeakTTSService` in
`app.services.providers.tts.espeak_service`, imported on first use.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING, ClassVar

from app.services.providers.base import ProviderError, ProviderSettings, import_sdk
from app.services.providers.registry import register
from app.services.providers.tts.base import TTSProvider, resample_pcm

if TYPE_CHECKING:
    from pipecat.services.tts_service import TTSService

#: Size of the WAV header espeak-ng writes on ``--stdout``, in bytes (rate at bytes 24-27).
WAV_HEADER_BYTES = 44


class EspeakSettings(ProviderSettings):
    """``ESPEAK_BINARY``, ``ESPEAK_VOICE`` and ``ESPEAK_WORDS_PER_MINUTE`` (espeak-ng ``-s``)."""

    espeak_binary: str = "espeak-ng"
    espeak_voice: str = "en-us"
    espeak_words_per_minute: int = 160


@register
class EspeakTTSProvider(TTSProvider):
    """espeak-ng, one local process per sentence."""

    name = "espeak"
    label = "espeak-ng (offline)"
    settings_class = EspeakSettings
    streaming: ClassVar[bool] = False
    offline: ClassVar[bool] = True
    native_sample_rate_hz: ClassVar[int] = 22050
    settings: EspeakSettings

    def voice(self) -> str:
        """``ESPEAK_VOICE``."""
        return self.settings.espeak_voice

    def unconfigured_reason(self) -> str | None:
        """Set when the espeak-ng binary is not on ``PATH``."""
        if shutil.which(self.settings.espeak_binary) is None:
            return f"{self.settings.espeak_binary} is not installed (apt-get install espeak-ng)"
        return None

    def build_service(self, *, voice: str, sample_rate_hz: int, language: str | None) -> TTSService:
        """An `EspeakTTSService` producing s16le at `sample_rate_hz` (`language` unused: pick a voice)."""
        import_sdk("pipecat", "pipecat-ai")
        from app.services.providers.tts.espeak_service import EspeakTTSService

        return EspeakTTSService(
            sample_rate=sample_rate_hz,
            binary=self.settings.espeak_binary,
            voice=voice,
            words_per_minute=self.settings.espeak_words_per_minute,
        )

    async def synthesize_pcm(self, text: str, *, voice: str, sample_rate_hz: int) -> bytes:
        """One ``espeak-ng --stdout`` run (text on stdin), resampled to `sample_rate_hz`.

        Raises:
            ProviderError: espeak-ng could not start, failed, or wrote no audio.
        """
        try:
            process = await asyncio.create_subprocess_exec(
                self.settings.espeak_binary,
                "--stdout",
                "-v",
                voice,
                "-s",
                str(self.settings.espeak_words_per_minute),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ProviderError(f"espeak-ng could not start: {exc}") from exc
        wav, err = await process.communicate(text.encode("utf-8") + b"\n")
        if process.returncode != 0 or len(wav) <= WAV_HEADER_BYTES or wav[:4] != b"RIFF":
            detail = err.decode("utf-8", "replace").strip()[:200]
            raise ProviderError(f"espeak-ng exited with status {process.returncode}: {detail}")
        rate_hz = int.from_bytes(wav[24:28], "little")
        return resample_pcm(wav[WAV_HEADER_BYTES:], rate_hz, sample_rate_hz)
