"""OpenAI chat models via `langchain-openai` (``AI_MODEL=openai`` or ``openai:<model>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from app.services.providers.base import ProviderNotConfigured, ProviderSettings, import_sdk
from app.services.providers.llm.base import LLMProvider
from app.services.providers.registry import register

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class OpenAISettings(ProviderSettings):
    """`OPENAI_API_KEY`, `OPENAI_BASE_URL` (a proxy or gateway speaking OpenAI's API), `OPENAI_MODEL_NAME`."""

    model_config = SettingsConfigDict(env_prefix="OPENAI_")

    api_key: SecretStr | None = None
    base_url: str | None = None
    model_name: str = "gpt-4o-mini"


@register
class OpenAIProvider(LLMProvider):
    """`ChatOpenAI` over one HTTP client shared by all its models.

    The client is the SDK's `DefaultAioHttpClient` (httpx's API over aiohttp's pool, the
    SDK's ``aiohttp`` extra), with the SDK's own limits (1000 connections). Per request it
    costs a fraction of the CPU of the SDK's default httpx transport; see `app.core.http`.
    """

    name = "openai"
    label = "OpenAI"
    key_env = "OPENAI_API_KEY"
    sdk = (("openai", "openai[aiohttp]"), ("langchain_openai", "langchain-openai"))
    settings_class: ClassVar[type[ProviderSettings]] = OpenAISettings
    settings: OpenAISettings

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        """Keep the settings; the shared HTTP client opens its pool on first use."""
        super().__init__(settings)
        self._http: Any = None

    def default_model(self) -> str:
        """`OPENAI_MODEL_NAME`."""
        return self.settings.model_name

    def is_configured(self) -> bool:
        """True when `OPENAI_API_KEY` is set."""
        return self.settings.api_key is not None

    def api_key(self) -> SecretStr | None:
        """The key sent to the server (subclasses may allow none)."""
        return self.settings.api_key

    def base_url(self) -> str | None:
        """`OPENAI_BASE_URL` (None: api.openai.com)."""
        return self.settings.base_url

    def create(self, model: str, *, timeout_s: float, max_retries: int) -> BaseChatModel:
        """Build a `ChatOpenAI` (see `LLMProvider.create`)."""
        key = self.api_key()
        if not self.is_configured() or key is None:
            raise ProviderNotConfigured(self.not_configured_detail())
        chat_openai = import_sdk("langchain_openai", "langchain-openai").ChatOpenAI
        model_obj: BaseChatModel = chat_openai(
            model=model,
            api_key=key,
            base_url=self.base_url(),
            timeout=timeout_s,
            max_retries=max_retries,
            http_async_client=self._shared_http(),
        )
        return model_obj

    def _shared_http(self) -> Any:
        if self._http is None:
            self._http = import_sdk("openai", "openai[aiohttp]").DefaultAioHttpClient()
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP client all its models share (its aiohttp session)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
