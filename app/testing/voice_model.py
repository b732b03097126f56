"""What the voice stand-ins share: endpoint names, fault kinds, the request record, constants."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Literal

Endpoint = Literal["transcriptions", "speech", "listen", "speak"]
#: OpenAI speech ``pcm`` output rate, in Hz (documented, fixed).
OPENAI_PCM_RATE_HZ = 24000
#: Level above which a 20 ms chunk of caller audio counts as speech (s16le RMS units).
SPEECH_RMS = 300.0
#: Stand-in endpointing when the URL gives none, in ms (Deepgram says 10 ms; see `app.testing.fake_voice`).
DEFAULT_ENDPOINTING_MS = 300
#: Audio sent per binary message or HTTP chunk by the TTS stand-ins, in ms.
TTS_CHUNK_MS = 100


class Fault(enum.Enum):
    """A failure to play on one endpoint until cleared.

    ERROR: HTTP 500 (HTTP endpoints) or a refused WebSocket handshake (500).
    HANG: accept the request, then never answer (until the server stops).
    CLOSE: drop the connection mid-way (after the first audio chunk, either way).
    """

    ERROR = "error"
    HANG = "hang"
    CLOSE = "close"


@dataclass
class VoiceRequest:
    """One HTTP request or WebSocket connection the stand-in received.

    Attributes:
        endpoint: which API.
        started_at: ``time.monotonic()`` at arrival, in s.
        params: query parameters and form/JSON fields (no audio).
        text: text to speak (speech; Aura ``Speak`` texts joined with spaces).
        audio_bytes: caller audio received (transcriptions, listen), in bytes.
        audio: the uploaded utterance (transcriptions), s16le mono at `audio_rate_hz`.
        audio_rate_hz: its rate, from the WAV header or the listen URL, in Hz.
        messages: WebSocket messages received: ``"audio"`` or the JSON ``type``.
        last_activity_at: ``time.monotonic()`` of the last byte received, in s.
        transcripts: transcripts answered.
    """

    endpoint: Endpoint
    started_at: float
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""
    audio_bytes: int = 0
    audio: bytes = b""
    audio_rate_hz: int = 0
    messages: list[str] = field(default_factory=list)
    last_activity_at: float = 0.0
    transcripts: list[str] = field(default_factory=list)

    def touch(self, message: str | None = None) -> None:
        """Note activity now (and the message kind, for WebSockets)."""
        self.last_activity_at = time.monotonic()
        if message is not None:
            self.messages.append(message)
