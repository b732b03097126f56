"""OpenAI (and OpenAI-compatible) chat models via `langchain-openai`."""

from __future__ import annotations

from collections.abc import Sequence

import openai
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from app.core.config import Settings
from app.services.providers.llm.base import LLMProvider, ProviderNotConfigured


class OpenAIProvider(LLMProvider):
    """`ChatOpenAI`, honouring `OPENAI_BASE_URL` (any OpenAI-compatible endpoint).

    All its models share one HTTP client: the SDK's `DefaultAioHttpClient` (httpx2's API
    over aiohttp's pool, the SDK's ``aiohttp`` extra), with the SDK's own limits
    (1000 connections). Per request it costs a fraction of the CPU of the SDK's default
    httpx transport; see `app.core.http`.
    """

    name = "openai"

    def __init__(self, settings: Settings) -> None:
        """Keep the settings; the shared HTTP client opens its pool on first use."""
        super().__init__(settings)
        self._http: openai.DefaultAioHttpClient | None = None

    def default_model(self) -> str:
        """`OPENAI_MODEL_NAME`."""
        return self.settings.openai_model_name

    def is_configured(self) -> bool:
        """True when `OPENAI_API_KEY` is set."""
        return self.settings.openai_api_key is not None

    def create(self, model: str) -> BaseChatModel:
        """Build a `ChatOpenAI` with the request timeout and retries from settings."""
        key = self.settings.openai_api_key
        if key is None:
            raise ProviderNotConfigured("OPENAI_API_KEY is not set")
        return ChatOpenAI(
            model=model,
            api_key=key,
            base_url=self.settings.openai_base_url,
            timeout=self.settings.llm_request_timeout_seconds,
            max_retries=self.settings.llm_max_retries,
            http_async_client=self._shared_http(),
        )

    def _shared_http(self) -> openai.DefaultAioHttpClient:
        if self._http is None:
            self._http = openai.DefaultAioHttpClient()
        return self._http

    async def aclose(self, models: Sequence[BaseChatModel]) -> None:
        """Close the HTTP client all of `models` share (its aiohttp session)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
