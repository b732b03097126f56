"""The provider registry: every LLM, STT and TTS provider by capability and name.

Adding a provider is one module plus one line in `BUILTIN_MODULES`. Registering
imports only the provider module, never its SDK (that happens on first use).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any, TypeVar

from app.services.providers.base import (
    Capability,
    Provider,
    ProviderSettings,
    ProviderStatus,
    UnknownProvider,
)

P = TypeVar("P", bound=Provider)

#: Provider modules loaded by `ProviderRegistry.builtin()`. Each calls `register` on import.
BUILTIN_MODULES: tuple[str, ...] = (
    "app.services.providers.llm.anthropic",
    "app.services.providers.llm.gemini",
    "app.services.providers.llm.offline",
    "app.services.providers.llm.openai",
    "app.services.providers.llm.openai_compatible",
    "app.services.providers.stt.deepgram",
    "app.services.providers.stt.openai",
    "app.services.providers.stt.pocketsphinx",
    "app.services.providers.tts.deepgram",
    "app.services.providers.tts.espeak",
    "app.services.providers.tts.openai",
)

_CLASSES: dict[tuple[Capability, str], type[Provider]] = {}


def _key(text: str) -> tuple[Capability, str]:
    capability, _, name = text.partition(":")
    return Capability(capability), name


def register(cls: type[P]) -> type[P]:
    """Class decorator: make `cls` known under (`cls.capability`, `cls.name`).

    Raises:
        ValueError: another class already holds that name for that capability.
    """
    key = (cls.capability, cls.name)
    if key in _CLASSES and _CLASSES[key] is not cls:
        raise ValueError(f"{cls.capability} provider '{cls.name}' registered twice")
    _CLASSES[key] = cls
    return cls


def registered(capability: Capability) -> list[type[Provider]]:
    """The registered classes of one capability, by name."""
    return sorted((c for (cap, _), c in _CLASSES.items() if cap is capability), key=lambda c: c.name)


class ProviderRegistry:
    """One instance of each registered provider, with its settings, for one process.

    Args:
        providers: the instances to hold (tests pass their own).
    """

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers: dict[tuple[Capability, str], Provider] = {
            (p.capability, p.name): p for p in providers
        }

    @classmethod
    def builtin(
        cls,
        settings: dict[str, ProviderSettings] | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
    ) -> ProviderRegistry:
        """Instantiate every provider of `BUILTIN_MODULES`.

        Args:
            settings: optional explicit settings by ``"<capability>:<name>"`` (tests);
                others read their own environment variables.
            overrides: optional field values by ``"<capability>:<name>"``, e.g.
                ``{"llm:offline": {"base_url": "http://127.0.0.1:8099/v1"}}``; they win over
                the environment (`Settings.provider_overrides`, set by the CLI and tests).
        """
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        given = dict(settings or {})
        for key, values in (overrides or {}).items():
            cls_ = _CLASSES.get(_key(key))
            if cls_ is not None and key not in given:
                given[key] = cls_.settings_class(**values)
        return cls(c(given.get(f"{cap}:{name}")) for (cap, name), c in sorted(_CLASSES.items()))

    def get(self, capability: Capability, name: str) -> Provider:
        """The provider named `name` (case-insensitive).

        Raises:
            UnknownProvider: none of that capability has that name; the message lists the known ones.
        """
        provider = self._providers.get((capability, name.strip().lower()))
        if provider is None:
            known = ", ".join(self.names(capability)) or "none"
            raise UnknownProvider(f"unknown {capability} provider '{name}' (known: {known})")
        return provider

    def all(self, capability: Capability) -> list[Provider]:
        """The providers of one capability, by name."""
        return [p for (cap, _), p in sorted(self._providers.items()) if cap is capability]

    def names(self, capability: Capability) -> list[str]:
        """Registered names of one capability, sorted."""
        return [p.name for p in self.all(capability)]

    def statuses(self) -> list[ProviderStatus]:
        """Every provider's status, for `/api/v1/status` and the UI."""
        return [p.status() for _, p in sorted(self._providers.items())]

    def secrets(self) -> list[str]:
        """Every configured secret value, for the log filter."""
        return [s for p in self._providers.values() for s in p.secrets()]

    async def aclose(self) -> None:
        """Close every provider's shared clients."""
        for provider in self._providers.values():
            await provider.aclose()
