"""Turns an `AI_MODEL` spec into a (cached) LangChain chat model."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from app.core.config import Settings
from app.services.providers.llm.base import LLMProvider, ModelSpec, UnknownProvider
from app.services.providers.llm.gemini import GeminiProvider
from app.services.providers.llm.openai import OpenAIProvider

PROVIDERS: dict[str, type[LLMProvider]] = {
    OpenAIProvider.name: OpenAIProvider,
    GeminiProvider.name: GeminiProvider,
}


class ModelFactory:
    """Resolves specs and builds one chat model per (provider, model), reused across turns."""

    def __init__(self, settings: Settings) -> None:
        """Instantiate every registered provider."""
        self.providers = {name: cls(settings) for name, cls in PROVIDERS.items()}
        self._models: dict[ModelSpec, BaseChatModel] = {}

    def resolve(self, text: str) -> ModelSpec:
        """Parse `text` and fill in the provider's default model name.

        Raises:
            UnknownProvider: the provider is not registered.
        """
        spec = ModelSpec.parse(text)
        provider = self.providers.get(spec.provider)
        if provider is None:
            known = ", ".join(sorted(self.providers))
            raise UnknownProvider(f"unknown AI_MODEL provider '{spec.provider}' (known: {known})")
        return ModelSpec(spec.provider, spec.model or provider.default_model())

    def get(self, spec: ModelSpec) -> BaseChatModel:
        """The chat model for a resolved spec.

        Raises:
            UnknownProvider: the provider is not registered.
            ProviderNotConfigured: it has no API key.
        """
        model = self._models.get(spec)
        if model is None:
            provider = self.providers.get(spec.provider)
            if provider is None:
                raise UnknownProvider(f"unknown AI_MODEL provider '{spec.provider}'")
            model = provider.create(spec.model)
            self._models[spec] = model
        return model

    async def aclose(self) -> None:
        """Close every provider's resources, given the models built from it; the cache empties."""
        models, self._models = self._models, {}
        for name, provider in self.providers.items():
            await provider.aclose([m for spec, m in models.items() if spec.provider == name])

    def configured(self) -> dict[str, bool]:
        """Provider name -> whether its API key is set (never the key)."""
        return {name: p.is_configured() for name, p in self.providers.items()}
