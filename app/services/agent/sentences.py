"""Cuts streamed model text into whole sentences, for text-to-speech.

A sentence ends at ``.``, ``!``, ``?`` or ``…`` (optionally followed by closing quotes
or brackets) followed by whitespace, or at a line break. Decimal numbers (``3.5``)
never split because no whitespace follows the dot; a few common abbreviations
(``Mr.``, ``Dr.``, ``e.g.``) and very short pieces are kept with what follows, so
speech does not stop on them.
"""

from __future__ import annotations

import re

_END = re.compile(r"([.!?…]+[\"')\]]*)\s+|\n+")
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "st.", "no.", "e.g.", "i.e.", "etc.", "vs.", "approx."}
)


class SentenceSplitter:
    """Feed text deltas in order; get back each sentence once it is complete.

    Args:
        min_chars: a piece shorter than this (characters) is joined to the next one,
            so "Yes." or "OK." is not sent to TTS alone.
    """

    def __init__(self, min_chars: int = 12) -> None:
        """Start with an empty buffer."""
        self._buffer = ""
        self._min_chars = min_chars

    def feed(self, delta: str) -> list[str]:
        """Add a delta; return the sentences it completed (stripped, in order)."""
        self._buffer += delta
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            end = match.end(1) if match.group(1) else match.start()
            piece = self._buffer[start:end].strip()
            if not piece:
                start = match.end()
                continue
            last_word = piece.rsplit(None, 1)[-1].lower()
            if last_word in _ABBREVIATIONS or (len(piece) < self._min_chars and match.group(1)):
                continue
            out.append(piece)
            start = match.end()
        self._buffer = self._buffer[start:]
        return out

    def flush(self) -> list[str]:
        """The rest of the text (a last sentence without final punctuation), if any."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []


def split_sentences(text: str, min_chars: int = 12) -> list[str]:
    """All sentences of a whole text (`SentenceSplitter` fed once, then flushed)."""
    splitter = SentenceSplitter(min_chars)
    return [*splitter.feed(text), *splitter.flush()]
