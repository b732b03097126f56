"""Turns an `AI_MODEL` spec into a (cached) LangChain chat model, from the provider registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from app.services.providers.base import Capability, ProviderError, UnknownProvider
from app.services.providers.llm.base import LLMProvider, ModelSpec

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from app.services.providers.registry import ProviderRegistry

logger = logging.getLogger(__name__)


class ModelFactory:
    """Resolves specs and builds one chat model per (provider, model), reused across turns.

    Args:
        registry: the process's providers; its `llm` ones are used.
        timeout_s: per-request timeout given to every chat model, in s
            (`LLM_REQUEST_TIMEOUT_SECONDS`).
        max_retries: SDK retries of 429/5xx answers (`LLM_MAX_RETRIES`).
    """

    def __init__(self, registry: ProviderRegistry, *, timeout_s: float = 10.0, max_retries: int = 2) -> None:
        """Keep the registry; models are built on first use."""
        self.registry = registry
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._models: dict[ModelSpec, BaseChatModel] = {}
        self._loaded: set[str] = set()

    def provider(self, name: str) -> LLMProvider:
        """The LLM provider named `name`.

        Raises:
            UnknownProvider: no such LLM provider (the message lists the known ones).
        """
        return cast(LLMProvider, self.registry.get(Capability.LLM, name))

    def providers(self) -> list[LLMProvider]:
        """Every LLM provider, by name."""
        return [cast(LLMProvider, p) for p in self.registry.all(Capability.LLM)]

    def resolve(self, text: str) -> ModelSpec:
        """Parse `text` (``provider`` or ``provider:model``) and fill in the provider's default model.

        Raises:
            UnknownProvider: empty text, or the provider is not registered.
        """
        spec = ModelSpec.parse(text)
        provider = self.provider(spec.provider)
        return ModelSpec(spec.provider, spec.model or provider.default_model())

    async def prepare(self, spec: ModelSpec) -> None:
        """Import the provider's SDK in a worker thread, once, so the event loop keeps serving.

        A vendor SDK takes about 1 s of CPU to import (several s of wall time on a busy
        2-core machine); importing it inside a turn would stall every other call.

        Raises:
            UnknownProvider: the provider is not registered.
            MissingDependency: its SDK is not installed.
        """
        provider = self.provider(spec.provider)
        if provider.name not in self._loaded:
            await asyncio.to_thread(provider.load_sdk)
            self._loaded.add(provider.name)

    async def preload(self, texts: Iterable[str | None]) -> None:
        """`prepare` the providers of these `AI_MODEL` values when configured; log, never raise.

        Args:
            texts: e.g. ``[DEFAULT_AI_MODEL, FALLBACK_AI_MODEL]``; None and unknown names are skipped.
        """
        for text in texts:
            if not text:
                continue
            try:
                spec = self.resolve(text)
                if self.provider(spec.provider).is_configured():
                    await self.prepare(spec)
            except ProviderError as exc:
                logger.warning("LLM provider for %s not preloaded: %s", text, exc)

    def get(self, spec: ModelSpec) -> BaseChatModel:
        """The chat model for a resolved spec.

        Raises:
            UnknownProvider: the provider is not registered.
            ProviderNotConfigured: it has no API key.
            MissingDependency: its SDK is not installed.
        """
        model = self._models.get(spec)
        if model is None:
            model = self.provider(spec.provider).create(
                spec.model, timeout_s=self._timeout_s, max_retries=self._max_retries
            )
            self._models[spec] = model
        return model

    async def aclose(self) -> None:
        """Close every provider's resources, given the models built from it; the cache empties."""
        models, self._models = self._models, {}
        for provider in self.providers():
            await provider.aclose_models([m for spec, m in models.items() if spec.provider == provider.name])
            await provider.aclose()

    def configured(self) -> dict[str, bool]:
        """Provider name -> whether it can serve a turn now (never the key)."""
        return {p.name: p.is_configured() for p in self.providers()}


__all__ = ["ModelFactory", "UnknownProvider"]
