"""The chat model factory: one model per spec, and nothing left open at shutdown."""

from __future__ import annotations

import pytest

from app.services.providers.base import UnknownProvider
from app.services.providers.llm import ModelFactory, ModelSpec
from app.services.providers.llm.gemini import GeminiSettings
from app.services.providers.llm.openai import OpenAISettings
from app.services.providers.registry import ProviderRegistry
from app.testing.fake_llm import FakeLLMServer


async def test_shutdown_closes_every_providers_http_sessions() -> None:
    async with FakeLLMServer() as srv:
        factory = ModelFactory(
            ProviderRegistry.builtin(
                {
                    "llm:openai": OpenAISettings(api_key="sk-test", base_url=srv.openai_base_url),
                    "llm:gemini": GeminiSettings(api_key="g-test", base_url=srv.gemini_base_url),
                }
            )
        )
        openai_model = factory.get(factory.resolve("openai"))
        gemini_model = factory.get(factory.resolve("gemini"))
        assert factory.get(factory.resolve("openai")) is openai_model  # cached per spec
        assert "offline model" in str((await openai_model.ainvoke("hi")).content)
        assert "offline model" in str((await gemini_model.ainvoke("hi")).content)
        openai_http = openai_model.http_async_client  # type: ignore[attr-defined]
        gemini_sessions = list(gemini_model.client._api_client._aiohttp_sessions.values())  # type: ignore[attr-defined]
        assert not openai_http.is_closed and gemini_sessions and not any(s.closed for s in gemini_sessions)
        await factory.aclose()
        assert openai_http.is_closed
        assert all(s.closed for s in gemini_sessions)
        assert factory.get(factory.resolve("openai")) is not openai_model  # the cache was emptied
        await factory.aclose()


def test_model_specs_use_init_chat_model_spelling() -> None:
    factory = ModelFactory(
        ProviderRegistry.builtin({"llm:openai": OpenAISettings(model_name="gpt-4.1-mini")})
    )
    assert factory.resolve("OpenAI") == ModelSpec("openai", "gpt-4.1-mini")
    assert factory.resolve("anthropic:claude-sonnet-5") == ModelSpec("anthropic", "claude-sonnet-5")
    # Ollama tags keep their colon.
    assert str(factory.resolve("openai_compatible:llama3.2:3b")) == "openai_compatible:llama3.2:3b"
    with pytest.raises(UnknownProvider, match="known: anthropic, gemini, offline, openai, openai_compatible"):
        factory.resolve("mistral:large")
    with pytest.raises(UnknownProvider):
        factory.resolve("  ")
