"""What every provider (LLM, STT, TTS) shares: its name, its own settings, its status.

One module per provider (pipecat's ``services/<vendor>/{llm,stt,tts}.py`` layout), each
defining one `Provider` subclass and registering it with `app.services.providers.registry`.
A provider's vendor SDK is imported inside its methods, on first use, through
`import_sdk`, which names the package to install when it is missing.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Capability(enum.StrEnum):
    """What a provider does for a call."""

    LLM = "llm"
    STT = "stt"
    TTS = "tts"


class ProviderError(Exception):
    """Base of the provider errors."""


class UnknownProvider(ProviderError, ValueError):
    """A name (``AI_MODEL``, a prompt's STT/TTS setting) that no registered provider has."""


class ProviderNotConfigured(ProviderError, RuntimeError):
    """The provider exists but lacks what it needs (an API key, a base URL, a binary)."""


class MissingDependency(ProviderError, ImportError):
    """The provider's SDK is not installed; the message names the package to install."""


class ProviderSettings(BaseSettings):
    """Base of each provider's own settings (its own environment variable names).

    Subclasses declare fields; values come from the environment and `.env`, exactly as
    for `app.core.config.Settings`. An empty variable counts as unset.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """What the status page and the model pickers show of a provider (never a secret).

    Attributes:
        name: registry name (``openai``, ``deepgram``, ``espeak``).
        capability: ``llm``, ``stt`` or ``tts``.
        label: human label, e.g. ``"OpenAI"`` or ``"pocketsphinx (offline, low accuracy)"``.
        configured: True when it can serve a call now.
        detail: why not, or a short note (``"key set"``, ``"OPENAI_API_KEY is not set"``).
        env: the environment variables it reads.
    """

    name: str
    capability: Capability
    label: str
    configured: bool
    detail: str
    env: tuple[str, ...] = ()


def import_sdk(module: str, package: str) -> ModuleType:
    """Import a provider's SDK on first use.

    Args:
        module: dotted module name, e.g. ``"langchain_anthropic"``.
        package: what to install when it is missing, e.g. ``"langchain-anthropic"``.

    Raises:
        MissingDependency: the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"{module} is not installed: `pip install {package}`") from exc


class Provider:
    """Base of every provider. Subclasses set the class attributes and may override `status`.

    Class attributes:
        name: registry name, lower case.
        capability: what it does.
        label: human label.
        settings_class: its `ProviderSettings` subclass.
    """

    name: ClassVar[str] = ""
    capability: ClassVar[Capability]
    label: ClassVar[str] = ""
    settings_class: ClassVar[type[ProviderSettings]] = ProviderSettings

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        """Keep the provider's settings (read from the environment when not given)."""
        self.settings = settings if settings is not None else self.settings_class()

    def is_configured(self) -> bool:
        """True when the provider can serve a call now; default: always."""
        return True

    def secrets(self) -> list[str]:
        """Secret values the log filter must mask (API keys); default: every `SecretStr` field."""
        values: list[str] = []
        for field in type(self.settings).model_fields:
            value = getattr(self.settings, field)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    def env_names(self) -> tuple[str, ...]:
        """The environment variables this provider reads (upper-case field names or aliases)."""
        prefix = str(type(self.settings).model_config.get("env_prefix", ""))
        names = []
        for field, info in type(self.settings).model_fields.items():
            alias = info.validation_alias if isinstance(info.validation_alias, str) else None
            names.append((alias or info.alias or f"{prefix}{field}").upper())
        return tuple(names)

    def status(self) -> ProviderStatus:
        """Configured or not, and why; never a secret."""
        ok = self.is_configured()
        return ProviderStatus(
            self.name,
            self.capability,
            self.label or self.name,
            ok,
            "ready" if ok else "not configured",
            self.env_names(),
        )

    async def aclose(self) -> None:
        """Release shared clients (HTTP sessions); default: nothing."""
        return None
