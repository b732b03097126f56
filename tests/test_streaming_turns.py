"""Streamed turns: text as the model produces it, whole sentences for speech, per-call tools.

Real `TurnService` and LangChain agent, real OpenAI SDK against the wire-level stand-in;
real Redis and database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Call
from app.services.agent.sentences import SentenceSplitter, split_sentences
from app.services.domain import (
    HANGUP_CANCEL_MSG,
    CallContext,
    CallTool,
    SentenceReady,
    TextDelta,
    TurnEvent,
    TurnFinished,
    TurnRequest,
    TurnStatus,
)
from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer, HangReply, TextReply, ToolCallReply
from tests.conftest import run_gateway, state_of
from tests.utils import ToolApi, create_prompt, create_tool

ANSWER = "Your order 42 has shipped with DHL. It should arrive in two days! Anything else?"


@pytest.mark.parametrize(
    ("deltas", "sentences"),
    [
        (
            ["Your order 42 ha", "s shipped. It arr", "ives in 2.5 days! Any", "thing else?"],
            ["Your order 42 has shipped.", "It arrives in 2.5 days!", "Anything else?"],
        ),
        (
            ["Yes. That is right.", " Dr. Smith will call you."],
            ["Yes. That is right.", "Dr. Smith will call you."],
        ),
        (["First line\nsecond line without a stop"], ["First line", "second line without a stop"]),
    ],
)
def test_sentence_splitter_gives_whole_sentences_in_order(deltas: list[str], sentences: list[str]) -> None:
    splitter = SentenceSplitter()
    out: list[str] = []
    for delta in deltas:
        out.extend(splitter.feed(delta))
    out.extend(splitter.flush())
    assert out == sentences
    assert split_sentences("".join(deltas)) == sentences


def test_sentence_splitter_holds_an_unfinished_sentence() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Your order has shipped. It arrives") == ["Your order has shipped."]
    assert splitter.feed(" on Monday") == []
    assert splitter.flush() == ["It arrives on Monday"]
    assert splitter.flush() == []


async def collect(events: Any) -> list[TurnEvent]:
    return [event async for event in events]


def request(text: str, uniqueid: str, **fields: Any) -> TurnRequest:
    context = CallContext(uniqueid=uniqueid, channel_id=f"chan-{uniqueid}", caller_id_number="5551234")
    return TurnRequest(context=context, user_input=text, **fields)


async def test_stream_turn_yields_deltas_then_sentences_then_the_outcome(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer
) -> None:
    async with run_gateway(make_settings(ari_enabled=False)) as app:
        fake_llm.script("STREAM-1", [TextReply(ANSWER)])
        events = await collect(state_of(app).turn_service.stream_turn(request("STREAM-1 hi", "s-1")))
    finished = events[-1]
    assert isinstance(finished, TurnFinished)
    assert finished.outcome.status == TurnStatus.OK and finished.outcome.response == ANSWER
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1 and "".join(deltas) == ANSWER  # several chunks, in order
    assert [e.text for e in events if isinstance(e, SentenceReady)] == [
        "Your order 42 has shipped with DHL.",
        "It should arrive in two days!",
        "Anything else?",
    ]
    assert fake_llm.requests[-1].stream, "the model was asked for a token stream"


async def test_streamed_turn_runs_http_and_per_call_tools_with_validation(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    ended: list[dict[str, Any]] = []

    async def end_call(args: dict[str, Any]) -> str:
        ended.append(args)
        return "the call will end after your closing sentence"

    end_tool = CallTool(
        name="end_call",
        description="End the call when the caller is done.",
        parameters={
            "type": "object",
            "properties": {"reason": {"type": "string", "enum": ["done", "abusive"]}},
            "required": ["reason"],
        },
        handler=end_call,
    )
    async with run_gateway(make_settings(ari_enabled=False)) as app:
        st = state_of(app)
        tool = await create_tool(
            st.session_factory,
            url=tool_api.url + "/orders/{order_id}",
            headers={"X-Caller": "{caller_id_number}"},
        )
        await create_prompt(st.session_factory, "support", tools=[tool])
        fake_llm.script(
            "STREAM-2",
            [
                ToolCallReply([("check_order", {"order_id": "42"})]),
                ToolCallReply([("end_call", {"reason": "bored"})]),
                ToolCallReply([("end_call", {"reason": "done"})]),
                TextReply(ANSWER),
            ],
        )
        events = await collect(
            st.turn_service.stream_turn(
                request("STREAM-2 order 42", "s-2", prompt_name="support", extra_tools=(end_tool,))
            )
        )
    finished = events[-1]
    assert isinstance(finished, TurnFinished) and finished.outcome.response == ANSWER
    # The HTTP tool ran with the caller ID from the call context.
    assert [r["path"] for r in tool_api.requests] == ["/orders/42"]
    assert tool_api.requests[0]["headers"]["x-caller"] == "5551234"
    # The per-call tool was offered, its bad arguments went back to the model, and it ran once.
    assert fake_llm.requests[0].tool_names == ["check_order", "end_call"]
    assert fake_llm.requests[2].messages[-1].content.startswith("invalid arguments: reason:")
    assert ended == [{"reason": "done"}]
    assert [c["name"] for c in finished.outcome.tool_calls] == ["check_order", "end_call", "end_call"]
    assert [c["outcome"] for c in finished.outcome.tool_calls][1:] == ["invalid_args", "ok"]
    assert [e.text for e in events if isinstance(e, SentenceReady)][-1] == "Anything else?"


async def test_cancelling_a_streamed_turn_for_a_hangup_closes_the_request_and_files_hangup(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer
) -> None:
    async with run_gateway(make_settings(ari_enabled=False)) as app:
        st = state_of(app)
        fake_llm.script("STREAM-HUP", [HangReply(5.0, "nobody hears this")])
        seen: list[TurnEvent] = []

        async def listen() -> None:
            async for event in st.turn_service.stream_turn(request("STREAM-HUP hello", "s-hup")):
                seen.append(event)

        task = asyncio.create_task(listen())
        while not fake_llm.requests:
            await asyncio.sleep(0.02)
        task.cancel(HANGUP_CANCEL_MSG)
        await asyncio.wait({task}, timeout=3)
        for _ in range(100):
            if fake_llm.disconnected:
                break
            await asyncio.sleep(0.02)
        await st.call_log.flush()
        async with st.session_factory() as s:
            call = (await s.scalars(select(Call).where(Call.channel_id == "chan-s-hup"))).one()
    assert task.cancelled()
    assert len(fake_llm.disconnected) == 1, "the model's HTTP request was not closed"
    assert seen == []
    assert [(t.status, t.user_input) for t in call.turns] == [("HANGUP", "STREAM-HUP hello")]
