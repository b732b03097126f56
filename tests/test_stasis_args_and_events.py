"""Stasis args parsing and ARI event parsing, against events captured from a real Asterisk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.text import clean_text
from app.services.telephony.events import (
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelVarset,
    EventParseError,
    GenericEvent,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    StasisStart,
    event_target,
    parse_event,
)
from app.services.telephony.stasis_args import parse_stasis_args
from app.testing.fake_ari import split_stasis_app_data

SAMPLES = Path(__file__).parent / "fixtures" / "ari_samples"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def test_captured_comma_split_args_are_rejoined() -> None:
    event = parse_event(json.dumps(sample("StasisStart-ai-test.json")))
    assert isinstance(event, StasisStart)
    assert event.args == [
        "USER_INPUT=hello world",
        " how are you",
        "UNIQUEID=1795437522.22",
        "AI_PROMPT_NAME=greeting",
    ]
    parsed = parse_stasis_args(event.args)
    assert parsed.named == {
        "USER_INPUT": "hello world, how are you",
        "UNIQUEID": "1795437522.22",
        "AI_PROMPT_NAME": "greeting",
    }
    assert parsed.split_keys == {"USER_INPUT"}
    assert event.channel.caller.number == "100"
    assert event.channel.state == "Ring"


@pytest.mark.parametrize(
    "name", ["StasisStart.json", "StasisStart-pjsip.json", "StasisStart-ai-test-answered.json"]
)
def test_every_captured_stasis_start_parses(name: str) -> None:
    event = parse_event(json.dumps(sample(name)))
    assert isinstance(event, StasisStart)
    assert event.channel.id


def test_other_captured_events_parse_to_their_types() -> None:
    assert isinstance(parse_event(json.dumps(sample("StasisEnd.json"))), StasisEnd)
    varset = parse_event(json.dumps(sample("ChannelVarset-AI_RESPONSE.json")))
    assert isinstance(varset, ChannelVarset) and varset.variable == "AI_RESPONSE"
    hangup = parse_event(json.dumps(sample("ChannelHangupRequest-after-ari-DELETE.json")))
    assert isinstance(hangup, ChannelHangupRequest)
    recording = parse_event(json.dumps(sample("RecordingStarted.json")))
    assert isinstance(recording, GenericEvent) and recording.type == "RecordingStarted"


def test_playback_events_are_typed_and_routed_to_their_channel() -> None:
    started = parse_event(json.dumps(sample("PlaybackStarted.json")))
    finished = parse_event(json.dumps(sample("PlaybackFinished.json")))
    assert isinstance(started, PlaybackStarted) and started.playback.state == "playing"
    assert isinstance(finished, PlaybackFinished) and finished.playback.state == "done"
    # target_uri "channel:1795437523.24": the session of that channel gets it.
    assert event_target(finished) == "1795437523.24"


def test_dtmf_event_parses_per_events_json() -> None:
    channel = sample("StasisStart.json")["channel"]
    frame = {"type": "ChannelDtmfReceived", "application": "ai_ari_app", "channel": channel}
    event = parse_event(json.dumps({**frame, "digit": "#", "duration_ms": 100}))
    assert isinstance(event, ChannelDtmfReceived)
    assert (event.digit, event.duration_ms, event_target(event)) == ("#", 100, channel["id"])
    with pytest.raises(EventParseError):  # digit is required (events.json)
        parse_event(json.dumps(frame))


def test_every_event_in_captured_sequences_parses() -> None:
    for name in (
        "sequence-basic.json",
        "sequence-media.json",
        "sequence-sipp.json",
        "sequence-extmedia.json",
    ):
        items = sample(name)
        events = [item for item in items if isinstance(item, dict) and "type" in item]
        assert events, name
        for item in events:
            parse_event(json.dumps(item))


@pytest.mark.parametrize("frame", ["not json", "[]", '{"no_type": 1}', '{"type": "StasisStart"}'])
def test_bad_frames_raise_a_clear_error(frame: str) -> None:
    with pytest.raises(EventParseError):
        parse_event(frame)


def test_value_may_contain_equals_and_positional_args_are_kept() -> None:
    parsed = parse_stasis_args(["first", "second", "USER_INPUT=a=b", "X=1"])
    assert parsed.positional == ["first", "second"]
    assert parsed.named == {"USER_INPUT": "a=b", "X": "1"}


def test_a_piece_that_looks_like_a_key_with_leading_space_is_a_continuation() -> None:
    # Stasis(app,USER_INPUT=set x, y=2) -> the caller said "set x, y=2"
    parsed = parse_stasis_args(["USER_INPUT=set x", " y=2"])
    assert parsed.named == {"USER_INPUT": "set x, y=2"}


def test_values_are_capped() -> None:
    parsed = parse_stasis_args(["USER_INPUT=" + "a" * 10_000], max_chars=100)
    assert len(parsed.named["USER_INPUT"]) == 100


def test_clean_text_drops_control_characters_and_caps() -> None:
    assert clean_text("hi\x00 there\x07\n\tfriend\u200b", 100) == "hi there friend"
    assert clean_text("\udcff bad surrogate", 100) == "? bad surrogate"
    assert clean_text("x" * 50, 10) == "x" * 10


keys = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
values = st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), max_size=30)


@given(st.dictionaries(keys, st.lists(values, min_size=1, max_size=4), max_size=6))
def test_parser_recovers_what_the_dialplan_wrote(original: dict[str, list[str]]) -> None:
    """Whatever KEY=VALUE args with commas a dialplan writes, parsing Asterisk's split gives them back.

    Values are built from comma-separated pieces; a piece after the first that itself looks
    like KEY=VALUE would be ambiguous for Asterisk too, so such pieces start with a space.
    """
    written = {k: ",".join([pieces[0], *(" " + p for p in pieces[1:])]) for k, pieces in original.items()}
    app_data = "app," + ",".join(f"{k}={v}" for k, v in written.items())
    _app, args = split_stasis_app_data(app_data)
    assert parse_stasis_args(args, max_chars=10_000).named == written
