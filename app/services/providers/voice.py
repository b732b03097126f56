"""What the speech-to-text and text-to-speech providers share beyond `Provider`.

`VoiceProvider` reports why it is not configured (a missing key, binary or package),
so the status page can say so; `pipecat_language` maps a prompt's BCP-47 tag to
pipecat's `Language` enum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.services.providers.base import Provider, ProviderStatus, import_sdk

if TYPE_CHECKING:
    from pipecat.transcriptions.language import Language


def pipecat_language(code: str) -> Language:
    """Map a BCP-47 language tag to pipecat's `Language` enum (imports pipecat).

    Args:
        code: e.g. ``"en"``, ``"en-US"``, ``"de"``.

    Raises:
        ValueError: pipecat knows no such language.
    """
    language_module: Any = import_sdk("pipecat.transcriptions.language", "pipecat-ai")
    try:
        return language_module.Language(code.strip())  # type: ignore[no-any-return]
    except ValueError as exc:
        raise ValueError(f"unknown language tag '{code}'") from exc


class VoiceProvider(Provider):
    """A provider that can say why it cannot serve a call (`unconfigured_reason`)."""

    def unconfigured_reason(self) -> str | None:
        """Why the provider cannot serve a call now, or None when it can; default: None."""
        return None

    def is_configured(self) -> bool:
        """True when `unconfigured_reason` is None."""
        return self.unconfigured_reason() is None

    def status(self) -> ProviderStatus:
        """Configured or not, with the reason (``"DEEPGRAM_API_KEY is not set"``); never a secret."""
        reason = self.unconfigured_reason()
        return ProviderStatus(
            self.name,
            self.capability,
            self.label or self.name,
            reason is None,
            reason or "ready",
            self.env_names(),
        )
