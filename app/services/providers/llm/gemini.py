"""Google Gemini chat models via `langchain-google-genai` (``AI_MODEL=gemini`` or ``gemini:<model>``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from app.services.providers.base import ProviderNotConfigured, ProviderSettings, import_sdk
from app.services.providers.llm.base import LLMProvider
from app.services.providers.registry import register

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class GeminiSettings(ProviderSettings):
    """`GEMINI_API_KEY`, `GEMINI_BASE_URL` (a proxy speaking the Gemini API), `GEMINI_MODEL_NAME`."""

    model_config = SettingsConfigDict(env_prefix="GEMINI_")

    api_key: SecretStr | None = None
    base_url: str | None = None
    model_name: str = "gemini-2.5-flash"


@register
class GeminiProvider(LLMProvider):
    """`ChatGoogleGenerativeAI` (google-genai SDK, REST).

    The google-genai SDK sends through aiohttp when it is installed (it is, for the
    other clients) and opens one session per model; `aclose_models` closes them.
    """

    name = "gemini"
    label = "Google Gemini"
    key_env = "GEMINI_API_KEY"
    sdk = (("langchain_google_genai", "langchain-google-genai"),)
    settings_class: ClassVar[type[ProviderSettings]] = GeminiSettings
    settings: GeminiSettings

    def default_model(self) -> str:
        """`GEMINI_MODEL_NAME`."""
        return self.settings.model_name

    def is_configured(self) -> bool:
        """True when `GEMINI_API_KEY` is set."""
        return self.settings.api_key is not None

    def create(self, model: str, *, timeout_s: float, max_retries: int) -> BaseChatModel:
        """Build a `ChatGoogleGenerativeAI` (see `LLMProvider.create`)."""
        key = self.settings.api_key
        if key is None:
            raise ProviderNotConfigured(self.not_configured_detail())
        sdk = import_sdk("langchain_google_genai", "langchain-google-genai")
        chat_model: BaseChatModel = sdk.ChatGoogleGenerativeAI(
            model=model,
            google_api_key=key,
            base_url=self.settings.base_url,
            timeout=timeout_s,
            max_retries=max_retries,
        )
        return chat_model

    async def aclose_models(self, models: Sequence[BaseChatModel]) -> None:
        """Close the async HTTP session of each of `models`."""
        for model in models:
            client = getattr(model, "client", None)
            if client is not None:
                await client.aio.aclose()
