"""The offline model: a clearly labelled stand-in that needs no key and no network.

Not a language model. It is the project's local stand-in server (the offline responder of
`app.testing.fake_llm`, started in-process by `ai-gateway serve`/`demo` when no LLM key is
set), reached over the OpenAI Chat Completions wire protocol. Every answer starts with
``[offline model]``; it calls a prompt's tools when the caller's words name one, so
"Try it" works with prompts and tools before a key is set. Turns it answers are recorded
as ``offline:<model>``, never as a real vendor's model.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from app.services.providers.base import ProviderSettings, ProviderStatus
from app.services.providers.llm.openai import OpenAIProvider
from app.services.providers.registry import register

#: The model name the offline stand-in answers as.
OFFLINE_MODEL = "offline-stand-in"


class OfflineSettings(ProviderSettings):
    """`OFFLINE_MODEL_BASE_URL`: the stand-in's OpenAI-compatible root (``http://127.0.0.1:<port>/v1``)."""

    model_config = SettingsConfigDict(env_prefix="OFFLINE_MODEL_")

    base_url: str | None = None


@register
class OfflineProvider(OpenAIProvider):
    """`ChatOpenAI` pointed at the offline stand-in; configured when its URL is set."""

    name = "offline"
    label = "Offline stand-in (canned answers, not a real model)"
    key_env = "OFFLINE_MODEL_BASE_URL"
    settings_class: ClassVar[type[ProviderSettings]] = OfflineSettings
    settings: OfflineSettings  # type: ignore[assignment]

    def default_model(self) -> str:
        """Always `OFFLINE_MODEL`."""
        return OFFLINE_MODEL

    def is_configured(self) -> bool:
        """True when the stand-in's URL is set (by `ai-gateway serve`/`demo` when no key is set)."""
        return bool(self.settings.base_url)

    def api_key(self) -> SecretStr | None:
        """A fixed, non-secret key (the stand-in checks only that one is sent)."""
        return SecretStr("offline")

    def secrets(self) -> list[str]:
        """None: the offline stand-in has no secret."""
        return []

    def base_url(self) -> str | None:
        """`OFFLINE_MODEL_BASE_URL`."""
        return self.settings.base_url

    def not_configured_detail(self) -> str:
        """How it gets enabled."""
        return "started by `ai-gateway serve` when no LLM key is set"

    def status(self) -> ProviderStatus:
        """Says plainly that it is a stand-in, not a model."""
        ok = self.is_configured()
        detail = "running: canned answers, for trying prompts and tools"
        if not ok:
            detail = self.not_configured_detail()
        return ProviderStatus(self.name, self.capability, self.label, ok, detail, self.env_names())
