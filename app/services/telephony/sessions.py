"""Our Stasis application's sessions: routing, recovery of parked channels, claims, drain.

`SessionManager.on_event` is the event source's callback. It never waits:

* a `StasisStart` for a new channel creates a `CallSession` and starts it in its own
  task (a duplicate is ignored);
* any other event that names a channel (or a playback target) of a session, or a
  channel attached to one (`CallSession.attach`: the externalMedia channel and the
  bridge of a voice call), is queued on that session (`put_nowait`);
* events for no session are dropped (logged at debug level).

After each (re)connect, channels parked in the application that no session here
owns are continued with `AI_STATUS=ERROR` (`GET /applications/{app}` `channel_ids`):
Asterisk keeps them in Stasis forever otherwise and replays no `StasisStart`. Before
calling a listed channel parked, the manager sends itself a user event
(`POST /events/user/{name}`) and waits for it on the event source: Asterisk queues it
behind every `StasisStart` it sent us before, so by then each channel that entered
Stasis after we connected has a session here. Channel claims in Redis let a rolling
restart leave the other live gateway's channels alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from app.core.config import Settings
from app.core.metrics import Metrics
from app.services.domain import CallContext, TurnOutcome, TurnRunner, TurnStatus
from app.services.telephony.ari_client import AriClient, AriError, AriNotFound
from app.services.telephony.claims import ChannelClaims
from app.services.telephony.delivery import ConversationResult, Delivery
from app.services.telephony.events import AriEvent, GenericEvent, StasisStart, event_target
from app.services.telephony.modes import default_modes
from app.services.telephony.session import CallSession, ConversationFactory

logger = logging.getLogger(__name__)

RECENT_CHANNELS_KEPT = 10_000
#: How many times recovery waits for another gateway's claims before giving up on them.
MAX_RECOVERY_ROUNDS = 3


class SessionManager:
    """Finds sessions by channel id, creates them on `StasisStart`, routes their events.

    Args:
        ari: REST client.
        turns: runs agent turns (the `TurnRunner` protocol).
        settings: app settings.
        metrics: `channels_recovered` is counted here.
        modes: conversation factory by `AI_MODE` name; default ``{"text": TextConversation}``.
        connected: set while the event source is up (delivery waits on it).
        claims: marks which process owns each channel, so recovery after a
            (re)connect leaves another live gateway's channels alone (rolling restart).
        delivery_max_seconds: the longest a delivery retries through an ARI outage (s).
        recovery_grace_seconds: the longest wait (s), after listing the application's
            channels on a (re)connect, for our own user event to come back on the event
            source (so a `StasisStart` already on the wire is taken first); the whole wait
            when Asterisk refuses the user event.
    """

    def __init__(
        self,
        ari: AriClient,
        turns: TurnRunner,
        settings: Settings,
        metrics: Metrics,
        *,
        modes: dict[str, ConversationFactory] | None = None,
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
        self.modes = modes if modes is not None else default_modes()
        self._settings = settings
        self._metrics = metrics
        self.delivery = Delivery(ari, connected, delivery_max_seconds)
        self._delivery_max = delivery_max_seconds
        self._grace = recovery_grace_seconds
        #: channel id -> the session that owns it (its own channel).
        self.sessions: dict[str, CallSession] = {}
        #: channel or bridge id -> session, for channels attached to a session.
        self._routes: dict[str, CallSession] = {}
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._markers: dict[str, asyncio.Future[None]] = {}
        self.accepting = True

    @property
    def continued(self) -> int:
        """Channels continued in the dialplan by this process."""
        return self.delivery.continued

    # --- event intake (never blocks the event reader) --------------------------------------
    def on_event(self, event: AriEvent) -> None:
        """Route one event; a `StasisStart` starts a session task and returns at once."""
        if isinstance(event, StasisStart):
            self._start(event)
            return
        if event.type == "ApplicationReplaced":
            # events.json: the newer WebSocket for an application wins. This process gets no
            # new calls; its sessions still finish and are delivered over REST.
            logger.warning(
                "another connection took over Stasis application %s (rolling restart or a second "
                "gateway); this process gets no new calls",
                event.application,
            )
            return
        if isinstance(event, GenericEvent) and event.type == "ChannelUserevent":
            marker = self._markers.get(str(event.raw.get("eventname", "")))
            if marker is not None and not marker.done():
                marker.set_result(None)
            return
        target = event_target(event)
        session = self._routes.get(target) if target is not None else None
        if session is not None:
            session.put(event)
        else:
            logger.debug("channel=%s %s for no session", target, event.type)

    def find(self, channel_id: str) -> CallSession | None:
        """The session owning `channel_id` (its own or an attached channel), if any."""
        return self._routes.get(channel_id)

    def _start(self, event: StasisStart) -> None:
        cid = event.channel.id
        if cid in self._routes:
            # An attached channel (a voice call's externalMedia channel) entering Stasis
            # belongs to its session; a second StasisStart for a session's own is a duplicate.
            if cid in self.sessions:
                logger.warning("channel=%s duplicate StasisStart ignored", cid)
            else:
                self._routes[cid].put(event)
            return
        self._recent.pop(cid, None)
        if self._claims is not None:
            self._spawn(self._claims.claim(cid))
        session = CallSession(
            event,
            ari=self._ari,
            turns=self.turns,
            settings=self._settings,
            delivery=self.delivery,
            modes=self.modes,
            accepting=lambda: self.accepting,
            on_attach=self._route,
        )
        self.sessions[cid] = self._routes[cid] = session
        task = asyncio.create_task(session.run(), name=f"session-{cid}")
        self.in_flight[cid] = task
        task.add_done_callback(functools.partial(self._finished, cid))

    def _route(self, channel_id: str, session: CallSession | None) -> None:
        if session is None:
            self._routes.pop(channel_id, None)
        else:
            self._routes[channel_id] = session

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _finished(self, cid: str, _task: asyncio.Task[None] | None = None) -> None:
        if self._claims is not None:
            self._spawn(self._claims.release(cid))
        self.in_flight.pop(cid, None)
        self.sessions.pop(cid, None)
        self._routes.pop(cid, None)
        self._recent[cid] = time.monotonic()
        while len(self._recent) > RECENT_CHANNELS_KEPT:
            self._recent.popitem(last=False)

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
            unowned = [cid for cid in candidates if cid not in self._routes and cid not in self._recent]
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
        for it to arrive, behind any `StasisStart` sent earlier. If ARI refuses the user
        event, waits the whole grace instead.
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
        logger.warning("found %d channel(s) parked in Stasis with no session; continuing them", len(parked))
        outcome = TurnOutcome(self._settings.default_fallback_text, TurnStatus.ERROR, "gateway_restarted")
        result = ConversationResult.from_outcome(outcome)
        results = await asyncio.gather(*(self.delivery.deliver(cid, result) for cid in parked))
        for cid, delivered in zip(parked, results, strict=True):
            if delivered:
                self.turns.log_turn("call", CallContext(uniqueid=cid, channel_id=cid), "", outcome)
        self._metrics.channels_recovered.inc(sum(results))
        return sum(results)

    # --- graceful shutdown -------------------------------------------------------------
    async def drain(self, timeout_seconds: float) -> None:
        """Stop taking new calls (they get `AI_STATUS=BUSY` at once), wait for the sessions.

        Args:
            timeout_seconds: the longest wait, in s (normally the turn deadline plus
                delivery time). Sessions still running then are cancelled, and their
                channels continued with `AI_STATUS=ERROR`, `AI_ERROR=cancelled`.
        """
        self.accepting = False
        tasks = list(self.in_flight.values())
        if not tasks:
            return
        logger.info("draining %d session(s)", len(tasks))
        _done, pending = await asyncio.wait(tasks, timeout=timeout_seconds)
        if pending:
            logger.error("%d session(s) still running at shutdown; cancelling", len(pending))
            for session in list(self.sessions.values()):
                session.cancel()
            await asyncio.wait(pending, timeout=5)
