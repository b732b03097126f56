"""Google Gemini chat models via `langchain-google-genai` (google-genai SDK, REST)."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.language_models import BaseChatModel
from langchain_google_genai import ChatGoogleGenerativeAI

from app.services.providers.llm.base import LLMProvider, ProviderNotConfigured


class GeminiProvider(LLMProvider):
    """`ChatGoogleGenerativeAI`, honouring `GEMINI_BASE_URL`.

    The google-genai SDK sends through aiohttp when it is installed (it is, for the
    other clients) and opens one session per model; `aclose` closes them.
    """

    name = "gemini"

    def default_model(self) -> str:
        """`GEMINI_MODEL_NAME`."""
        return self.settings.gemini_model_name

    def is_configured(self) -> bool:
        """True when `GEMINI_API_KEY` is set."""
        return self.settings.gemini_api_key is not None

    def create(self, model: str) -> BaseChatModel:
        """Build a `ChatGoogleGenerativeAI` with the request timeout and retries from settings."""
        key = self.settings.gemini_api_key
        if key is None:
            raise ProviderNotConfigured("GEMINI_API_KEY is not set")
        return ChatGoogleGenerativeAI(
            model=model,
            google_api_key=key,
            base_url=self.settings.gemini_base_url,
            timeout=self.settings.llm_request_timeout_seconds,
            max_retries=self.settings.llm_max_retries,
        )

    async def aclose(self, models: Sequence[BaseChatModel]) -> None:
        """Close the async HTTP session of each of `models`."""
        for model in models:
            client = getattr(model, "client", None)
            if client is not None:
                await client.aio.aclose()
