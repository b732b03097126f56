"""Greetings synthesised once per prompt version, voice and codec, so callers hear them at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Greeting audio is replayed in chunks of this many ms.
GREETING_CHUNK_MS = 100


@dataclass(slots=True)
class GreetingAudio:
    """A synthesised greeting: s16le PCM at `sample_rate_hz`, and its text."""

    text: str
    pcm: bytes
    sample_rate_hz: int

    def frames(self) -> list[Any]:
        """The audio as pipecat `OutputAudioRawFrame`s of `GREETING_CHUNK_MS` each."""
        from pipecat.frames.frames import OutputAudioRawFrame

        step = self.sample_rate_hz * 2 * GREETING_CHUNK_MS // 1000
        return [
            OutputAudioRawFrame(self.pcm[i : i + step], self.sample_rate_hz, 1)
            for i in range(0, len(self.pcm), step)
        ]


@dataclass(slots=True)
class GreetingCache:
    """Greetings synthesised once per (prompt id, prompt version, TTS provider, voice, codec).

    Attributes:
        max_entries: oldest entries are dropped past this many.
    """

    max_entries: int = 256
    _items: dict[tuple[Any, ...], GreetingAudio] = field(default_factory=dict)

    def get(self, key: tuple[Any, ...]) -> GreetingAudio | None:
        """The cached greeting for `key`, if any."""
        return self._items.get(key)

    def put(self, key: tuple[Any, ...], audio: GreetingAudio) -> None:
        """Keep `audio` for `key`."""
        self._items[key] = audio
        while len(self._items) > self.max_entries:
            self._items.pop(next(iter(self._items)))
