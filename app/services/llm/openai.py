"""OpenAI (and OpenAI-compatible) chat models via `langchain-openai`."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from app.services.llm.base import LLMProvider, ProviderNotConfigured


class OpenAIProvider(LLMProvider):
    """`ChatOpenAI`, honouring `OPENAI_BASE_URL` (any OpenAI-compatible endpoint)."""

    name = "openai"

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
        )
