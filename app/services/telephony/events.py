"""Typed ARI events, parsed from the `/ari/events` WebSocket.

Shapes follow Asterisk's `events.json` (models `Event`, `StasisStart`, `StasisEnd`,
`ChannelHangupRequest`, `ChannelVarset`, `ChannelDestroyed`, `ChannelDtmfReceived`,
`PlaybackStarted`, `PlaybackFinished`), `channels.json` (model `Channel`) and
`playbacks.json` (model `Playback`); samples in `ari-samples/PlaybackFinished.json`.
Unknown event types parse into `GenericEvent` and are ignored by the sessions, never
fatal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CallerID(_Model):
    """ARI `CallerID`: name and number."""

    name: str = ""
    number: str = ""


class DialplanCEP(_Model):
    """ARI `DialplanCEP`: where the channel is in the dialplan."""

    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""


class Channel(_Model):
    """ARI `Channel` (the fields the gateway uses)."""

    id: str
    name: str = ""
    state: str = ""
    caller: CallerID = Field(default_factory=CallerID)
    connected: CallerID = Field(default_factory=CallerID)
    dialplan: DialplanCEP | None = None
    language: str = "en"
    creationtime: str | None = None


class _Event(_Model):
    application: str = ""
    timestamp: str | None = None
    asterisk_id: str | None = None


class StasisStart(_Event):
    """A channel entered our Stasis application; `args` are the Stasis() args."""

    type: Literal["StasisStart"]
    args: list[str] = Field(default_factory=list)
    channel: Channel
    replace_channel: Channel | None = None


class StasisEnd(_Event):
    """A channel left our Stasis application (continue, hangup, or move)."""

    type: Literal["StasisEnd"]
    channel: Channel


class ChannelHangupRequest(_Event):
    """Hangup requested on a channel (`cause` is a Q.850 cause code)."""

    type: Literal["ChannelHangupRequest"]
    channel: Channel
    cause: int | None = None
    soft: bool | None = None


class ChannelDestroyed(_Event):
    """A channel was destroyed."""

    type: Literal["ChannelDestroyed"]
    channel: Channel
    cause: int | None = None
    cause_txt: str | None = None


class ChannelVarset(_Event):
    """A channel variable changed (only variables set with report_events)."""

    type: Literal["ChannelVarset"]
    variable: str
    value: str = ""
    channel: Channel | None = None


class ChannelDtmfReceived(_Event):
    """A DTMF digit was received on a channel (events.json `ChannelDtmfReceived`).

    Attributes:
        digit: ``0``-``9``, ``A``-``E``, ``#`` or ``*``.
        duration_ms: how long the digit was held, in ms.
    """

    type: Literal["ChannelDtmfReceived"]
    channel: Channel
    digit: str
    duration_ms: int = 0


class Playback(_Model):
    """ARI `Playback` (playbacks.json).

    Attributes:
        target_uri: ``channel:<id>`` or ``bridge:<id>``.
        state: ``queued``, ``playing``, ``continuing``, ``done`` or ``failed``.
    """

    id: str
    media_uri: str = ""
    target_uri: str = ""
    state: str = ""
    language: str | None = None

    @property
    def target_id(self) -> str:
        """The channel or bridge id from `target_uri` (``channel:1795437523.24`` -> id)."""
        return self.target_uri.partition(":")[2]


class PlaybackStarted(_Event):
    """A playback started on a channel or bridge."""

    type: Literal["PlaybackStarted"]
    playback: Playback


class PlaybackFinished(_Event):
    """A playback ended (``state`` ``done`` or ``failed``)."""

    type: Literal["PlaybackFinished"]
    playback: Playback


class GenericEvent(_Event):
    """Any other event type; kept for logging only."""

    type: str
    raw: dict[str, Any] = Field(default_factory=dict)


_Known = (
    StasisStart
    | StasisEnd
    | ChannelHangupRequest
    | ChannelDestroyed
    | ChannelVarset
    | ChannelDtmfReceived
    | PlaybackStarted
    | PlaybackFinished
)
KnownEvent = Annotated[_Known, Field(discriminator="type")]
AriEvent = _Known | GenericEvent

_KNOWN = TypeAdapter(KnownEvent)
_KNOWN_TYPES = frozenset(
    {
        "StasisStart",
        "StasisEnd",
        "ChannelHangupRequest",
        "ChannelDestroyed",
        "ChannelVarset",
        "ChannelDtmfReceived",
        "PlaybackStarted",
        "PlaybackFinished",
    }
)


def event_target(event: AriEvent) -> str | None:
    """The channel (or bridge) id an event is about, for routing to its session; None if none."""
    if isinstance(event, PlaybackStarted | PlaybackFinished):
        return event.playback.target_id
    channel = getattr(event, "channel", None)
    return channel.id if isinstance(channel, Channel) else None


class EventParseError(ValueError):
    """A WebSocket frame is not a JSON ARI event."""


def parse_event(frame: str | bytes) -> AriEvent:
    """Parse one WebSocket text frame into an event.

    Raises:
        EventParseError: the frame is not a JSON object with a string ``type``, or
            a known event type is missing required fields.
    """
    try:
        data = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise EventParseError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise EventParseError("not an ARI event (no 'type')")
    try:
        if data["type"] in _KNOWN_TYPES:
            return _KNOWN.validate_python(data)
        return GenericEvent(
            type=data["type"],
            application=str(data.get("application", "")),
            timestamp=data.get("timestamp"),
            raw=data,
        )
    except ValidationError as exc:
        raise EventParseError(f"malformed {data['type']}: {exc.error_count()} errors") from exc
