"""Call sessions end to end: hang-up cancels the turn, events reach their session, modes plug in.

Fake Asterisk (ARI over HTTP + WebSocket) -> gateway -> real LangChain agent + OpenAI SDK ->
fake vendor server; real Redis and database.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from sqlalchemy import select

from app.models import Call
from app.services.telephony.delivery import ConversationResult, DialplanTarget
from app.services.telephony.events import (
    AriEvent,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    StasisStart,
)
from app.services.telephony.session import CallSession
from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_llm import FakeLLMServer, HangReply
from tests.conftest import run_gateway, state_of, wait_until_idle
from tests.utils import ToolApi, create_prompt, create_tool


def final_vars(chan: FakeChannel) -> dict[str, str | None]:
    """Channel variables as the gateway set them, last value wins."""
    return {op[1]: op[2] for op in chan.operations if op[0] == "setvar"}


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_hangup_mid_turn_closes_the_model_request_and_starts_no_tool_call(
    make_settings: Any, fake_ari: FakeAriServer, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        st = state_of(app)
        tool = await create_tool(st.session_factory, url=tool_api.url + "/orders/{order_id}")
        await create_prompt(st.session_factory, "support", tools=[tool])
        # After 2 s the stand-in would answer with a check_order tool call (the offline
        # model calls a tool the caller names): only a closed request prevents it.
        fake_llm.script("HUP-TOOL", [HangReply(2.0)])
        chan = await fake_ari.place_call(
            "ai_ari_app,USER_INPUT=HUP-TOOL check order 42,UNIQUEID=conv-hup,AI_PROMPT_NAME=support"
        )
        await wait_for(lambda: len(fake_llm.requests) == 1)
        await fake_ari.hangup_by_caller(chan.id)
        await wait_for(lambda: len(fake_llm.disconnected) == 1, timeout=3.0)
        await wait_until_idle(app, 5)
        await asyncio.sleep(2.2)  # past the moment the stand-in would have answered
        await st.call_log.flush()
        async with st.session_factory() as s:
            call = (await s.scalars(select(Call).where(Call.channel_id == chan.id))).one()
    assert tool_api.requests == [], "a tool call started after the hang-up"
    assert len(fake_llm.requests) == 1
    assert chan.continued_count == 0
    assert [t.status for t in call.turns] == ["HANGUP"]
    assert call.turns[0].user_input == "HUP-TOOL check order 42"


class ProbeConversation:
    """A mode that attaches an externalMedia-like channel and collects the session's events."""

    seen: ClassVar[dict[str, list[AriEvent]]] = {}

    def __init__(self, session: CallSession) -> None:
        self.session = session
        self.seen[session.channel_id] = []

    async def run(self) -> ConversationResult:
        if self.session.channel.caller.number == "100":
            self.session.attach("external-1")
        digits = ""
        while True:
            event = await self.session.next_event()
            self.seen[self.session.channel_id].append(event)
            if isinstance(event, ChannelDtmfReceived):
                digits += event.digit
            if isinstance(event, PlaybackFinished):
                break
        return ConversationResult(
            {"AI_STATUS": "TRANSFER", "AI_DIGITS": digits},
            DialplanTarget("sales", "200", 1),
        )


async def test_dtmf_and_attached_channel_events_reach_the_session_of_a_plugged_in_mode(
    make_settings: Any, fake_ari: FakeAriServer
) -> None:
    async with run_gateway(make_settings(), fake_ari) as app:
        manager = state_of(app).sessions
        assert manager is not None
        manager.modes["probe"] = ProbeConversation
        chan = await fake_ari.place_call("ai_ari_app,AI_MODE=probe,UNIQUEID=probe-1")
        other = await fake_ari.place_call("ai_ari_app,AI_MODE=probe,UNIQUEID=probe-2", caller_number="200")
        await wait_for(lambda: manager.find("external-1") is not None)
        await fake_ari.press_dtmf(chan.id, "12#")
        await fake_ari.press_dtmf(other.id, "9")  # another session's DTMF
        ext = {"id": "external-1", "name": "WebSocket/ai-1", "state": "Up"}
        await fake_ari.send_event("ai_ari_app", {"type": "StasisStart", "args": [], "channel": ext})
        await fake_ari.send_event("ai_ari_app", {"type": "ChannelHangupRequest", "channel": ext})
        playback = {"id": "pb-1", "media_uri": "sound:beep", "target_uri": f"channel:{chan.id}"}
        playback["state"] = "done"
        await fake_ari.send_event("ai_ari_app", {"type": "PlaybackFinished", "playback": playback})
        await chan.wait_left_stasis(5)
        seen = list(ProbeConversation.seen[chan.id])
        assert [(e.type, getattr(e, "digit", "")) for e in ProbeConversation.seen[other.id]] == [
            ("ChannelDtmfReceived", "9")
        ]
        await fake_ari.hangup_by_caller(other.id)
        await wait_until_idle(app, 5)
    assert final_vars(chan) == {"AI_STATUS": "TRANSFER", "AI_DIGITS": "12#"}
    assert ("continue", {"context": "sales", "extension": "200", "priority": "1"}) in chan.operations
    kinds = [(e.type, getattr(e, "digit", "")) for e in seen]
    assert kinds == [
        ("ChannelDtmfReceived", "1"),
        ("ChannelDtmfReceived", "2"),
        ("ChannelDtmfReceived", "#"),
        ("StasisStart", ""),
        ("ChannelHangupRequest", ""),
        ("PlaybackFinished", ""),
    ]
    # The attached channel's StasisStart went to the session, not to a new session, and
    # its hang-up did not end the call.
    assert isinstance(seen[3], StasisStart) and seen[3].channel.id == "external-1"
    assert isinstance(seen[4], ChannelHangupRequest) and seen[4].channel.id == "external-1"
    assert other.continued_count == 0 and not chan.in_stasis


async def test_unknown_mode_continues_with_an_error(make_settings: Any, fake_ari: FakeAriServer) -> None:
    async with run_gateway(make_settings(), fake_ari):
        chan = await fake_ari.place_call("ai_ari_app,AI_MODE=karaoke,USER_INPUT=hi")
        await chan.wait_left_stasis(5)
    assert final_vars(chan)["AI_STATUS"] == "ERROR"
    assert final_vars(chan)["AI_ERROR"] == "unknown_mode: karaoke"
    assert final_vars(chan)["AI_RESPONSE"]
