"""Keeps a long-running reader alive: restart it with backoff when it dies of a bug.

`AriEventStream.run()` already reconnects on every network failure it knows
(closed WebSocket, refused handshake, timeouts). This supervisor covers the rest:
an exception nobody expected (a bug in event handling, a library raising something
new) would otherwise end the reader task silently, and the Stasis application would
stay unregistered, so Asterisk answers every `Stasis()` with `STASISSTATUS=FAILED`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def supervise(
    run: Callable[[], Awaitable[None]],
    *,
    name: str,
    on_crash: Callable[[BaseException, float], None] | None = None,
    min_backoff_s: float = 0.5,
    max_backoff_s: float = 30.0,
) -> None:
    """Await `run()` until it returns normally; after an unexpected exception, restart it.

    The delay before restart n (counting crashes in a row) is drawn uniformly from
    ``[min_backoff_s / 2, min(max_backoff_s, min_backoff_s * 2**n)]`` seconds. A run that
    lasted longer than `max_backoff_s` resets the count. Cancellation is never caught.

    Args:
        run: the coroutine function to keep alive (e.g. `AriEventStream.run`); it returns
            normally only when asked to stop.
        name: what the log lines call it, e.g. "ARI event reader".
        on_crash: called with the exception and the delay (s) before each restart
            (update state, count the restart in a metric).
        min_backoff_s: first delay, seconds.
        max_backoff_s: largest delay, seconds.
    """
    crashes = 0
    while True:
        started = time.monotonic()
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - started > max_backoff_s:
                crashes = 0
            crashes += 1
            cap = min(max_backoff_s, min_backoff_s * (2 ** min(crashes, 16)))
            delay = random.uniform(min_backoff_s / 2, cap)
            logger.exception(
                "%s ended on an unexpected %s; restart %d in %.2fs", name, type(exc).__name__, crashes, delay
            )
            if on_crash is not None:
                on_crash(exc, delay)
            await asyncio.sleep(delay)
