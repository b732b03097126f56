"""The provider base class and the `AI_MODEL` spec (`openai`, `gemini`, `provider:model`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from app.core.config import Settings


class UnknownProvider(ValueError):
    """`AI_MODEL` names a provider the gateway does not have."""


class ProviderNotConfigured(RuntimeError):
    """The provider exists but has no API key configured."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed `AI_MODEL`: provider name and model name ('' = provider default)."""

    provider: str
    model: str = ""

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Parse ``openai``, ``gemini`` or ``provider:model-name`` (case-insensitive provider).

        Raises:
            UnknownProvider: empty text.
        """
        provider, _, model = text.strip().partition(":")
        if not provider:
            raise UnknownProvider("empty AI_MODEL")
        return cls(provider.lower(), model.strip())

    def __str__(self) -> str:
        """``provider:model``, or just the provider."""
        return f"{self.provider}:{self.model}" if self.model else self.provider


class LLMProvider(ABC):
    """Makes LangChain chat models for one vendor.

    Subclasses set `name` and implement `create`. Each chat model gets the request
    timeout (`LLM_REQUEST_TIMEOUT_SECONDS`) and retry count (`LLM_MAX_RETRIES`; the
    vendor SDKs retry 429 and 5xx with exponential backoff).
    """

    name: str = ""

    def __init__(self, settings: Settings) -> None:
        """Keep the settings the models are built from."""
        self.settings = settings

    @abstractmethod
    def default_model(self) -> str:
        """The model name used when `AI_MODEL` gives none."""

    @abstractmethod
    def is_configured(self) -> bool:
        """True when an API key is set."""

    @abstractmethod
    def create(self, model: str) -> BaseChatModel:
        """Build a chat model for `model`.

        Raises:
            ProviderNotConfigured: no API key.
        """

    async def aclose(self, models: Sequence[BaseChatModel]) -> None:
        """Release the resources behind `models` and what they share; default: nothing.

        Args:
            models: the chat models `create` built (the factory's cache for this provider).
        """
        return None
