"""Hands a call back to the dialplan: channel variables, then `continue`.

A conversation ends with a `ConversationResult`: the channel variables to set
(`AI_RESPONSE`, `AI_STATUS`, `AI_ERROR`; voice adds `AI_END_REASON`, `AI_TURNS`,
`AI_TRANSFER_TARGET`) and an optional dialplan target for `continueInDialplan`
(`context`, `extension`, `priority`: a blind transfer). Delivery is retried while
ARI is unreachable, until the channel is gone (404), it hung up, or the time limit
(`ARI_DELIVERY_MAX_SECONDS`) passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.services.domain import TurnOutcome
from app.services.telephony.ari_client import AriClient, AriConflict, AriError, AriNotFound, AriUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DialplanTarget:
    """Where `continueInDialplan` sends the channel (ARI `context`, `extension`, `priority`)."""

    context: str
    extension: str
    priority: int = 1


@dataclass(slots=True)
class ConversationResult:
    """How a conversation hands the channel back to the dialplan.

    Attributes:
        variables: channel variables to set before `continue` (name -> value).
        target: where to continue; None for the next priority after `Stasis()`.
    """

    variables: dict[str, str] = field(default_factory=dict)
    target: DialplanTarget | None = None

    @classmethod
    def from_outcome(cls, outcome: TurnOutcome) -> ConversationResult:
        """`AI_RESPONSE`/`AI_STATUS`/`AI_ERROR` of one turn, continuing at the next priority."""
        return cls(outcome.channel_variables())

    @property
    def status(self) -> str:
        """`AI_STATUS`, for logs."""
        return self.variables.get("AI_STATUS", "")


class Delivery:
    """Sets the result variables and continues channels, retrying through ARI outages.

    Args:
        ari: REST client.
        connected: set while the event source is up (a retry waits on it).
        max_seconds: the longest a delivery keeps retrying, in s.
    """

    def __init__(self, ari: AriClient, connected: asyncio.Event | None, max_seconds: float) -> None:
        """Keep collaborators; no I/O here."""
        self._ari = ari
        self._connected = connected
        self._max = max_seconds
        self.continued = 0

    async def deliver(
        self, cid: str, result: ConversationResult, hung_up: Callable[[], bool] = lambda: False
    ) -> bool:
        """Set `result.variables` on channel `cid`, then `continue` it (to `result.target`).

        Args:
            cid: the channel id.
            result: variables and target.
            hung_up: tells whether the caller hung up meanwhile (stop retrying then).

        Returns:
            True when `continue` was accepted; False when the channel was gone or
            delivery gave up (each case logged).
        """
        give_up_at = time.monotonic() + self._max
        attempt = 0
        target = result.target
        while True:
            try:
                await self._ari.set_channel_vars(cid, result.variables)
                if target is None:
                    await self._ari.continue_in_dialplan(cid)
                else:
                    await self._ari.continue_in_dialplan(
                        cid, context=target.context, extension=target.extension, priority=target.priority
                    )
                self.continued += 1
                logger.info("channel=%s continued AI_STATUS=%s", cid, result.status)
                return True
            except AriNotFound:
                logger.info("channel=%s is gone (hung up); result dropped", cid)
                return False
            except AriConflict:
                logger.info("channel=%s already left Stasis; result dropped", cid)
                return False
            except AriError as exc:
                attempt += 1
                if hung_up() or time.monotonic() > give_up_at:
                    logger.error("channel=%s result not delivered: %s", cid, exc)
                    return False
                if not isinstance(exc, AriUnavailable) and attempt >= 3:
                    logger.error("channel=%s ARI keeps failing (%s); giving up", cid, exc)
                    return False
                logger.warning("channel=%s delivery failed (%s); retrying", cid, exc)
                await self._wait_for_ari(min(0.25 * 2**attempt, 5.0))

    async def _wait_for_ari(self, seconds: float) -> None:
        if self._connected is None or self._connected.is_set():
            await asyncio.sleep(seconds)
            return
        try:
            async with asyncio.timeout(seconds * 4):
                await self._connected.wait()
        except TimeoutError:
            return
