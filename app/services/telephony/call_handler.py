"""Handles our Stasis application's events: one task per `StasisStart`, always a `continue`.

For each channel that enters `Stasis(<app>, USER_INPUT=…, UNIQUEID=…, AI_PROMPT_NAME=…,
AI_MODEL=…)`:

1. parse the args (comma pieces rejoined; for a key that was split, the intact
   channel variable of the same name wins, fetched with `getChannelVar`);
2. run one turn (`TurnService.run_turn`, which never raises);
3. set `AI_RESPONSE`, `AI_STATUS`, `AI_ERROR` (`setChannelVars`), then
   `POST /channels/{id}/continue`.

Delivery is retried while ARI is unreachable, until the channel is gone (404),
it hung up, or `ARI_DELIVERY_MAX_SECONDS` passes. After each (re)connect, channels
parked in the application that no task here owns are continued with
`AI_STATUS=ERROR` (`GET /applications/{app}` `channel_ids`): Asterisk keeps them
in Stasis forever otherwise and replays no `StasisStart`. Before calling a listed channel
parked, the handler sends itself a user event (`POST /events/user/{name}`) and waits for
it on the WebSocket: Asterisk queues it behind every `StasisStart` it sent us before,
so by then each channel that entered Stasis after we connected has a task here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from app.core.config import Settings
from app.core.metrics import Metrics
from app.services.domain import CallContext, TurnOutcome, TurnRequest, TurnRunner, TurnStatus
from app.services.telephony.ari_client import AriClient, AriConflict, AriError, AriNotFound, AriUnavailable
from app.services.telephony.claims import ChannelClaims
from app.services.telephony.events import (
    AriEvent,
    Channel,
    ChannelDestroyed,
    ChannelHangupRequest,
    GenericEvent,
    StasisEnd,
    StasisStart,
)
from app.services.telephony.stasis_args import parse_stasis_args

logger = logging.getLogger(__name__)

#: Variables Asterisk computes itself; a channel variable of that name is shadowed,
#: so the Stasis arg is the only source (ari-samples README: "UNIQUEID is a builtin").
BUILTIN_VARIABLES = frozenset({"UNIQUEID", "CHANNEL", "EXTEN", "CONTEXT", "PRIORITY"})
RECENT_CHANNELS_KEPT = 10_000
#: How many times recovery waits for another gateway's claims before giving up on them.
MAX_RECOVERY_ROUNDS = 3


def _context_of(channel: Channel) -> CallContext:
    """Call context from the channel alone (when the Stasis args were not parsed)."""
    return CallContext(
        uniqueid=channel.id,
        channel_id=channel.id,
        caller_id_number=channel.caller.number or None,
        caller_id_name=channel.caller.name or None,
    )


class CallHandler:
    """Turns `StasisStart` events into answered, continued channels.

    Args:
        ari: REST client.
        turns: runs the agent turn.
        connected: set while the event WebSocket is up (delivery waits on it).
        claims: marks which process owns each channel's turn, so recovery after a
            (re)connect leaves another live gateway's channels alone (rolling restart).
        recovery_grace_seconds: the longest wait (s), after listing the application's
            channels on a (re)connect, for our own user event to come back on the
            WebSocket (so a `StasisStart` already on the wire is taken first); the
            whole wait when Asterisk refuses the user event.
    """

    def __init__(
        self,
        ari: AriClient,
        turns: TurnRunner,
        settings: Settings,
        metrics: Metrics,
        *,
        connected: asyncio.Event | None = None,
        claims: ChannelClaims | None = None,
        delivery_max_seconds: float = 120.0,
        recovery_grace_seconds: float = 2.0,
    ) -> None:
        """Keep collaborators; no I/O here."""
        self._ari = ari
        self._claims = claims
        self._background: set[asyncio.Task[Any]] = set()
        self.turns = turns
        self._settings = settings
        self._metrics = metrics
        self._connected = connected
        self._delivery_max = delivery_max_seconds
        self._grace = recovery_grace_seconds
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._hung_up: set[str] = set()
        self._markers: dict[str, asyncio.Future[None]] = {}
        self.accepting = True
        self.continued = 0

    # --- event intake (never blocks the WebSocket reader) -----------------------------
    def on_event(self, event: AriEvent) -> None:
        """Dispatch one event; a `StasisStart` starts a task and returns at once."""
        if isinstance(event, StasisStart):
            cid = event.channel.id
            if cid in self.in_flight:
                logger.warning("channel=%s duplicate StasisStart ignored", cid)
                return
            self._recent.pop(cid, None)
            self._hung_up.discard(cid)
            if self._claims is not None:
                self._spawn(self._claims.claim(cid))
            task = asyncio.create_task(self._handle(event), name=f"turn-{cid}")
            self.in_flight[cid] = task
            task.add_done_callback(functools.partial(self._finished, cid))
        elif isinstance(event, ChannelHangupRequest | ChannelDestroyed):
            if event.channel.id in self.in_flight:
                logger.info("channel=%s caller hung up during the turn", event.channel.id)
                self._hung_up.add(event.channel.id)
        elif isinstance(event, StasisEnd):
            logger.debug("channel=%s left Stasis", event.channel.id)
        elif isinstance(event, GenericEvent) and event.type == "ChannelUserevent":
            marker = self._markers.get(str(event.raw.get("eventname", "")))
            if marker is not None and not marker.done():
                marker.set_result(None)
        elif event.type == "ApplicationReplaced":
            # events.json: the newer WebSocket for an application wins. This process gets no
            # new calls; its turns in flight still finish and are delivered over REST.
            logger.warning(
                "another connection took over Stasis application %s (rolling restart or a second "
                "gateway); this process gets no new calls",
                event.application,
            )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _finished(self, cid: str, _task: asyncio.Task[None] | None = None) -> None:
        if self._claims is not None:
            self._spawn(self._claims.release(cid))
        self.in_flight.pop(cid, None)
        self._hung_up.discard(cid)
        self._recent[cid] = time.monotonic()
        while len(self._recent) > RECENT_CHANNELS_KEPT:
            self._recent.popitem(last=False)

    # --- one turn ----------------------------------------------------------------------
    async def _handle(self, event: StasisStart) -> None:
        channel = event.channel
        cid = channel.id
        outcome: TurnOutcome | None = None
        try:
            if not self.accepting:
                outcome = TurnOutcome(
                    self._settings.default_fallback_text, TurnStatus.BUSY, "gateway_shutting_down"
                )
                self.turns.log_turn("call", _context_of(event.channel), "", outcome)
                return
            request = await self.build_request(event)
            logger.info(
                "channel=%s uniqueid=%s caller=%s StasisStart prompt=%s model=%s",
                cid,
                request.context.uniqueid,
                channel.caller.number,
                request.prompt_name,
                request.model,
            )
            outcome = await self.turns.run_turn(request)
        except Exception:
            logger.exception("channel=%s turn failed unexpectedly", cid)
            outcome = TurnOutcome(self._settings.default_fallback_text, TurnStatus.ERROR, "internal_error")
            with contextlib.suppress(Exception):
                self.turns.log_turn("call", _context_of(channel), "", outcome)
        finally:
            if outcome is None:  # cancelled before a result: still never strand the caller
                outcome = TurnOutcome(self._settings.default_fallback_text, TurnStatus.ERROR, "cancelled")
            await asyncio.shield(self.deliver(cid, outcome))

    async def build_request(self, event: StasisStart) -> TurnRequest:
        """Turn a `StasisStart` into a `TurnRequest` (args parsed, split values recovered).

        Raises:
            AriError: only never; a failed variable lookup keeps the rejoined value.
        """
        channel = event.channel
        args = parse_stasis_args(event.args, max_chars=self._settings.max_stasis_arg_chars)
        named = args.named
        fetch = sorted(k for k in args.split_keys if k not in BUILTIN_VARIABLES)
        if fetch:
            values = await asyncio.gather(
                *(self._ari.get_channel_var(channel.id, k) for k in fetch), return_exceptions=True
            )
            for key, value in zip(fetch, values, strict=True):
                if isinstance(value, str) and value:
                    named[key] = value[: self._settings.max_stasis_arg_chars]
        context = CallContext(
            uniqueid=named.get("UNIQUEID") or channel.id,
            channel_id=channel.id,
            caller_id_number=channel.caller.number or None,
            caller_id_name=channel.caller.name or None,
            stasis_args=named,
        )
        return TurnRequest(
            context=context,
            user_input=named.get("USER_INPUT", ""),
            prompt_name=named.get("AI_PROMPT_NAME") or None,
            model=named.get("AI_MODEL") or None,
        )

    async def deliver(self, cid: str, outcome: TurnOutcome) -> bool:
        """Set the result variables and continue the channel in the dialplan.

        Retries while ARI is unreachable, for at most `delivery_max_seconds` (s).

        Returns:
            True when `continue` was accepted; False when the channel was gone or
            delivery gave up (each case logged).
        """
        variables = outcome.channel_variables()
        give_up_at = time.monotonic() + self._delivery_max
        attempt = 0
        while True:
            try:
                await self._ari.set_channel_vars(cid, variables)
                await self._ari.continue_in_dialplan(cid)
                self.continued += 1
                logger.info("channel=%s continued AI_STATUS=%s", cid, outcome.status.value)
                return True
            except AriNotFound:
                logger.info("channel=%s is gone (hung up); result dropped", cid)
                return False
            except AriConflict:
                logger.info("channel=%s already left Stasis; result dropped", cid)
                return False
            except AriError as exc:
                attempt += 1
                if cid in self._hung_up or time.monotonic() > give_up_at:
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

    # --- after a (re)connect -----------------------------------------------------------
    async def recover_parked_channels(self) -> int:
        """Continue channels left in our application by a crash or a lost connection.

        Returns:
            How many channels were continued with `AI_STATUS=ERROR`.
        """
        try:
            app = await self._ari.get_application(self._settings.asterisk_app_name)
        except AriNotFound:
            return 0
        except AriError as exc:
            logger.warning("could not list parked channels: %s", exc)
            return 0
        if not app.get("channel_ids"):
            return 0
        # A channel that entered Stasis after our WebSocket connected has its StasisStart
        # on the wire: let the reader take it before calling the channel parked.
        await self._catch_up_with_events()
        recovered = 0
        candidates = list(app.get("channel_ids", []))
        for _round in range(MAX_RECOVERY_ROUNDS):
            unowned = [cid for cid in candidates if cid not in self.in_flight and cid not in self._recent]
            owned = await self._claims.owned_elsewhere(unowned) if self._claims is not None else {}
            recovered += await self._continue_parked([cid for cid in unowned if cid not in owned])
            if not owned:
                break
            # Another live gateway (the old one in a rolling restart) owns these: let it
            # finish, and look again once its claims would have expired.
            logger.info("%d channel(s) in Stasis are owned by another gateway; re-checking later", len(owned))
            await asyncio.sleep(min(max(owned.values()), self._delivery_max) + 0.5)
            try:
                still = set(
                    (await self._ari.get_application(self._settings.asterisk_app_name))["channel_ids"]
                )
            except AriError:
                break
            candidates = [cid for cid in owned if cid in still]
        return recovered

    async def _catch_up_with_events(self) -> None:
        """Return once every event Asterisk queued for us before now has been read.

        Sends a user event to our own application and waits (at most the recovery grace)
        for it to arrive on the WebSocket, behind any `StasisStart` sent earlier. If ARI
        refuses the user event, waits the whole grace instead.
        """
        name = f"aigw-recovery-{uuid.uuid4().hex}"
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[name] = marker
        try:
            await self._ari.user_event(name, self._settings.asterisk_app_name)
            await asyncio.wait_for(marker, self._grace)
        except AriError as exc:
            logger.info("user event refused (%s); waiting %.1f s for events in transit", exc, self._grace)
            await asyncio.sleep(self._grace)
        except TimeoutError:
            logger.info("our user event did not come back within %.1f s; going on", self._grace)
        finally:
            del self._markers[name]

    async def _continue_parked(self, parked: list[str]) -> int:
        if not parked:
            return 0
        logger.warning("found %d channel(s) parked in Stasis with no turn; continuing them", len(parked))
        outcome = TurnOutcome(self._settings.default_fallback_text, TurnStatus.ERROR, "gateway_restarted")
        results = await asyncio.gather(*(self.deliver(cid, outcome) for cid in parked))
        for cid, delivered in zip(parked, results, strict=True):
            if delivered:
                self.turns.log_turn("call", CallContext(uniqueid=cid, channel_id=cid), "", outcome)
        self._metrics.channels_recovered.inc(sum(results))
        return sum(results)

    # --- graceful shutdown -------------------------------------------------------------
    async def drain(self, timeout_seconds: float) -> None:
        """Stop taking new turns (they get a fallback at once), wait for in-flight ones.

        Args:
            timeout_seconds: the longest wait, in s (normally the turn deadline plus
                delivery time).
        """
        self.accepting = False
        tasks = list(self.in_flight.values())
        if not tasks:
            return
        logger.info("draining %d in-flight turn(s)", len(tasks))
        _done, pending = await asyncio.wait(tasks, timeout=timeout_seconds)
        if pending:
            logger.error("%d turn(s) still running at shutdown; cancelling", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=5)
