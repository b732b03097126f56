"""A local or self-hosted OpenAI-compatible server (Ollama, vLLM, llama.cpp) beside OpenAI.

``AI_MODEL=openai_compatible`` or ``openai_compatible:<model>`` (Ollama tags keep their colon:
``openai_compatible:llama3.2:3b``). It has its own base URL and optional key, so OpenAI
itself (`OPENAI_*`) and a local server can serve different prompts of one gateway.
Ollama serves the API at ``http://localhost:11434/v1``, vLLM at ``http://localhost:8000/v1``,
llama.cpp's ``llama-server`` at ``http://localhost:8080/v1``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from app.services.providers.base import ProviderSettings
from app.services.providers.llm.openai import OpenAIProvider
from app.services.providers.registry import register

#: Sent when the server needs no key (the OpenAI SDK refuses an empty one).
NO_KEY = SecretStr("not-needed")


class OpenAICompatibleSettings(ProviderSettings):
    """`OPENAI_COMPATIBLE_BASE_URL`, `OPENAI_COMPATIBLE_API_KEY` (optional), `OPENAI_COMPATIBLE_MODEL`."""

    model_config = SettingsConfigDict(env_prefix="OPENAI_COMPATIBLE_")

    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = "llama3.2"


@register
class OpenAICompatibleProvider(OpenAIProvider):
    """`ChatOpenAI` pointed at `OPENAI_COMPATIBLE_BASE_URL`; configured when that is set."""

    name = "openai_compatible"
    label = "OpenAI-compatible server (Ollama, vLLM, llama.cpp)"
    key_env = "OPENAI_COMPATIBLE_BASE_URL"  # what makes it configured (the key is optional)
    settings_class: ClassVar[type[ProviderSettings]] = OpenAICompatibleSettings
    settings: OpenAICompatibleSettings  # type: ignore[assignment]

    def default_model(self) -> str:
        """`OPENAI_COMPATIBLE_MODEL`."""
        return self.settings.model

    def is_configured(self) -> bool:
        """True when `OPENAI_COMPATIBLE_BASE_URL` is set (the key is optional)."""
        return bool(self.settings.base_url)

    def api_key(self) -> SecretStr | None:
        """`OPENAI_COMPATIBLE_API_KEY`, or a placeholder for servers without auth."""
        return self.settings.api_key or NO_KEY

    def base_url(self) -> str | None:
        """`OPENAI_COMPATIBLE_BASE_URL`."""
        return self.settings.base_url
