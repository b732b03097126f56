"""Asterisk's media WebSocket (chan_websocket) protocol: control messages and audio formats.

Protocol facts, all from chan_websocket with ``control_message_format = json`` as captured on
a real PBX (``../shared/ari-samples/media/README.md``, committed as
``tests/fixtures/media/``):

* Asterisk sends ``MEDIA_START`` first, then binary audio frames of ``optimal_frame_size``
  bytes every ``ptime`` ms (160 bytes ulaw / 640 bytes slin16 per 20 ms) while the caller
  sends audio. A silent caller may send **no frames at all**.
* The application sends binary audio (cut by Asterisk into ``optimal_frame_size`` frames;
  the remainder of a message that is not a whole number of frames is dropped unless wrapped
  in ``START_MEDIA_BUFFERING``) and JSON commands in text frames of at most 128 bytes.
* Asterisk queues at most 1000 frames; it sends ``MEDIA_XOFF`` at 900 and ``MEDIA_XON``
  below 800. A binary message that arrives while the queue is full is dropped whole.
* ``MARK_MEDIA`` is answered by ``MEDIA_MARK_PROCESSED`` when the audio before it has
  played; ``FLUSH_MEDIA`` empties the queue and drops pending marks without an answer.
* Caller DTMF arrives as ``DTMF_END`` (and as ARI ``ChannelDtmfReceived`` on the caller's
  channel). One WebSocket message may be at most 65,535 bytes including its header.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import orjson

#: Largest text frame Asterisk accepts (bytes); longer commands are ignored.
MAX_COMMAND_BYTES = 128
#: Largest binary payload (bytes) when we are the WebSocket client (masked frames, server mode).
MAX_BINARY_AS_CLIENT = 65_527
#: Largest binary payload (bytes) when we are the WebSocket server (client mode).
MAX_BINARY_AS_SERVER = 65_531
#: chan_websocket's outbound queue limit, and its flow-control thresholds (frames).
QUEUE_LIMIT_FRAMES = 1000
XOFF_FRAMES = 900
XON_FRAMES = 800
#: The WebSocket subprotocol Asterisk speaks (``websocket_client.conf`` ``protocols=media``).
SUBPROTOCOL = "media"


class MediaCodec(enum.StrEnum):
    """Codecs the gateway speaks on the media WebSocket (externalMedia ``format``)."""

    ULAW = "ulaw"
    SLIN16 = "slin16"


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """One codec's framing.

    Attributes:
        codec: ``ulaw`` (G.711 μ-law, 8 kHz, 1 byte per sample) or ``slin16`` (s16le, 16 kHz).
        sample_rate_hz: samples per second on the wire.
        bytes_per_sample: 1 for ulaw, 2 for slin16.
        frame_ms: packet time (``ptime``), in ms.
    """

    codec: MediaCodec
    sample_rate_hz: int
    bytes_per_sample: int
    frame_ms: int = 20

    @property
    def bytes_per_frame(self) -> int:
        """Bytes in one ``frame_ms`` frame (160 for ulaw, 640 for slin16 at 20 ms)."""
        return self.sample_rate_hz * self.frame_ms // 1000 * self.bytes_per_sample

    @classmethod
    def for_codec(cls, codec: str, frame_ms: int = 20) -> AudioFormat:
        """The framing of `codec` (``ulaw`` or ``slin16``).

        Raises:
            ValueError: any other codec.
        """
        c = MediaCodec(codec)
        if c is MediaCodec.ULAW:
            return cls(c, 8000, 1, frame_ms)
        return cls(c, 16000, 2, frame_ms)


# --- events Asterisk sends (text frames) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaStart:
    """``MEDIA_START``: the first message on every media connection.

    Attributes:
        channel_id: the externalMedia channel's id (matches the ARI REST response).
        connection_id: ``websocket_client.conf`` id (client mode) or a per-call UUID (server mode).
        channel: channel name, e.g. ``WebSocket/media_connection1/0x…``.
        format: the codec, ``ulaw`` or ``slin16``.
        optimal_frame_size: bytes per frame.
        ptime: ms per frame.
        channel_variables: the channel's variables, as sent.
    """

    channel_id: str
    connection_id: str = ""
    channel: str = ""
    format: str = "ulaw"
    optimal_frame_size: int = 160
    ptime: int = 20
    channel_variables: dict[str, str] = field(default_factory=dict)

    @property
    def audio_format(self) -> AudioFormat:
        """The framing announced by this ``MEDIA_START``."""
        return AudioFormat.for_codec(self.format, self.ptime)


@dataclass(frozen=True, slots=True)
class MediaEvent:
    """Any control event but ``MEDIA_START``.

    ``MEDIA_XOFF``, ``MEDIA_XON``, ``MEDIA_MARK_PROCESSED``, ``QUEUE_DRAINED``, ``STATUS``,
    ``DTMF_END``, ``MEDIA_BUFFERING_COMPLETED``, ``ERROR``; ``CLOSED`` is ours (the socket ended).

    Attributes:
        event: the ``event`` field.
        channel_id: the ``channel_id`` field.
        data: the whole message.
    """

    event: str
    channel_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def correlation_id(self) -> str:
        """``correlation_id`` of a mark or buffering event, else ``""``."""
        return str(self.data.get("correlation_id", ""))

    @property
    def digit(self) -> str:
        """The DTMF digit of ``DTMF_END``, else ``""``."""
        return str(self.data.get("digit", ""))


class ProtocolError(ValueError):
    """A text frame that is not a chan_websocket JSON control message."""


def parse_control(text: str | bytes) -> MediaStart | MediaEvent:
    """Parse one JSON control message from Asterisk.

    Args:
        text: the text frame.

    Raises:
        ProtocolError: not JSON, or no ``event`` field.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {str(text)[:80]!r}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise ProtocolError(f"no event field: {str(text)[:80]!r}")
    if data["event"] == "MEDIA_START":
        variables = data.get("channel_variables") or {}
        return MediaStart(
            channel_id=str(data.get("channel_id", "")),
            connection_id=str(data.get("connection_id", "")),
            channel=str(data.get("channel", "")),
            format=str(data.get("format", "ulaw")),
            optimal_frame_size=int(data.get("optimal_frame_size", 160)),
            ptime=int(data.get("ptime", 20)),
            channel_variables={str(k): str(v) for k, v in variables.items()},
        )
    return MediaEvent(data["event"], str(data.get("channel_id", "")), data)


def command(name: str, **fields: str) -> str:
    """One JSON command for Asterisk, e.g. ``command("MARK_MEDIA", correlation_id="m1")``.

    Raises:
        ValueError: the encoded command is longer than 128 bytes (Asterisk would ignore it).
    """
    text = orjson.dumps({"command": name, **fields}).decode()
    if len(text.encode()) > MAX_COMMAND_BYTES:
        raise ValueError(f"command {name} is {len(text)} bytes; chan_websocket ignores > 128")
    return text
