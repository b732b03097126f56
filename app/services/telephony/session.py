"""One call session: owns a channel from `StasisStart` until it is continued or hangs up.

A `CallSession` is created by `SessionManager` for each `StasisStart` and runs in
its own task. It:

1. builds the `TurnRequest` from the Stasis args (comma pieces rejoined; for a key
   that was split, the intact channel variable of the same name wins);
2. picks a conversation by mode (`AI_MODE` Stasis arg, default ``text``) from the
   injected mode table (`ConversationFactory` by name) and runs it;
3. hands the channel back to the dialplan with the conversation's
   `ConversationResult` (variables, optional dialplan target), retried through
   ARI outages (`Delivery`).

Events for the session's channel, and for channels `attach`-ed to it (the
externalMedia channel of a voice call, its bridge), reach it in arrival order through
its own queue: the event reader only calls `put` (`put_nowait`) and never waits. A
conversation reads them with `await session.next_event()` or `async for event in
session.events()`. The session itself acts on the caller's hang-up
(`ChannelHangupRequest`, `ChannelDestroyed` or `StasisEnd` of its own channel): every
task it owns is cancelled with `HANGUP_CANCEL_MSG`, so a turn in flight closes its
model request, starts no more tool calls, and is filed as ``HANGUP``.

Its tasks (the session's own, running the conversation, and whatever the conversation
`spawn`s) live in one set the session owns: `cancel()` or `hang_up()` cancels all of them in one
place. A set rather than an `asyncio.TaskGroup`, because a TaskGroup cancels its
children without a message on Python 3.11, and the turn service needs the message
to tell a hang-up from a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol

from app.core.config import Settings
from app.services.domain import (
    HANGUP_CANCEL_MSG,
    CallContext,
    TurnOutcome,
    TurnRequest,
    TurnRunner,
    TurnStatus,
)
from app.services.telephony.ari_client import AriClient
from app.services.telephony.delivery import ConversationResult, Delivery
from app.services.telephony.events import (
    AriEvent,
    Channel,
    ChannelDestroyed,
    ChannelHangupRequest,
    StasisEnd,
    StasisStart,
)
from app.services.telephony.stasis_args import parse_stasis_args

logger = logging.getLogger(__name__)

#: Variables Asterisk computes itself; a channel variable of that name is shadowed,
#: so the Stasis arg is the only source (ari-samples README: "UNIQUEID is a builtin").
BUILTIN_VARIABLES = frozenset({"UNIQUEID", "CHANNEL", "EXTEN", "CONTEXT", "PRIORITY"})
DEFAULT_MODE = "text"


class Conversation(Protocol):
    """What a mode runs on a session: from the first event to the dialplan result."""

    async def run(self) -> ConversationResult:
        """Hold the conversation; return the variables (and target) to continue with.

        May raise: the session then continues the channel with `AI_STATUS=ERROR`.
        """
        ...


#: Builds the conversation of one mode for one session (``{"text": TextConversation}``).
ConversationFactory = Callable[["CallSession"], Conversation]


def context_of(channel: Channel) -> CallContext:
    """Call context from the channel alone (when the Stasis args were not parsed)."""
    return CallContext(
        uniqueid=channel.id,
        channel_id=channel.id,
        caller_id_number=channel.caller.number or None,
        caller_id_name=channel.caller.name or None,
    )


class CallSession:
    """Owns one channel in our Stasis application; see the module docstring.

    Args:
        start: the channel's `StasisStart`.
        ari: REST client (conversations use it too: answer, bridges, playback).
        turns: the turn interface (all the session knows of the agent).
        settings: `DEFAULT_FALLBACK_TEXT`, `MAX_STASIS_ARG_CHARS`.
        delivery: sets variables and continues the channel.
        modes: conversation factory by mode name (``AI_MODE``).
        accepting: False while the gateway shuts down (the call gets `AI_STATUS=BUSY`).
        on_attach: called as ``on_attach(channel_id, session)`` (None to detach) so the
            session manager routes that channel's events here.
    """

    def __init__(
        self,
        start: StasisStart,
        *,
        ari: AriClient,
        turns: TurnRunner,
        settings: Settings,
        delivery: Delivery,
        modes: dict[str, ConversationFactory],
        accepting: Callable[[], bool],
        on_attach: Callable[[str, CallSession | None], None],
    ) -> None:
        """Keep collaborators; nothing runs until `run()`."""
        self.start = start
        self.channel = start.channel
        self.channel_id = start.channel.id
        self.ari = ari
        self.turns = turns
        self.settings = settings
        self._delivery = delivery
        self._modes = modes
        self._accepting = accepting
        self._on_attach = on_attach
        self.request: TurnRequest | None = None
        self.mode = DEFAULT_MODE
        self.hung_up = False
        self._handing_back = False
        self.attached: set[str] = set()
        self._events: asyncio.Queue[AriEvent] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- what the event reader and the conversations call --------------------------------
    def put(self, event: AriEvent) -> None:
        """Take an event for this session; never waits (called by the event reader).

        The caller's own hang-up cancels the session's tasks here (`Task.cancel` does not
        wait); every event is then queued for the conversation, in arrival order.
        """
        if (
            isinstance(event, ChannelHangupRequest | ChannelDestroyed | StasisEnd)
            and event.channel.id == self.channel_id
        ):
            if self._handing_back:  # our own `continue`, or a hang-up during delivery
                self.hung_up = True
            else:
                self.hang_up()
        self._events.put_nowait(event)

    def attach(self, channel_id: str) -> None:
        """Route another channel's (or a bridge's) events to this session.

        Attach before the request that creates the channel: its `StasisStart` can
        arrive before the REST answer. So choose the id yourself (`externalMedia` and
        `createBridge` take `channelId`/`bridgeId`) and attach it first; otherwise the
        external channel's `StasisStart` would open a session of its own.
        """
        self.attached.add(channel_id)
        self._on_attach(channel_id, self)

    def detach(self, channel_id: str) -> None:
        """Stop routing `channel_id`'s events here."""
        self.attached.discard(channel_id)
        self._on_attach(channel_id, None)

    async def next_event(self) -> AriEvent:
        """The next event for this session's channels, in arrival order (waits for one)."""
        return await self._events.get()

    async def events(self) -> AsyncIterator[AriEvent]:
        """The session's events, in arrival order, until the session's tasks are cancelled."""
        while True:
            yield await self._events.get()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `coro` as a task this session owns (cancelled with the session)."""
        task = asyncio.create_task(coro, name=f"{name}-{self.channel_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def hang_up(self) -> None:
        """The caller is gone: cancel every task of the session with `HANGUP_CANCEL_MSG`.

        A conversation that must clean up (a voice call's bridge and externalMedia
        channel) does it in a ``finally``; `run()` waits up to 5 s for the tasks to end.
        """
        if self.hung_up:
            return
        self.hung_up = True
        logger.info("channel=%s caller hung up; ending the session", self.channel_id)
        self.cancel(HANGUP_CANCEL_MSG)

    def cancel(self, msg: str | None = None) -> None:
        """Cancel every task of the session except the caller's own (shutdown, hang-up)."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel(msg)

    # --- the session's own work -----------------------------------------------------------
    async def run(self) -> None:
        """Run the session to its end: conversation, then delivery (or the hang-up).

        Runs in the task the session manager created for it; that task is one of the
        session's own, so a hang-up cancels it too.
        """
        me = asyncio.current_task()
        assert me is not None
        self._tasks.add(me)
        try:
            await self._converse()
        finally:
            self._tasks.discard(me)
            self.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=5)
            for cid in list(self.attached):
                self.detach(cid)

    async def _converse(self) -> None:
        result: ConversationResult | None = None
        try:
            result = await self._conversation_result()
        except asyncio.CancelledError as exc:
            if exc.args == (HANGUP_CANCEL_MSG,):
                return  # the channel is gone: nothing to deliver
            raise
        except Exception:
            logger.exception("channel=%s conversation failed unexpectedly", self.channel_id)
            result = self._failure("internal_error")
        finally:
            if result is None and not self.hung_up:  # cancelled: still never strand the caller
                result = ConversationResult.from_outcome(self._fallback("cancelled"))
            if result is not None and not self.hung_up:
                self._handing_back = True
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(
                        self._delivery.deliver(self.channel_id, result, lambda: self.hung_up)
                    )

    async def _conversation_result(self) -> ConversationResult:
        if not self._accepting():
            outcome = TurnOutcome(
                self.settings.default_fallback_text, TurnStatus.BUSY, "gateway_shutting_down"
            )
            self.turns.log_turn("call", context_of(self.channel), "", outcome)
            return ConversationResult.from_outcome(outcome)
        self.request = request = await self.build_request()
        requested = request.context.stasis_args.get("AI_MODE", "").strip().lower()
        self.mode = requested or DEFAULT_MODE
        logger.info(
            "channel=%s uniqueid=%s caller=%s StasisStart mode=%s prompt=%s model=%s",
            self.channel_id,
            request.context.uniqueid,
            self.channel.caller.number,
            self.mode,
            request.prompt_name,
            request.model,
        )
        # No AI_MODE: the mode table's "" entry decides (the prompt's own default), else text.
        factory = (
            self._modes.get(requested) if requested else self._modes.get("", self._modes.get(DEFAULT_MODE))
        )
        if factory is None:
            logger.warning("channel=%s unknown AI_MODE %r", self.channel_id, self.mode)
            return self._failure(f"unknown_mode: {self.mode}"[:120])
        return await factory(self).run()

    def _fallback(self, error: str) -> TurnOutcome:
        return TurnOutcome(self.settings.default_fallback_text, TurnStatus.ERROR, error)

    def _failure(self, error: str) -> ConversationResult:
        outcome = self._fallback(error)
        context = self.request.context if self.request is not None else context_of(self.channel)
        with contextlib.suppress(Exception):
            self.turns.log_turn("call", context, "", outcome)
        return ConversationResult.from_outcome(outcome)

    async def build_request(self) -> TurnRequest:
        """Turn the `StasisStart` into a `TurnRequest` (args parsed, split values recovered).

        A failed variable lookup keeps the rejoined value; nothing here raises `AriError`.
        """
        channel = self.channel
        max_chars = self.settings.max_stasis_arg_chars
        args = parse_stasis_args(self.start.args, max_chars=max_chars)
        named = args.named
        fetch = sorted(k for k in args.split_keys if k not in BUILTIN_VARIABLES)
        if fetch:
            values = await asyncio.gather(
                *(self.ari.get_channel_var(channel.id, k) for k in fetch), return_exceptions=True
            )
            for key, value in zip(fetch, values, strict=True):
                if isinstance(value, str) and value:
                    named[key] = value[:max_chars]
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
