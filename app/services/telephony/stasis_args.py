"""Parse the arguments of `Stasis(<app>,KEY=VALUE,...)` as Asterisk delivers them.

Protocol facts (ARI events.json `StasisStart.args`, and captures in
`tests/fixtures/ari_samples/`):

* `args` is the list of strings after the application name, exactly as the
  dialplan wrote them, split on every comma, with no trimming.
  ``Stasis(app,USER_INPUT=hello, how are you)`` arrives as
  ``["USER_INPUT=hello", " how are you"]``.
* The channel variable of the same name (when the dialplan set one) keeps the
  whole value; callers of this module fetch it for the keys in `split_keys`.

Rules applied here:

* ``KEY=VALUE`` items (KEY matching ``[A-Za-z_][A-Za-z0-9_]*``) start a named arg;
  the value may itself contain ``=``.
* An item that is not ``KEY=VALUE`` and follows a named arg is a continuation of
  that arg: it is rejoined with ``","``.
* Items before the first named arg are bare positional args, kept in order.
* A repeated key: the last one wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)


@dataclass(slots=True)
class StasisArgs:
    """Parsed Stasis args.

    Attributes:
        named: KEY -> VALUE, comma-split pieces rejoined.
        positional: bare args before the first KEY=VALUE, in order.
        split_keys: keys whose value was rejoined from several pieces (their
            intact value may be on the channel as a variable).
    """

    named: dict[str, str] = field(default_factory=dict)
    positional: list[str] = field(default_factory=list)
    split_keys: set[str] = field(default_factory=set)


def parse_stasis_args(args: list[str], *, max_chars: int = 4000) -> StasisArgs:
    """Parse `StasisStart.args` into named and positional args.

    Args:
        args: the event's ``args`` list (strings; anything else is str()-ed).
        max_chars: cap on each value, in characters, after rejoining.

    Returns:
        The parsed args. Never raises on odd input.
    """
    parsed = StasisArgs()
    current: str | None = None
    for raw in args:
        item = raw if isinstance(raw, str) else str(raw)
        match = _KEY_RE.match(item)
        if match:
            current = match.group(1)
            parsed.named[current] = match.group(2)
            parsed.split_keys.discard(current)
        elif current is not None:
            parsed.named[current] = f"{parsed.named[current]},{item}"
            parsed.split_keys.add(current)
        else:
            parsed.positional.append(item[:max_chars])
    for key, value in parsed.named.items():
        parsed.named[key] = value[:max_chars]
    return parsed
