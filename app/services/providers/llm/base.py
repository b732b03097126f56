"""The LLM provider base class and the `AI_MODEL` spec (``provider`` or ``provider:model``).

`AI_MODEL` uses LangChain 1.x's ``init_chat_model`` spelling, ``provider:model``
(``openai:gpt-4o-mini``, ``anthropic:claude-sonnet-4-5``); a bare provider name picks that
provider's default model. `ModelSpec.parse` is the one parser of that text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from langchain_core.language_models import BaseChatModel

from app.services.providers.base import (
    Capability,
    Provider,
    ProviderNotConfigured,
    ProviderStatus,
    UnknownProvider,
    import_sdk,
)

__all__ = ["LLMProvider", "ModelSpec", "ProviderNotConfigured", "UnknownProvider"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed `AI_MODEL`: provider name and model name ('' = provider default)."""

    provider: str
    model: str = ""

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Parse ``openai``, ``gemini`` or ``provider:model-name`` (case-insensitive provider).

        The model part may itself hold colons (Ollama tags: ``openai_compatible:llama3.2:3b``).

        Raises:
            UnknownProvider: empty text.
        """
        provider, _, model = text.strip().partition(":")
        if not provider.strip():
            raise UnknownProvider("empty AI_MODEL")
        return cls(provider.strip().lower(), model.strip())

    def __str__(self) -> str:
        """``provider:model``, or just the provider."""
        return f"{self.provider}:{self.model}" if self.model else self.provider


class LLMProvider(Provider):
    """Makes LangChain chat models for one vendor (capability `llm`).

    Subclasses set `name`, `label`, `settings_class` and implement `default_model`,
    `is_configured` and `create`. Each chat model gets the request timeout
    (`LLM_REQUEST_TIMEOUT_SECONDS`, s) and retry count (`LLM_MAX_RETRIES`; the vendor SDKs
    retry 429 and 5xx with exponential backoff) from the gateway's settings.
    """

    capability: ClassVar[Capability] = Capability.LLM
    #: The variable holding the API key, named in "not configured" messages.
    key_env: ClassVar[str] = ""
    #: (module, package to install) of the SDK `create` imports, for `load_sdk`.
    sdk: ClassVar[tuple[tuple[str, str], ...]] = ()

    def load_sdk(self) -> None:
        """Import the SDK now (the factory runs this in a worker thread before first use).

        Raises:
            MissingDependency: the SDK is not installed.
        """
        for module, package in self.sdk:
            import_sdk(module, package)

    def default_model(self) -> str:
        """The model name used when `AI_MODEL` gives none."""
        raise NotImplementedError

    def create(self, model: str, *, timeout_s: float, max_retries: int) -> BaseChatModel:
        """Build a chat model for `model`.

        Args:
            model: the vendor's model name, e.g. ``"gpt-4o-mini"``.
            timeout_s: per-request timeout, in s.
            max_retries: SDK retries of 429/5xx answers.

        Raises:
            ProviderNotConfigured: no API key (or base URL).
            MissingDependency: the SDK is not installed.
        """
        raise NotImplementedError

    def not_configured_detail(self) -> str:
        """Why the provider cannot serve a call, for the status page."""
        return f"{self.key_env} is not set" if self.key_env else "not configured"

    def status(self) -> ProviderStatus:
        """Configured or not, the default model, and how to configure it; never the key."""
        ok = self.is_configured()
        detail = (
            f"{self.key_env} set, default model {self.default_model()}"
            if ok
            else self.not_configured_detail()
        )
        return ProviderStatus(
            self.name, self.capability, self.label or self.name, ok, detail, self.env_names()
        )

    async def aclose_models(self, models: Sequence[BaseChatModel]) -> None:
        """Release what `models` (built by `create`) hold; default: nothing.

        Args:
            models: the chat models the factory built from this provider.
        """
        return None
