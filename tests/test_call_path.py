"""The core call path, end to end: fake Asterisk (ARI over HTTP + WebSocket) -> gateway ->
real LangChain agent + real OpenAI/Gemini SDKs -> fake vendor servers; real Redis and database.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import websockets
from sqlalchemy import select

from app.models import Call
from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_llm import ErrorReply, FakeLLMServer, HangReply, TextReply, ToolCallReply
from tests.conftest import run_gateway, state_of, wait_until_idle
from tests.utils import ToolApi, create_prompt, create_tool

FALLBACK = "Sorry, our assistant is unavailable. Transferring you now."


def final_vars(chan: FakeChannel) -> dict[str, str | None]:
    """Channel variables as the gateway set them, last value wins."""
    out: dict[str, str | None] = {}
    for op in chan.operations:
        if op[0] == "setvar":
            out[op[1]] = op[2]
    return out


def op_names(chan: FakeChannel) -> list[str]:
    return [op[1] if op[0] == "setvar" else op[0] for op in chan.operations]


async def setup_support_prompt(app: Any, tool_api: ToolApi, **tool_fields: Any) -> None:
    st = state_of(app)
    fields: dict[str, Any] = {
        "url": tool_api.url + "/orders/{order_id}",
        "headers": {"X-Caller": "{caller_id_number}", "X-Conversation": "{uniqueid}", "X-Api-Key": "k-123"},
    }
    fields.update(tool_fields)
    tool = await create_tool(st.session_factory, **fields)
    await create_prompt(st.session_factory, "support", tools=[tool])


async def test_call_runs_http_tool_and_sets_response_before_continue(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        await setup_support_prompt(app, tool_api)
        fake_llm.script(
            "ORDER-A1",
            [ToolCallReply([("check_order", {"order_id": "42"})]), TextReply("Your order 42 has shipped.")],
        )
        chan = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=ORDER-A1 where is my order 42,UNIQUEID=conv-a1,"
            "AI_PROMPT_NAME=support,AI_MODEL=openai",
            caller_number="5551234",
        )
        await chan.wait_left_stasis(10)
        await state_of(app).call_log.flush()

        # The tool API got the right request.
        assert len(tool_api.requests) == 1
        req = tool_api.requests[0]
        assert (req["method"], req["path"]) == ("GET", "/orders/42")
        assert req["headers"]["x-caller"] == "5551234"
        assert req["headers"]["x-conversation"] == "conv-a1"
        assert req["headers"]["x-api-key"] == "k-123"

        # The model saw the tool's result before answering.
        second = fake_llm.requests[-1]
        tool_msgs = [m for m in second.messages if m.role == "tool"]
        assert tool_msgs and "shipped" in tool_msgs[0].content
        assert [t["name"] for t in second.tools] == ["check_order"]

        # Variables first, then continue, exactly once.
        assert final_vars(chan) == {
            "AI_RESPONSE": "Your order 42 has shipped.",
            "AI_STATUS": "OK",
            "AI_ERROR": "",
        }
        names = op_names(chan)
        assert names.index("continue") > max(names.index("AI_RESPONSE"), names.index("AI_STATUS"))
        assert chan.continued_count == 1 and not chan.in_stasis

        # The call log has the turn with its tool call.
        async with state_of(app).session_factory() as s:
            call = (await s.scalars(select(Call).where(Call.channel_id == chan.id))).one()
            assert call.uniqueid == "conv-a1" and call.caller_id_number == "5551234"
            assert call.prompt_name == "support" and call.status == "OK"
            (turn,) = call.turns
            assert turn.tool_calls[0]["name"] == "check_order"
            assert turn.tool_calls[0]["args"] == {"order_id": "42"}
            assert turn.tool_calls[0]["outcome"] == "ok"
            assert "shipped" in turn.tool_calls[0]["result"]
            assert turn.token_usage and turn.token_usage["total_tokens"] > 0
    assert fake_ari.spec_violations == []


async def test_same_uniqueid_continues_conversation_other_uniqueid_does_not(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        await setup_support_prompt(app, tool_api)
        fake_llm.script(
            "FIRST-B2",
            [ToolCallReply([("check_order", {"order_id": "7"})]), TextReply("Order 7 has shipped.")],
        )
        fake_llm.script("SECOND-B2", [TextReply("It left two days ago.")])
        fake_llm.script("OTHER-B2", [TextReply("Hello stranger.")])
        first = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=FIRST-B2 order 7,UNIQUEID=conv-b2,AI_PROMPT_NAME=support"
        )
        await first.wait_left_stasis(10)
        # The dialplan loops back into Stasis on the same channel id? No: a new channel,
        # same conversation key.
        second = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=SECOND-B2 when did it leave,UNIQUEID=conv-b2,AI_PROMPT_NAME=support"
        )
        await second.wait_left_stasis(10)
        other = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=OTHER-B2 hi,UNIQUEID=conv-other,AI_PROMPT_NAME=support"
        )
        await other.wait_left_stasis(10)

    by_text = {r.last_user_text: r for r in fake_llm.requests}
    second_req = by_text["SECOND-B2 when did it leave"]
    roles = [m.role for m in second_req.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert second_req.messages[0].content == "FIRST-B2 order 7"
    assert second_req.messages[1].tool_calls[0]["name"] == "check_order"
    assert second_req.messages[1].tool_calls[0]["args"] == {"order_id": "7"}
    assert "shipped" in second_req.messages[2].content
    assert second_req.messages[3].content == "Order 7 has shipped."

    other_req = by_text["OTHER-B2 hi"]
    assert [m.role for m in other_req.messages] == ["user"]
    assert final_vars(other)["AI_RESPONSE"] == "Hello stranger."


async def test_prompt_without_tools_keeps_the_same_conversation_as_the_agent(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    """A tool-less prompt calls the chat model directly (no agent graph); the model must
    see what the agent would send, and the agent must pick up that history."""
    async with run_gateway(make_settings(), fake_ari) as app:
        await create_prompt(state_of(app).session_factory, "plain", "You are Plain, a kind receptionist.")
        await setup_support_prompt(app, tool_api)
        fake_llm.script("PLAIN-1", [TextReply("Hello, this is Plain.")])
        fake_llm.script("PLAIN-2", [TextReply("You said hello.")])
        fake_llm.script(
            "SUPPORT-3", [ToolCallReply([("check_order", {"order_id": "5"})]), TextReply("Order 5 shipped.")]
        )
        chans = []
        for args in (
            "USER_INPUT=PLAIN-1 hello,UNIQUEID=conv-plain,AI_PROMPT_NAME=plain",
            "USER_INPUT=PLAIN-2 what did I say,UNIQUEID=conv-plain,AI_PROMPT_NAME=plain",
            "USER_INPUT=SUPPORT-3 order 5,UNIQUEID=conv-plain,AI_PROMPT_NAME=support",
        ):
            chan = await fake_ari.place_call("ai_ari_app," + args)
            await chan.wait_left_stasis(10)
            chans.append(chan)

    assert [final_vars(c)["AI_STATUS"] for c in chans] == ["OK", "OK", "OK"]
    assert final_vars(chans[1])["AI_RESPONSE"] == "You said hello."
    by_text = {r.last_user_text: r for r in fake_llm.requests}
    first, second = by_text["PLAIN-1 hello"], by_text["PLAIN-2 what did I say"]
    assert first.tools == [] and first.system is not None
    assert first.system.startswith("You are a voice assistant answering a live phone call.")
    assert first.system.rstrip().endswith("You are Plain, a kind receptionist.")
    assert [(m.role, m.content) for m in second.messages] == [
        ("user", "PLAIN-1 hello"),
        ("assistant", "Hello, this is Plain."),
        ("user", "PLAIN-2 what did I say"),
    ]
    third = next(r for r in fake_llm.requests if r.last_user_text == "SUPPORT-3 order 5")
    assert third.tool_names == ["check_order"]
    assert third.system is not None and third.system.rstrip().endswith("You help callers with their orders.")
    assert [m.role for m in third.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert fake_ari.spec_violations == []


async def test_comma_split_user_input_prefers_intact_channel_variable(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer
) -> None:
    async with run_gateway(make_settings(), fake_ari):
        # Dialplan: Set(USER_INPUT=...) then Stasis(app,USER_INPUT=${USER_INPUT},...)
        chan = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=hello, how are you,UNIQUEID=conv-c",
            channel_vars={"USER_INPUT": "hello, how are you, and  the weather"},
        )
        await chan.wait_left_stasis(10)
        # Without the variable, pieces are rejoined.
        chan2 = await fake_ari.place_call("ai_ari_app,USER_INPUT=hi, there,UNIQUEID=conv-c2")
        await chan2.wait_left_stasis(10)
    texts = [r.last_user_text for r in fake_llm.requests]
    assert "hello, how are you, and the weather" in texts
    assert "hi, there" in texts
    assert final_vars(chan)["AI_STATUS"] == "OK"
    assert fake_ari.spec_violations == []


async def failing_call(
    fake_ari: FakeAriServer, user_input: str, extra: str = ",AI_PROMPT_NAME=support", timeout: float = 15
) -> FakeChannel:
    chan = await fake_ari.place_call(f"ai_ari_app,USER_INPUT={user_input}{extra}")
    await chan.wait_left_stasis(timeout)
    assert chan.continued_count == 1, "channel must be continued exactly once"
    return chan


async def test_failures_always_continue_with_status_and_fallback(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    tool_api.slow_seconds = 10
    async with run_gateway(make_settings(ai_turn_timeout_seconds=2.0), fake_ari) as app:
        await setup_support_prompt(app, tool_api)
        st = state_of(app)
        slow = await create_tool(
            st.session_factory,
            name="slow_lookup",
            url=tool_api.url + "/slow",
            timeout_seconds=0.5,
            parameters={"type": "object", "properties": {}},
        )
        missing = await create_tool(
            st.session_factory,
            name="missing_lookup",
            url=tool_api.url + "/missing",
            parameters={"type": "object", "properties": {}},
        )
        await create_prompt(st.session_factory, "extra", tools=[slow, missing])

        # LLM 500
        fake_llm.script("F-500", [ErrorReply(500, "upstream exploded")])
        chan = await failing_call(fake_ari, "F-500 hello")
        assert final_vars(chan)["AI_STATUS"] == "ERROR"
        assert final_vars(chan)["AI_ERROR"] == "llm_error: HTTP 500"
        assert final_vars(chan)["AI_RESPONSE"] == FALLBACK

        # LLM hangs past the deadline
        fake_llm.script("F-HANG", [HangReply(30)])
        chan = await failing_call(fake_ari, "F-HANG hello")
        assert final_vars(chan)["AI_STATUS"] == "TIMEOUT"
        assert final_vars(chan)["AI_RESPONSE"] == FALLBACK

        # Tool timeout: the model hears about it and still answers.
        fake_llm.script(
            "F-SLOW", [ToolCallReply([("slow_lookup", {})]), TextReply("The system is slow, sorry.")]
        )
        chan = await failing_call(fake_ari, "F-SLOW check", ",AI_PROMPT_NAME=extra")
        assert final_vars(chan)["AI_STATUS"] == "OK"
        tool_result = next(m for m in fake_llm.requests[-1].messages if m.role == "tool").content
        assert "did not answer within 0.5 s" in tool_result

        # Tool 404
        fake_llm.script("F-404", [ToolCallReply([("missing_lookup", {})]), TextReply("I could not find it.")])
        chan = await failing_call(fake_ari, "F-404 check", ",AI_PROMPT_NAME=extra")
        assert final_vars(chan)["AI_STATUS"] == "OK"
        tool_result = next(m for m in fake_llm.requests[-1].messages if m.role == "tool").content
        assert tool_result.startswith("error: HTTP 404")

        # Invalid tool args go back to the model, which corrects itself.
        before = len(tool_api.requests)
        fake_llm.script(
            "F-ARGS",
            [
                ToolCallReply([("check_order", {"order_id": "forty-two"})]),
                ToolCallReply([("check_order", {"order_id": "42"})]),
                TextReply("Order 42 has shipped."),
            ],
        )
        chan = await failing_call(fake_ari, "F-ARGS my order")
        assert final_vars(chan)["AI_STATUS"] == "OK"
        tool_msgs = [m.content for m in fake_llm.requests[-1].messages if m.role == "tool"]
        assert tool_msgs[0].startswith("invalid arguments: order_id:")
        assert "shipped" in tool_msgs[1]
        assert len(tool_api.requests) == before + 1, "invalid args must not reach the API"

        # Unknown prompt name
        chan = await failing_call(fake_ari, "hello", ",AI_PROMPT_NAME=does-not-exist")
        assert final_vars(chan)["AI_STATUS"] == "ERROR"
        assert final_vars(chan)["AI_ERROR"] == "unknown_prompt: does-not-exist"
        assert final_vars(chan)["AI_RESPONSE"]

        # Empty USER_INPUT (and only whitespace/control characters)
        chan = await failing_call(fake_ari, " \x07 ")
        assert final_vars(chan)["AI_STATUS"] == "NO_INPUT"
        assert final_vars(chan)["AI_RESPONSE"]
        chan = await failing_call(fake_ari, "", "")
        assert final_vars(chan)["AI_STATUS"] == "NO_INPUT"

        # Unknown model provider
        chan = await failing_call(fake_ari, "hello", ",AI_MODEL=nosuchvendor")
        assert final_vars(chan)["AI_STATUS"] == "ERROR"
        assert final_vars(chan)["AI_ERROR"].startswith("unknown_model")
    assert fake_ari.spec_violations == []


async def test_redis_unreachable_still_answers_degraded(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tmp_path: Any
) -> None:
    from tests.redis_proc import RedisProcess

    redis = RedisProcess(tmp_path)
    await redis.start()
    try:
        settings = make_settings(redis_url=redis.url, redis_timeout_seconds=0.3)
        async with run_gateway(settings, fake_ari) as app:
            fake_llm.script("R-UP", [TextReply("first answer")])
            chan = await failing_call(fake_ari, "R-UP hello", ",UNIQUEID=conv-r")
            assert final_vars(chan)["AI_STATUS"] == "OK"

            await redis.stop()
            fake_llm.script("R-DOWN", [TextReply("still here")])
            chan = await failing_call(fake_ari, "R-DOWN hello again", ",UNIQUEID=conv-r")
            assert final_vars(chan) == {"AI_RESPONSE": "still here", "AI_STATUS": "OK", "AI_ERROR": ""}
            assert [m.role for m in fake_llm.requests[-1].messages] == ["user"], "no history while down"
            await state_of(app).call_log.flush()
            async with state_of(app).session_factory() as s:
                call = (await s.scalars(select(Call).where(Call.channel_id == chan.id))).one()
                assert call.degraded and call.turns[0].degraded

            await redis.start()
            fake_llm.script("R-BACK", [TextReply("back")])
            chan = await failing_call(fake_ari, "R-BACK and again", ",UNIQUEID=conv-r")
            assert final_vars(chan)["AI_STATUS"] == "OK"
            # Redis came back empty (it keeps nothing on disk); memory works again.
            fake_llm.script("R-BACK2", [TextReply("yes")])
            await failing_call(fake_ari, "R-BACK2 remember?", ",UNIQUEID=conv-r")
            assert [m.role for m in fake_llm.requests[-1].messages] == ["user", "assistant", "user"]
    finally:
        await redis.stop()


async def test_fifty_simultaneous_calls_all_complete(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    fake_llm.latency_ms = 100
    async with run_gateway(make_settings(), fake_ari) as app:
        await setup_support_prompt(app, tool_api)
        for i in range(50):
            fake_llm.script(
                f"MANY-{i:03d}",
                [
                    ToolCallReply([("check_order", {"order_id": str(i)})]),
                    TextReply(f"Order {i} has shipped."),
                ],
            )
        chans = await asyncio.gather(
            *(
                fake_ari.place_call(
                    f"ai_ari_app,USER_INPUT=MANY-{i:03d} order,UNIQUEID=many-{i},AI_PROMPT_NAME=support"
                )
                for i in range(50)
            )
        )
        await asyncio.gather(*(c.wait_left_stasis(20) for c in chans))
        await state_of(app).call_log.flush()
    for i, chan in enumerate(chans):
        assert final_vars(chan)["AI_RESPONSE"] == f"Order {i} has shipped."
        assert chan.continued_count == 1
    assert fake_ari.parked_channels("ai_ari_app") == []
    assert sorted(r["path"] for r in tool_api.requests) == sorted(f"/orders/{i}" for i in range(50))
    assert fake_ari.spec_violations == []


async def test_gemini_call_path(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        await setup_support_prompt(app, tool_api)
        fake_llm.script(
            "GEM-1",
            [ToolCallReply([("check_order", {"order_id": "99"})]), TextReply("Order 99 is on its way.")],
        )
        chan = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=GEM-1 order 99,UNIQUEID=conv-g,AI_PROMPT_NAME=support,AI_MODEL=gemini"
        )
        await chan.wait_left_stasis(10)
        fake_llm.script("GEM-2", [TextReply("You asked about order 99.")])
        chan2 = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=GEM-2 what did I ask,UNIQUEID=conv-g,"
            "AI_PROMPT_NAME=support,AI_MODEL=gemini"
        )
        await chan2.wait_left_stasis(10)
    assert final_vars(chan) == {"AI_RESPONSE": "Order 99 is on its way.", "AI_STATUS": "OK", "AI_ERROR": ""}
    assert tool_api.requests[0]["path"] == "/orders/99"
    gemini = [r for r in fake_llm.requests if r.vendor == "gemini"]
    assert len(gemini) == 3
    assert gemini[-1].model.endswith("gemini-2.5-flash")
    assert [m.role for m in gemini[-1].messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert final_vars(chan2)["AI_RESPONSE"] == "You asked about order 99."


async def test_older_asterisk_without_setchannelvars(
    make_settings: Any, fake_llm: FakeLLMServer, database_url: str
) -> None:
    old = FakeAriServer(asterisk_version="20.5.0")
    await old.start()
    try:
        settings = make_settings(asterisk_ari_url=old.base_url)
        async with run_gateway(settings, old):
            fake_llm.script("OLD-1", [TextReply("works on 20.5")])
            chan = await old.place_call("ai_ari_app,USER_INPUT=OLD-1 hi")
            await chan.wait_left_stasis(10)
        assert final_vars(chan)["AI_RESPONSE"] == "works on 20.5"
        assert chan.continued_count == 1
        assert old.spec_violations == []
    finally:
        await old.stop()


async def test_caller_hangs_up_during_turn(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        fake_llm.script("HUP-1", [HangReply(0.5, "too late")])
        chan = await fake_ari.place_call("ai_ari_app,USER_INPUT=HUP-1 hi")
        await asyncio.sleep(0.1)
        await fake_ari.hangup_by_caller(chan.id)
        await wait_until_idle(app, 5)
    assert chan.continued_count == 0
    assert json.dumps(fake_ari.spec_violations) == "[]"


async def park_channel_with_crashed_gateway(fake_ari: FakeAriServer, app_data: str) -> FakeChannel:
    """A gateway that took the StasisStart and then died: the channel stays parked."""
    auth = {"Authorization": "Basic " + base64.b64encode(b"asterisk:asterisk").decode()}
    url = fake_ari.base_url.replace("http://", "ws://") + "/ari/events?app=ai_ari_app&subscribeAll=false"
    async with websockets.connect(url, additional_headers=auth) as ws:
        await fake_ari.wait_for_ws("ai_ari_app")
        chan = await fake_ari.place_call(app_data)
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["type"] == "StasisStart"
    await fake_ari.wait_until(lambda: fake_ari.ws_count("ai_ari_app") == 0)
    assert chan.in_stasis and fake_ari.parked_channels("ai_ari_app") == [chan.id]
    return chan


async def test_reconnects_and_continues_parked_channels(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer
) -> None:
    settings = make_settings(ari_reconnect_min_seconds=0.6, ari_reconnect_max_seconds=1.0)
    async with run_gateway(settings, fake_ari) as app:
        events = state_of(app).ari_events
        assert events is not None
        # A turn is in progress when Asterisk drops our WebSocket...
        fake_llm.script("INFLIGHT-1", [HangReply(1.5, "answered across the reconnect")])
        busy = await fake_ari.place_call("ai_ari_app,USER_INPUT=INFLIGHT-1 hi")
        await asyncio.sleep(0.2)
        await fake_ari.drop_websockets()
        # ...and while we are away a new channel enters Stasis. Asterisk keeps the
        # application (a channel is in it) but will never replay that StasisStart.
        parked = await fake_ari.place_call("ai_ari_app,USER_INPUT=arrived while you were away")
        assert parked.in_stasis
        await fake_ari.wait_for_ws("ai_ari_app", timeout=5)
        await parked.wait_left_stasis(10)
        await busy.wait_left_stasis(10)
        assert final_vars(parked)["AI_STATUS"] == "ERROR"
        assert final_vars(parked)["AI_ERROR"] == "gateway_restarted"
        assert final_vars(parked)["AI_RESPONSE"]
        assert final_vars(busy)["AI_RESPONSE"] == "answered across the reconnect"
        assert parked.continued_count == 1 and busy.continued_count == 1
        assert events.reconnects >= 1 and events.state == "connected"
        fake_llm.script("AFTER-RC", [TextReply("back online")])
        chan = await failing_call(fake_ari, "AFTER-RC hi", "")
        assert final_vars(chan)["AI_RESPONSE"] == "back online"
    assert fake_ari.spec_violations == []


async def test_gateway_start_continues_channels_parked_by_a_crash(
    make_settings: Any, fake_ari: FakeAriServer
) -> None:
    chan = await park_channel_with_crashed_gateway(fake_ari, "ai_ari_app,USER_INPUT=hello,UNIQUEID=x")
    async with run_gateway(make_settings(), fake_ari):
        await chan.wait_left_stasis(10)
    assert final_vars(chan)["AI_STATUS"] == "ERROR"
    assert final_vars(chan)["AI_ERROR"] == "gateway_restarted"
    assert chan.continued_count == 1
    assert fake_ari.spec_violations == []


async def test_a_call_arriving_while_parked_channels_are_listed_is_answered_not_recovered(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer
) -> None:
    """At start-up the gateway lists the application's channels; a call that entered Stasis
    just before the listing has its `StasisStart` still on the wire. Only the channel parked
    by the crash gets `gateway_restarted`; the new caller gets an answer."""
    parked = await park_channel_with_crashed_gateway(fake_ari, "ai_ari_app,USER_INPUT=hello,UNIQUEID=x")
    fake_llm.script("JUST-IN", [TextReply("welcome, new caller")])
    list_app = fake_ari._handlers[("applications", "get")]
    arrivals: list[FakeChannel] = []

    async def call_arrives_then_list(*args: Any) -> Any:
        if not arrivals:  # the first listing, right after the gateway connected
            arrivals.append(await fake_ari.place_call("ai_ari_app,USER_INPUT=JUST-IN hi"))
        return await list_app(*args)

    fake_ari._handlers[("applications", "get")] = call_arrives_then_list
    async with run_gateway(make_settings(), fake_ari) as app:
        await parked.wait_left_stasis(10)
        await arrivals[0].wait_left_stasis(10)
        await wait_until_idle(app)
    assert final_vars(parked)["AI_ERROR"] == "gateway_restarted"
    assert final_vars(arrivals[0]) == {
        "AI_RESPONSE": "welcome, new caller",
        "AI_STATUS": "OK",
        "AI_ERROR": "",
    }
    assert arrivals[0].continued_count == 1
    # The gateway waited for its own user event (queued behind that StasisStart), not a fixed grace.
    kinds = [e["type"] for e in fake_ari.events if e["type"] in ("ChannelUserevent", "StasisEnd")]
    assert kinds[0] == "ChannelUserevent", kinds
