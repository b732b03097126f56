"""Anthropic Claude chat models via `langchain-anthropic` (``AI_MODEL=anthropic:<model>``).

Wire protocol: the Messages API, ``POST {ANTHROPIC_BASE_URL}/v1/messages``
(https://docs.anthropic.com/en/api/messages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from app.services.providers.base import ProviderNotConfigured, ProviderSettings, import_sdk
from app.services.providers.llm.base import LLMProvider
from app.services.providers.registry import register

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class AnthropicSettings(ProviderSettings):
    """`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `ANTHROPIC_MODEL_NAME`, `ANTHROPIC_MAX_TOKENS`.

    `ANTHROPIC_BASE_URL` defaults to https://api.anthropic.com.
    """

    model_config = SettingsConfigDict(env_prefix="ANTHROPIC_")

    api_key: SecretStr | None = None
    base_url: str | None = None
    model_name: str = "claude-haiku-4-5"
    max_tokens: int = 1024


@register
class AnthropicProvider(LLMProvider):
    """`ChatAnthropic`.

    langchain-anthropic keeps one cached httpx client per (base URL, timeout) for the whole
    process and shares it between models, so there is nothing per model to close.
    """

    name = "anthropic"
    label = "Anthropic Claude"
    key_env = "ANTHROPIC_API_KEY"
    sdk = (("langchain_anthropic", "langchain-anthropic"),)
    settings_class: ClassVar[type[ProviderSettings]] = AnthropicSettings
    settings: AnthropicSettings

    def default_model(self) -> str:
        """`ANTHROPIC_MODEL_NAME`."""
        return self.settings.model_name

    def is_configured(self) -> bool:
        """True when `ANTHROPIC_API_KEY` is set."""
        return self.settings.api_key is not None

    def create(self, model: str, *, timeout_s: float, max_retries: int) -> BaseChatModel:
        """Build a `ChatAnthropic` (see `LLMProvider.create`), answers capped at `ANTHROPIC_MAX_TOKENS`."""
        key = self.settings.api_key
        if key is None:
            raise ProviderNotConfigured(self.not_configured_detail())
        sdk = import_sdk("langchain_anthropic", "langchain-anthropic")
        chat_model: BaseChatModel = sdk.ChatAnthropic(
            model=model,
            api_key=key,
            base_url=self.settings.base_url or "https://api.anthropic.com",
            timeout=timeout_s,
            max_retries=max_retries,
            max_tokens=self.settings.max_tokens,
        )
        return chat_model
