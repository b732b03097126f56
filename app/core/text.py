"""Caller text hygiene shared by the call path: length caps, control characters, broken UTF-8."""

from __future__ import annotations

import unicodedata


def clean_text(value: str, max_chars: int) -> str:
    """Make caller-supplied text safe to log, store and send to a model.

    Drops control and format characters (keeping none; tabs and newlines become
    spaces), replaces lone surrogates left by a non-UTF-8 source, collapses runs of
    whitespace and caps the result at `max_chars` characters.
    """
    value = value.encode("utf-8", "replace").decode("utf-8")
    out = []
    for ch in value:
        if ch in "\t\r\n":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
            continue
        else:
            out.append(ch)
    text = " ".join("".join(out).split())
    return text[:max_chars]
