"""The real vendor SDKs (via LangChain) run unchanged against FakeLLMServer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from app.testing.fake_llm import (
    ErrorReply,
    FakeLLMServer,
    HangReply,
    LLMRequest,
    Reply,
    TextReply,
    ToolCallReply,
    offline_reply,
)

pytestmark = pytest.mark.asyncio


def _check_order(order_id: int) -> str:
    """Look up the shipping status of an order."""
    return f"order {order_id} shipped on Monday"


CHECK_ORDER = StructuredTool.from_function(
    _check_order,
    name="check_order",
    description="Look up the shipping status of an order.",
)


_gemini_models: list[ChatGoogleGenerativeAI] = []


@pytest.fixture
async def server() -> AsyncIterator[FakeLLMServer]:
    """A running stand-in on an ephemeral port (Gemini clients made on it closed after)."""
    async with FakeLLMServer() as srv:
        yield srv
        while _gemini_models:
            client = _gemini_models.pop().client
            if client is not None:
                await client.aio.aclose()


def _openai(server: FakeLLMServer, **kw: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=server.openai_base_url,
        api_key="sk-test",  # type: ignore[arg-type]
        max_retries=0,
        **kw,
    )


def _gemini(server: FakeLLMServer, **kw: Any) -> ChatGoogleGenerativeAI:
    model = ChatGoogleGenerativeAI(
        model="gemini-2.5-flash",
        google_api_key="test-key",
        base_url=server.gemini_base_url,
        max_retries=0,
        **kw,
    )
    _gemini_models.append(model)
    return model


def _anthropic(server: FakeLLMServer, **kw: Any) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        model="claude-haiku-4-5",
        base_url=server.anthropic_base_url,
        api_key="sk-ant-test",  # type: ignore[arg-type]
        max_retries=0,
        **kw,
    )


def _model(server: FakeLLMServer, vendor: str) -> BaseChatModel:
    if vendor == "anthropic":
        return _anthropic(server)
    return _openai(server) if vendor == "openai" else _gemini(server)


async def _tool_round_trip(server: FakeLLMServer, model: BaseChatModel, vendor: str) -> None:
    server.script(
        None,
        [
            ToolCallReply([("check_order", {"order_id": 42})]),
            TextReply("Order 42 has shipped."),
        ],
    )
    bound = model.bind_tools([CHECK_ORDER])
    question = HumanMessage("Where is order 42?")
    first = await bound.ainvoke([question])
    assert isinstance(first, AIMessage)
    assert first.tool_calls[0]["name"] == "check_order"
    assert first.tool_calls[0]["args"] == {"order_id": 42}
    assert first.usage_metadata is not None and first.usage_metadata["total_tokens"] > 0

    sent = server.requests[-1]
    assert sent.vendor == vendor
    assert sent.tools[0]["name"] == "check_order"
    assert sent.tools[0]["parameters"]["properties"]["order_id"]["type"] == "integer"
    assert sent.last_user_text == "Where is order 42?"

    result = ToolMessage("order 42 shipped on Monday", tool_call_id=first.tool_calls[0]["id"])
    second = await bound.ainvoke([question, first, result])
    assert second.text == "Order 42 has shipped."
    assert second.usage_metadata is not None and second.usage_metadata["output_tokens"] >= 1

    roles = [m.role for m in server.requests[-1].messages]
    assert roles == ["user", "assistant", "tool"]
    assistant, tool_msg = server.requests[-1].messages[1:]
    assert assistant.tool_calls[0]["name"] == "check_order"
    assert assistant.tool_calls[0]["args"] == {"order_id": 42}
    assert tool_msg.tool_name == "check_order"
    assert tool_msg.content == "order 42 shipped on Monday"


# ------------------------------------------------------------------- OpenAI


async def test_openai_tool_round_trip(server: FakeLLMServer) -> None:
    """ChatOpenAI gets a scripted tool call, then text after a ToolMessage."""
    await _tool_round_trip(server, _openai(server), "openai")
    assert server.requests[-1].messages[2].tool_call_id is not None


async def test_openai_streaming_tool_round_trip(server: FakeLLMServer) -> None:
    """The same round trip over SSE streaming with usage chunks."""
    await _tool_round_trip(server, _openai(server, streaming=True, stream_usage=True), "openai")
    assert server.requests[-1].stream is True
    assert server.requests[-1].raw["stream_options"] == {"include_usage": True}


async def test_openai_astream_text_chunks(server: FakeLLMServer) -> None:
    """Streaming via astream yields several chunks that add up to the text and usage."""
    text = "This is a longer answer that will be split into several SSE chunks."
    server.script(None, [TextReply(text)])
    chunks = [c async for c in _openai(server, stream_usage=True).astream("hi")]
    assert len(chunks) > 3
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert isinstance(full, AIMessageChunk)
    assert full.content == text
    assert full.usage_metadata is not None and full.usage_metadata["total_tokens"] > 0


async def test_openai_system_prompt_and_models(server: FakeLLMServer) -> None:
    """System prompt is normalised; /v1/models and 401 are OpenAI-shaped."""
    await _openai(server).ainvoke([("system", "Be brief."), ("user", "hello")])
    req = server.requests[-1]
    assert req.system == "Be brief."
    assert req.messages[-1].content == "hello"
    async with httpx.AsyncClient() as client:
        resp = await client.get(
            server.openai_base_url + "/models",
            headers={"Authorization": "Bearer sk-test"},
        )
        assert resp.status_code == 200
        assert resp.json()["object"] == "list"
        unauth = await client.post(server.openai_base_url + "/chat/completions", json={})
        assert unauth.status_code == 401
        assert set(unauth.json()["error"]) >= {"message", "type", "code"}


async def test_openai_error_reply_raises(server: FakeLLMServer) -> None:
    """ErrorReply surfaces as the openai SDK's exception types."""
    import openai

    server.script(None, [ErrorReply(500, "boom")])
    with pytest.raises(openai.InternalServerError, match="boom"):
        await _openai(server).ainvoke("hi")
    server.script(None, [ErrorReply(429, "slow down")])
    with pytest.raises(openai.RateLimitError):
        await _openai(server).ainvoke("hi")


# ------------------------------------------------------------------- Gemini


async def test_gemini_text_reply(server: FakeLLMServer) -> None:
    """ChatGoogleGenerativeAI gets text and usage via generateContent."""
    server.script(None, [TextReply("Hallo from Gemini")])
    msg = await _gemini(server).ainvoke([("system", "Be kind."), ("user", "hi there")])
    assert msg.content == "Hallo from Gemini"
    assert msg.usage_metadata is not None and msg.usage_metadata["total_tokens"] > 0
    req = server.requests[-1]
    assert req.vendor == "gemini"
    assert req.model == "gemini-2.5-flash"
    assert req.system == "Be kind."
    assert req.last_user_text == "hi there"
    assert req.stream is False


async def test_gemini_tool_round_trip(server: FakeLLMServer) -> None:
    """Gemini functionCall/functionResponse round trip."""
    await _tool_round_trip(server, _gemini(server), "gemini")


async def test_gemini_astream(server: FakeLLMServer) -> None:
    """Streaming via astream uses streamGenerateContent SSE."""
    text = "Streaming answers arrive in several server-sent events from Gemini."
    server.script(None, [TextReply(text)])
    chunks = [c async for c in _gemini(server).astream("hi")]
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert isinstance(full, AIMessageChunk)
    assert full.text == text
    assert server.requests[-1].stream is True
    assert full.usage_metadata is not None and full.usage_metadata["output_tokens"] >= 1


async def test_gemini_error_reply_raises(server: FakeLLMServer) -> None:
    """ErrorReply surfaces as an exception from google-genai."""
    server.script(None, [ErrorReply(500, "gemini exploded")])
    with pytest.raises(Exception, match="gemini exploded"):
        await _gemini(server).ainvoke("hi")


async def test_gemini_requires_api_key(server: FakeLLMServer) -> None:
    """Requests without x-goog-api-key are rejected Google-style."""
    async with httpx.AsyncClient() as client:
        resp = await client.post(server.base_url + "/v1beta/models/gemini-2.5-flash:generateContent", json={})
    assert resp.status_code == 401
    assert resp.json()["error"]["status"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------- Anthropic


async def test_anthropic_text_reply_with_system_prompt(server: FakeLLMServer) -> None:
    """ChatAnthropic gets text and usage from POST /v1/messages."""
    server.script(None, [TextReply("Hello from Claude")])
    msg = await _anthropic(server).ainvoke([("system", "Be brief."), ("user", "hi there")])
    assert msg.content == "Hello from Claude"
    assert msg.usage_metadata is not None and msg.usage_metadata["input_tokens"] > 0
    assert msg.response_metadata["stop_reason"] == "end_turn"
    req = server.requests[-1]
    assert (req.vendor, req.model, req.system, req.last_user_text) == (
        "anthropic",
        "claude-haiku-4-5",
        "Be brief.",
        "hi there",
    )
    assert req.stream is False


async def test_anthropic_tool_round_trip(server: FakeLLMServer) -> None:
    """tool_use block out, tool_result block back, then text."""
    await _tool_round_trip(server, _anthropic(server), "anthropic")
    assert server.requests[-1].messages[2].tool_call_id.startswith("toolu_")  # type: ignore[union-attr]


async def test_anthropic_streaming_tool_round_trip(server: FakeLLMServer) -> None:
    """The same round trip over the Messages API's SSE events (input_json_delta for arguments)."""
    await _tool_round_trip(server, _anthropic(server, streaming=True), "anthropic")
    assert server.requests[-1].stream is True


async def test_anthropic_astream_text_chunks(server: FakeLLMServer) -> None:
    """astream yields the text in several text_delta chunks, and the usage at the end."""
    text = "Claude streams answers as content_block_delta events, piece by piece."
    server.script(None, [TextReply(text)])
    chunks = [c async for c in _anthropic(server).astream("hi")]
    assert len([c for c in chunks if c.text]) > 1
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert isinstance(full, AIMessageChunk)
    assert full.text == text
    assert full.usage_metadata is not None and full.usage_metadata["output_tokens"] >= 1


async def test_anthropic_stream_events_in_protocol_order(server: FakeLLMServer) -> None:
    """The raw SSE stream has the Messages API's event names, in order."""
    server.script(None, [ToolCallReply([("check_order", {"order_id": 5})])])
    body = {"model": "m", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient() as client:
        resp = await client.post(server.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"})
    events = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
    assert events == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * (len(events) - 6),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert '"stop_reason":"tool_use"' in resp.text


async def test_anthropic_errors(server: FakeLLMServer) -> None:
    """ErrorReply and a missing key surface as the SDK's errors, Anthropic-shaped."""
    server.script(None, [ErrorReply(429, "claude is busy")])
    with pytest.raises(Exception, match="claude is busy"):
        await _anthropic(server).ainvoke("hi")
    async with httpx.AsyncClient() as client:
        resp = await client.post(server.base_url + "/v1/messages", json={"max_tokens": 1})
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"


# ----------------------------------------------------------- create_agent


@pytest.mark.parametrize("vendor", ["openai", "gemini", "anthropic"])
async def test_create_agent_end_to_end(server: FakeLLMServer, vendor: str) -> None:
    """A create_agent agent executes the tool and returns the final text."""
    calls: list[int] = []

    def check(order_id: int) -> str:
        """Look up the shipping status of an order."""
        calls.append(order_id)
        return f"order {order_id} shipped on Monday"

    tool = StructuredTool.from_function(check, name="check_order")
    server.script(
        None,
        [
            ToolCallReply([("check_order", {"order_id": 7})]),
            TextReply("Your order 7 shipped."),
        ],
    )
    agent = create_agent(_model(server, vendor), tools=[tool], system_prompt="You are a clerk.")
    result = await agent.ainvoke({"messages": [{"role": "user", "content": "order 7?"}]})
    assert calls == [7]
    assert result["messages"][-1].content == "Your order 7 shipped."
    last = server.requests[-1]
    assert last.system == "You are a clerk."
    assert last.messages[-1].role == "tool"
    assert "shipped on Monday" in last.messages[-1].content


@pytest.mark.parametrize("vendor", ["openai", "gemini", "anthropic"])
async def test_create_agent_offline_model(server: FakeLLMServer, vendor: str) -> None:
    """Without scripts the offline model drives the agent deterministically."""
    agent = create_agent(_model(server, vendor), tools=[CHECK_ORDER])
    result = await agent.ainvoke({"messages": [{"role": "user", "content": "check order 42"}]})
    final = result["messages"][-1].content
    assert final == ("[offline model] The tool check_order returned: order 42 shipped on Monday")
    agent = create_agent(_model(server, vendor), tools=[CHECK_ORDER])
    result = await agent.ainvoke({"messages": [{"role": "user", "content": "good morning"}]})
    assert result["messages"][-1].content == "[offline model] You said: good morning"


# ----------------------------------------------------- routing & behaviour


@pytest.mark.parametrize("vendor", ["openai", "gemini", "anthropic"])
async def test_keyed_scripts_route_concurrent_calls(server: FakeLLMServer, vendor: str) -> None:
    """Keyed scripts route concurrent calls by marker."""
    keys = ["CALL-1", "CALL-10", "CALL-100", "CALL-2", "CALL-3"]  # prefixes on purpose
    for key in keys:
        server.script(key, [TextReply(f"answer for {key}")])
    server.latency_ms = 20
    model = _model(server, vendor)
    results = await asyncio.gather(*(model.ainvoke(f"[{k}] hello") for k in reversed(keys)))
    assert [r.content for r in results] == [f"answer for {k}" for k in reversed(keys)]
    assert all(server.pending(k) == 0 for k in keys)
    assert server.total_busy_seconds >= 0.02


async def test_responder_and_hang(server: FakeLLMServer) -> None:
    """Custom responders apply; HangReply delays (and can time out)."""

    async def responder(req: LLMRequest) -> Reply:
        return TextReply(f"{req.vendor}:{req.last_user_text.upper()}")

    server.set_responder(responder)
    assert (await _openai(server).ainvoke("abc")).content == "openai:ABC"
    assert (await _gemini(server).ainvoke("xyz")).content == "gemini:XYZ"

    server.script(None, [HangReply(0.3, "late")])
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert (await _openai(server).ainvoke("abc")).content == "late"
    assert loop.time() - t0 >= 0.3

    server.script(None, [HangReply(5)])
    with pytest.raises(Exception):  # noqa: B017 - the SDK's timeout error type
        await _openai(server, timeout=0.2).ainvoke("abc")


async def test_offline_reply_tool_matching() -> None:
    """The offline model picks tools by name tokens and fills args."""
    from app.testing.fake_llm import NeutralMessage

    tools = [
        {
            "name": "check_order",
            "description": "",
            "parameters": {
                "type": "object",
                "properties": {
                    "order_id": {"type": "integer"},
                    "note": {"type": "string"},
                },
                "required": ["order_id", "note"],
            },
        },
        {
            "name": "transferCall",
            "description": "",
            "parameters": {
                "type": "object",
                "properties": {"dept": {"type": "string"}},
                "required": ["dept"],
            },
        },
    ]

    def req(text: str) -> LLMRequest:
        return LLMRequest(
            vendor="openai",
            model="m",
            system=None,
            messages=[NeutralMessage(role="user", content=text)],
            tools=tools,
            raw={},
        )

    assert offline_reply(req("Please check order 42")) == ToolCallReply(
        [("check_order", {"order_id": 42, "note": "42"})]
    )
    assert offline_reply(req("transfer the call")) == ToolCallReply([("transferCall", {"dept": "unknown"})])
    assert offline_reply(req("hello")) == TextReply("[offline model] You said: hello")
