"""Offline speech-to-text with CMU pocketsphinx (the English model its wheel ships).

Labelled "offline, low accuracy": it needs no key and no network, which makes it the
engine of the offline demo and of tests, but it misrecognises much of real telephone
speech. The pipecat service is `PocketsphinxSTTService` in
`app.services.providers.stt.pocketsphinx_service`, imported on first use.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, ClassVar

from app.services.providers.base import import_sdk
from app.services.providers.registry import register
from app.services.providers.stt.base import STTProvider
from app.services.providers.voice import pipecat_language

if TYPE_CHECKING:
    from pipecat.services.stt_service import STTService


@register
class PocketsphinxSTTProvider(STTProvider):
    """pocketsphinx on each utterance after the end of turn; US English only."""

    name = "pocketsphinx"
    label = "pocketsphinx (offline, low accuracy)"
    streaming: ClassVar[bool] = False
    offline: ClassVar[bool] = True
    default_model: ClassVar[str] = "en-us"
    default_language: ClassVar[str] = "en-US"

    def unconfigured_reason(self) -> str | None:
        """Set when the ``pocketsphinx`` package is not installed."""
        if importlib.util.find_spec("pocketsphinx") is None:
            return "the pocketsphinx package is not installed"
        return None

    def build_service(self, *, sample_rate_hz: int, language: str, model: str) -> STTService:
        """A `PocketsphinxSTTService` for caller audio at `sample_rate_hz` (`model` is ignored)."""
        import_sdk("pocketsphinx", "pocketsphinx")
        import_sdk("pipecat", "pipecat-ai")
        from app.services.providers.stt.pocketsphinx_service import PocketsphinxSTTService

        return PocketsphinxSTTService(sample_rate=sample_rate_hz, language=pipecat_language(language))
