"""The chat model factory: one model per spec, and nothing left open at shutdown."""

from __future__ import annotations

from app.core.config import Settings
from app.services.providers.llm import ModelFactory
from app.testing.fake_llm import FakeLLMServer


async def test_shutdown_closes_every_providers_http_sessions() -> None:
    async with FakeLLMServer() as srv:
        factory = ModelFactory(
            Settings(
                openai_api_key="sk-test",
                openai_base_url=srv.openai_base_url,
                gemini_api_key="g-test",
                gemini_base_url=srv.gemini_base_url,
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
