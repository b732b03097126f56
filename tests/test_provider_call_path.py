"""Anthropic and an OpenAI-compatible local server through the whole call path.

Fake Asterisk -> gateway -> real LangChain agent + the real `anthropic` / `openai` SDKs ->
the wire-level stand-ins; real Redis and database. A tool call included.
"""

from __future__ import annotations

from typing import Any

# Imported here, as the gateway's preload does for a configured default model: importing an
# SDK takes seconds of wall time on a busy machine, more than the test's turn timeout.
import langchain_anthropic  # noqa: F401
from sqlalchemy import select

from app.models import Call
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer, TextReply, ToolCallReply
from tests.conftest import run_gateway, state_of
from tests.test_call_path import final_vars, setup_support_prompt
from tests.utils import ToolApi


async def _recorded_model(app: Any, channel_id: str) -> tuple[str, dict[str, Any] | None]:
    await state_of(app).call_log.flush()
    async with state_of(app).session_factory() as s:
        call = (await s.scalars(select(Call).where(Call.channel_id == channel_id))).one()
        (turn,) = call.turns
        return turn.model, turn.token_usage


async def test_anthropic_call_path_with_tool_and_memory(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        await setup_support_prompt(app, tool_api)
        fake_llm.script(
            "ANT-1",
            [ToolCallReply([("check_order", {"order_id": "31"})]), TextReply("Order 31 left the depot.")],
        )
        chan = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=ANT-1 where is order 31,UNIQUEID=conv-ant,"
            "AI_PROMPT_NAME=support,AI_MODEL=anthropic"
        )
        await chan.wait_left_stasis(10)
        fake_llm.script("ANT-2", [TextReply("You asked about order 31.")])
        chan2 = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=ANT-2 what did I ask,UNIQUEID=conv-ant,"
            "AI_PROMPT_NAME=support,AI_MODEL=anthropic:claude-sonnet-5"
        )
        await chan2.wait_left_stasis(10)
        model, usage = await _recorded_model(app, chan.id)
    assert final_vars(chan) == {"AI_RESPONSE": "Order 31 left the depot.", "AI_STATUS": "OK", "AI_ERROR": ""}
    assert tool_api.requests[0]["path"] == "/orders/31"
    assert model == "anthropic:claude-haiku-4-5"
    assert usage and usage["total_tokens"] > 0
    sent = [r for r in fake_llm.requests if r.vendor == "anthropic"]
    assert len(sent) == 3
    assert "tool_result" in str(sent[1].raw["messages"][-1])  # the tool's result went back as a block
    assert sent[-1].model == "claude-sonnet-5"
    assert [m.role for m in sent[-1].messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert final_vars(chan2)["AI_RESPONSE"] == "You asked about order 31."


async def test_openai_compatible_server_beside_openai(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        await setup_support_prompt(app, tool_api)
        fake_llm.script(
            "LOCAL-1",
            [ToolCallReply([("check_order", {"order_id": "8"})]), TextReply("Order 8 is packed.")],
        )
        local = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=LOCAL-1 order 8,UNIQUEID=conv-local,"
            "AI_PROMPT_NAME=support,AI_MODEL=openai_compatible:qwen2.5:7b"
        )
        await local.wait_left_stasis(10)
        fake_llm.script("CLOUD-1", [TextReply("Hello from OpenAI.")])
        cloud = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=CLOUD-1 hi,UNIQUEID=conv-cloud,AI_MODEL=openai"
        )
        await cloud.wait_left_stasis(10)
        local_model, _ = await _recorded_model(app, local.id)
        cloud_model, _ = await _recorded_model(app, cloud.id)
    assert final_vars(local)["AI_RESPONSE"] == "Order 8 is packed."
    assert tool_api.requests[0]["path"] == "/orders/8"
    # The Ollama-style tag keeps its colon on the wire and in the call log.
    assert [r.model for r in fake_llm.requests] == ["qwen2.5:7b", "qwen2.5:7b", "gpt-4o-mini"]
    assert (local_model, cloud_model) == ("openai_compatible:qwen2.5:7b", "openai:gpt-4o-mini")
    assert final_vars(cloud)["AI_RESPONSE"] == "Hello from OpenAI."
