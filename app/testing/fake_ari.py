"""A faithful in-process stand-in for Asterisk's REST Interface (ARI).

:class:`FakeAriServer` speaks the parts of ARI the gateway uses, on a real TCP
socket (Starlette app served by uvicorn inside the current event loop):

* the event WebSocket ``GET /ari/events?app=...`` (``events.json`` eventWebsocket),
* ``/ari/channels`` (list, get, hangup, continueInDialplan, answer, ring,
  getChannelVar, setChannelVar, setChannelVars, getChannelVars),
* ``/ari/applications`` (list, get) and ``/ari/asterisk`` (getInfo, ping),
* bridges, ``play`` and playbacks (:mod:`app.testing.fake_bridges`),
* ``/ari/channels/externalMedia`` over chan_websocket, client and server mode
  (:mod:`app.testing.fake_media`, protocol in :mod:`app.testing.chan_websocket`);
  a scripted caller for a placed call is :class:`app.testing.fake_caller.FakeCaller`.

Event and response shapes are modelled on JSON captured from a real Asterisk
(``tests/fixtures/ari_samples``); error codes and messages follow Asterisk's
``res/ari/resource_*.c``. Every request is recorded and checked against the ARI
Swagger description (:mod:`app.testing.ari_spec`); mismatches end up in
:attr:`FakeAriServer.spec_violations`.

Real-PBX behaviours reproduced (``tests/fixtures/ari_samples/README.md``):

* ``Stasis(app,a,b)`` arguments are split on every comma and not trimmed.
* ``Stasis()`` fails at once (``STASISSTATUS=FAILED``) when the application is
  not registered.
* An application stays registered while channels sit in it after its WebSocket
  closed ("parked" channels); no ``StasisStart`` is replayed on reconnect.
* ``UNIQUEID`` is a builtin variable that shadows a channel variable of that name.
* ``http.conf`` ``sessionlimit``: connections past the limit are closed unanswered.
* ``ari.conf`` ``websocket_write_timeout``: a WebSocket whose reader falls behind
  is dropped.
* Operations newer than the configured Asterisk version answer 404
  (e.g. setChannelVars needs 20.20.0 / 22.10.0 / 23.4.0).

Run standalone::

    python -m app.testing.fake_ari --host 127.0.0.1 --port 8088

The standalone server also has a small control API outside ``/ari`` (``/_fake/...``,
see :meth:`FakeAriServer.control_routes_help`) to place calls from a shell.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import sys
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from app.testing.ari_spec import (
    AriOperation,
    AriSpecViolation,
    check_parameters,
    find_operation,
    find_path,
)
from app.testing.fake_bridges import FakeBridges
from app.testing.fake_media import FakeMedia

logger = logging.getLogger(__name__)

#: ``asterisk_id`` of the captured samples (the PBX's entity id, ``asterisk.conf``).
DEFAULT_ASTERISK_ID = "02:fc:00:00:00:01"

#: Hangup cause text, from Asterisk ``main/causes.h`` / ``ast_cause2str``.
CAUSE_TEXT: dict[int, str] = {
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    21: "Call Rejected",
    26: "Answered elsewhere",
    28: "Invalid number format (incomplete number)",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    58: "Bearer capability not available",
    127: "Interworking, unspecified",
}

#: ``reason`` values of ARI channels.json hangup and their causes
#: (``resource_channels.c`` ``convert_reason_to_hangup_code``).
HANGUP_REASONS: dict[str, int] = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 19,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}

#: ``cause`` of a ChannelHangupRequest made through ARI: ``AST_SOFTHANGUP_EXPLICIT``
#: (see ChannelHangupRequest-after-ari-DELETE.json: ``"cause": 32, "soft": true``).
SOFTHANGUP_EXPLICIT = 32


def asterisk_timestamp(epoch: float | None = None) -> str:
    """Format a time the way ARI does (``2026-11-23T12:38:42.525+0000``).

    Args:
        epoch: Seconds since the epoch; now when ``None``.

    Returns:
        ISO-8601 with milliseconds and a ``+0000`` offset (UTC).
    """
    dt = datetime.fromtimestamp(time.time() if epoch is None else epoch, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def split_stasis_app_data(app_data: str) -> tuple[str, list[str]]:
    """Split ``Stasis()`` application data like Asterisk's ``AST_STANDARD_APP_ARGS``.

    Every comma separates arguments, and arguments are not trimmed, so
    ``"app,USER_INPUT=hello, how are you"`` gives
    ``("app", ["USER_INPUT=hello", " how are you"])``
    (ari_samples README, StasisStart-ai-test.json).

    Args:
        app_data: Text between ``Stasis(`` and ``)``.

    Returns:
        The application name and the argument list.
    """
    parts = app_data.split(",")
    return parts[0], parts[1:]


@dataclass
class RecordedRequest:
    """One HTTP request or WebSocket handshake received by the fake.

    Attributes:
        method: HTTP method (``GET`` for WebSocket handshakes).
        path: Full URL path including ``/ari``, URL-decoded.
        query: Query parameters in order, repeated names repeated.
        body: Parsed JSON body, the raw text of a non-JSON body, or ``None``.
        status: Status answered (101 for an accepted WebSocket).
        time: ``time.monotonic()`` when the request arrived, in seconds.
        operation: ``resource.nickname`` of the matched ARI operation, if any.
    """

    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any | None
    status: int
    time: float
    operation: str | None = None


@dataclass(eq=False)
class FakeChannel:
    """A channel the fake PBX created with :meth:`FakeAriServer.place_call`.

    Attributes:
        id: Unique id (Asterisk ``UNIQUEID``), e.g. ``"1795437522.22"``.
        name: Channel name, e.g. ``"Local/100@ai-test-00000008;2"``.
        app: Stasis application the call was sent to.
        args: Stasis arguments after comma splitting.
        app_data: Raw ``Stasis()`` data, as shown in ``dialplan.app_data``.
        caller_number: Caller ID number.
        caller_name: Caller ID name.
        context: Dialplan context.
        exten: Dialplan extension.
        priority: Dialplan priority of the ``Stasis()`` step.
        state: Channel state (``Ring``, ``Up``, ...).
        creationtime: Creation time in ARI format.
        variables: Channel variables (without builtins such as ``UNIQUEID``).
        in_stasis: True while the channel is in the Stasis application.
        hung_up: True once the channel is destroyed.
        operations: What the gateway did, in order: ``("setvar", name, value)``
            (value ``None`` when unset), ``("continue", {params})``,
            ``("hangup", reason)``, ``("answer",)``, ``("ring",)``, ``("ring_stop",)``.
        continued_count: Number of ``/continue`` requests for this channel,
            including rejected ones (a value above 1 reveals a duplicate continue).
        left_stasis: Set once the channel left Stasis (continue, hangup or
            failed ``Stasis()``).
        reported_vars: Variables set with ``report_events`` (shown in ``channelvars``).
        stasis_failed: True when ``Stasis()`` failed because the app was not registered.
        app_name: Dialplan application shown in ``dialplan.app_name`` (``Stasis``;
            ``AppDial2`` for an externalMedia channel before its ``StasisStart``).
    """

    id: str
    name: str
    app: str
    args: list[str]
    app_data: str
    caller_number: str
    caller_name: str
    context: str
    exten: str
    priority: int
    state: str
    creationtime: str
    variables: dict[str, str] = field(default_factory=dict)
    in_stasis: bool = False
    hung_up: bool = False
    operations: list[tuple[Any, ...]] = field(default_factory=list)
    continued_count: int = 0
    left_stasis: asyncio.Event = field(default_factory=asyncio.Event)
    reported_vars: set[str] = field(default_factory=set)
    stasis_failed: bool = False
    app_name: str = "Stasis"

    def to_json(self) -> dict[str, Any]:
        """Render the channel as an ARI ``Channel`` model (channels.json).

        Returns:
            The channel snapshot used in events and REST responses.
        """
        data: dict[str, Any] = {
            "accountcode": "",
            "caller": {"name": self.caller_name, "number": self.caller_number},
            "connected": {"name": self.caller_name, "number": self.caller_number},
            "creationtime": self.creationtime,
            "dialplan": {
                "app_data": self.app_data,
                "app_name": self.app_name,
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
            },
            "id": self.id,
            "language": "en",
            "name": self.name,
            "protocol_id": "",
            "state": self.state,
        }
        if self.reported_vars:
            data["channelvars"] = {k: self.variables.get(k, "") for k in sorted(self.reported_vars)}
        return data

    def get_variable(self, name: str) -> str | None:
        """Read a variable the way ``GET /channels/{id}/variable`` does.

        Builtins (``UNIQUEID``, ``CHANNEL``, ``CONTEXT``, ``EXTEN``, ``PRIORITY``)
        shadow channel variables of the same name (``pbx_retrieve_variable``);
        ``CALLERID(num)``/``CALLERID(name)`` and ``CHANNEL(...)`` are read as functions.

        Args:
            name: Variable or function name.

        Returns:
            The value, or ``None`` when the variable is not set.
        """
        builtins = {
            "UNIQUEID": self.id,
            "CHANNEL": self.name,
            "CONTEXT": self.context,
            "EXTEN": self.exten,
            "PRIORITY": str(self.priority),
            "CALLERID(num)": self.caller_number,
            "CALLERID(number)": self.caller_number,
            "CALLERID(name)": self.caller_name,
            "CHANNEL(name)": self.name,
            "CHANNEL(uniqueid)": self.id,
            "CHANNEL(state)": self.state,
            "CHANNEL(language)": "en",
        }
        if name in builtins:
            return builtins[name]
        return self.variables.get(name)

    async def wait_left_stasis(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the channel left Stasis.

        Args:
            timeout: Seconds to wait.

        Raises:
            TimeoutError: The channel is still in Stasis after ``timeout``
                (``asyncio.TimeoutError`` is the same class on Python 3.11+).
        """
        await asyncio.wait_for(self.left_stasis.wait(), timeout)


class _EventConnection:
    """One event WebSocket with its own writer task (events queued, never awaited)."""

    def __init__(self, websocket: WebSocket, apps: list[str], write_timeout: float | None) -> None:
        self.websocket = websocket
        self.apps = apps
        self.write_timeout = write_timeout
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.dropped_slow = False
        self.writer: asyncio.Task[None] | None = None
        client = websocket.client
        self.client: tuple[str, int] | None = (client.host, client.port) if client else None


@dataclass
class _App:
    name: str
    connections: set[_EventConnection] = field(default_factory=set)
    permanent: bool = False


_Deferred = list[tuple[str, dict[str, Any]]]
_Handler = Callable[
    [Request, AriOperation, dict[str, str], Any | None],
    Awaitable[tuple[Response, _Deferred]],
]


def _error(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status)


def _no_content() -> Response:
    return Response(status_code=204)


class FakeAriServer:
    """Fake Asterisk ARI server on a real socket, for tests and demos.

    Args:
        username: ARI user (``ari.conf``).
        password: ARI password.
        apps_known: Applications registered permanently, as if a module kept
            them (``Stasis()`` into them succeeds with no WebSocket connected;
            their events are dropped while none is).
        asterisk_version: Version reported by ``/asterisk/info``; operations
            whose ``since`` is newer answer 404 "Resource not found".
        session_limit: ``http.conf`` ``sessionlimit``: with more than this many
            TCP connections open (REST and WebSocket together), a new one is
            closed without a reply. ``None`` means unlimited (Asterisk's default
            is 100).
        ws_write_timeout: ``ari.conf`` ``websocket_write_timeout`` in seconds
            (100 ms by default): an event WebSocket whose send blocks longer is
            dropped. ``None`` disables.
        asterisk_id: Entity id put in events.
        websocket_clients: ``websocket_client.conf`` connections for externalMedia
            ``connection_type=client``: id → ``uri`` (:mod:`app.testing.fake_media`).
        sound_duration_s: Length of every ``play`` (:mod:`app.testing.fake_bridges`), s.
        media_connect_timeout_s: How long a server-mode external channel waits
            for the application's media WebSocket before it is destroyed, s.

    Attributes:
        requests: Every request and WebSocket handshake, in arrival order.
        spec_violations: Requests that ARI's Swagger description does not allow.
        events: Every event emitted, whether or not a WebSocket was connected.
        channels: All channels by id, including those that hung up.
        refused_connections: Connections closed because of ``session_limit``.
        dropped_requests: Requests dropped while REST was unavailable.
        bridges: Bridges and playbacks (:class:`~app.testing.fake_bridges.FakeBridges`).
        media: externalMedia channels and their media WebSockets
            (:class:`~app.testing.fake_media.FakeMedia`).
    """

    def __init__(
        self,
        *,
        username: str = "asterisk",
        password: str = "asterisk",
        apps_known: Iterable[str] = (),
        asterisk_version: str = "22.5.0",
        session_limit: int | None = None,
        ws_write_timeout: float | None = 0.1,
        asterisk_id: str = DEFAULT_ASTERISK_ID,
        websocket_clients: Mapping[str, str] | None = None,
        sound_duration_s: float = 1.0,
        media_connect_timeout_s: float = 31.0,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`."""
        self.username = username
        self.password = password
        self.asterisk_version = asterisk_version
        self.session_limit = session_limit
        self.ws_write_timeout = ws_write_timeout
        self.asterisk_id = asterisk_id
        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.channels: dict[str, FakeChannel] = {}
        self.refused_connections = 0
        self.dropped_requests = 0
        self.rest_available = True
        self.base_url = ""
        self.ari_url = ""
        self.host = ""
        self.port = 0
        self._apps: dict[str, _App] = {n: _App(n, permanent=True) for n in apps_known}
        self._id_counter = itertools.count(1)
        self._name_counter = itertools.count(1)
        self._id_epoch = int(time.time())
        self._startup_time = asterisk_timestamp()
        self._changed = asyncio.Event()
        self._ws_protocols: set[WebSocketsSansIOProtocol] = set()
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._handlers: dict[tuple[str, str], _Handler] = {
            ("asterisk", "getInfo"): self._h_get_info,
            ("asterisk", "ping"): self._h_ping,
            ("applications", "list"): self._h_app_list,
            ("applications", "get"): self._h_app_get,
            ("channels", "list"): self._h_chan_list,
            ("channels", "get"): self._h_chan_get,
            ("channels", "hangup"): self._h_hangup,
            ("channels", "continueInDialplan"): self._h_continue,
            ("channels", "answer"): self._h_answer,
            ("channels", "ring"): self._h_ring,
            ("channels", "ringStop"): self._h_ring_stop,
            ("channels", "getChannelVar"): self._h_get_var,
            ("channels", "setChannelVar"): self._h_set_var,
            ("channels", "getChannelVars"): self._h_get_vars,
            ("channels", "setChannelVars"): self._h_set_vars,
            ("events", "userEvent"): self._h_user_event,
        }
        self.bridges = FakeBridges(self, sound_duration_s)
        self.media = FakeMedia(self, dict(websocket_clients or {}), media_connect_timeout_s)
        self._handlers.update(self.bridges.handlers())
        self._handlers.update(self.media.handlers())

    # ---------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen and serve in the current event loop.

        Args:
            host: Interface to bind.
            port: TCP port; 0 picks a free one (read :attr:`port` afterwards).

        Raises:
            RuntimeError: The server is already running or failed to start.
        """
        if self._server is not None:
            raise RuntimeError("FakeAriServer already started")
        config = uvicorn.Config(
            self._asgi,
            host=host,
            port=port,
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            log_level="warning",
            http=_make_http_protocol(self),
            ws=_make_ws_protocol(self),
            ws_ping_interval=None,  # Asterisk sends no pings on the event socket
            ws_per_message_deflate=False,  # res_http_websocket has no extensions
            server_header=False,
            headers=[("Server", f"Asterisk/{self.asterisk_version}")],
            timeout_keep_alive=15,  # http.conf session_keep_alive=15000 (ms)
            timeout_graceful_shutdown=2,
        )
        server = _QuietServer(config)
        self._server = server
        self._serve_task = asyncio.create_task(server.serve(), name="fake-ari-server")
        while not server.started:
            if self._serve_task.done():
                self._server = None
                exc = self._serve_task.exception()
                raise RuntimeError(f"FakeAriServer failed to start: {exc!r}")
            await asyncio.sleep(0.005)
        sock = server.servers[0].sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        self.base_url = f"http://{self.host}:{self.port}"
        self.ari_url = f"{self.base_url}/ari"
        logger.info("fake ARI listening on %s", self.ari_url)

    async def stop(self) -> None:
        """Close every connection and stop serving. Safe to call twice."""
        server, task = self._server, self._serve_task
        if server is None or task is None:
            return
        self._server = None
        self._serve_task = None
        await self.media.aclose()
        await self.bridges.aclose()
        for app in list(self._apps.values()):
            for conn in list(app.connections):
                self._detach(conn)
        for proto in list(self._ws_protocols):
            proto.transport.abort()
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        """Start on a free port of 127.0.0.1."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()

    # ---------------------------------------------------------------- test driver

    async def place_call(
        self,
        app_data: str | None = None,
        *,
        args: list[str] | None = None,
        app: str = "ai_ari_app",
        caller_number: str = "100",
        caller_name: str = "AI Test",
        channel_vars: Mapping[str, str] | None = None,
        channel_id: str | None = None,
        state: str = "Ring",
        context: str = "ai-test",
        exten: str = "100",
        priority: int = 2,
        name: str | None = None,
    ) -> FakeChannel:
        """Run ``Stasis(app_data)`` on a new channel, as the dialplan would.

        The default channel is the ``;2`` half of a Local channel in state
        ``Ring``, like the ``ai-test`` samples. When the application is
        registered (a WebSocket connected, parked channels, or ``apps_known``),
        ``StasisStart`` is sent to its WebSocket(s) and the channel stays in
        Stasis until the gateway continues or hangs it up. Otherwise
        ``Stasis()`` fails at once: ``STASISSTATUS=FAILED`` and no event
        (ari_samples README).

        Args:
            app_data: Text inside ``Stasis(...)``, e.g.
                ``"ai_ari_app,USER_INPUT=hello, how are you"``; split on every
                comma, first element is the application name.
            args: Stasis arguments, used when ``app_data`` is ``None``.
            app: Application name, used when ``app_data`` is ``None``.
            caller_number: Caller ID number.
            caller_name: Caller ID name.
            channel_vars: Variables set by the dialplan before ``Stasis()``.
            channel_id: Unique id; default ``"<epoch>.<n>"`` like Asterisk.
            state: Channel state (``"Ring"`` for Local, ``"Up"`` if answered).
            context: Dialplan context.
            exten: Dialplan extension.
            priority: Priority of the ``Stasis()`` step.
            name: Channel name; default ``Local/<exten>@<context>-<n>;2``.

        Returns:
            The channel (``in_stasis`` False and ``stasis_failed`` True on failure).

        Raises:
            ValueError: ``channel_id`` is already in use.
        """
        if app_data is None:
            call_args = list(args or [])
            app_data = ",".join([app, *call_args])
        else:
            app, call_args = split_stasis_app_data(app_data)
        cid = channel_id or f"{self._id_epoch}.{next(self._id_counter)}"
        if cid in self.channels and not self.channels[cid].hung_up:
            raise ValueError(f"channel id {cid!r} already exists")
        chan = FakeChannel(
            id=cid,
            name=name or f"Local/{exten}@{context}-{next(self._name_counter):08x};2",
            app=app,
            args=call_args,
            app_data=app_data,
            caller_number=caller_number,
            caller_name=caller_name,
            context=context,
            exten=exten,
            priority=priority,
            state=state,
            creationtime=asterisk_timestamp(),
            variables=dict(channel_vars or {}),
        )
        self.channels[cid] = chan
        if app not in self._apps:
            chan.variables["STASISSTATUS"] = "FAILED"
            chan.stasis_failed = True
            chan.left_stasis.set()
            logger.info("Stasis(%s) failed: application not registered", app)
            self._notify()
            return chan
        chan.in_stasis = True
        self._emit(app, "StasisStart", chan, args=list(call_args))
        self._notify()
        return chan

    async def hangup_by_caller(self, channel_id: str, cause: int = 16) -> None:
        """Hang the channel up from the caller's side.

        Emits ChannelHangupRequest (``cause``), StasisEnd and ChannelDestroyed
        to the application when the channel is in Stasis; REST on the channel
        then answers 404.

        Args:
            channel_id: Channel to hang up.
            cause: Q.850 cause, 16 (Normal Clearing) by default.

        Raises:
            KeyError: Unknown or already hung-up channel.
        """
        chan = self._live(channel_id)
        if chan is None:
            raise KeyError(channel_id)
        if chan.in_stasis:
            app = chan.app
            self._emit(app, "ChannelHangupRequest", chan, cause=cause)
            for bridge_app, event in self.bridges.leave(chan):
                self._dispatch(bridge_app, event)
            self._leave_stasis(chan, set_status=False)
            self._emit(app, "StasisEnd", chan)
            self._emit(
                app,
                "ChannelDestroyed",
                chan,
                cause=cause,
                cause_txt=CAUSE_TEXT.get(cause, "Unknown"),
            )
            self._maybe_destroy_app(app)
        chan.hung_up = True
        chan.left_stasis.set()
        self._notify()

    async def press_dtmf(self, channel_id: str, digits: str, duration_ms: int = 100) -> None:
        """The caller presses DTMF keys on a channel in Stasis.

        Emits one ``ChannelDtmfReceived`` per digit (events.json: ``digit``,
        ``duration_ms``, ``channel``), as a real Asterisk does for the Stasis
        (caller-side) channel (``ari-samples/media/README.md``: 100 ms each).

        Args:
            channel_id: Channel in Stasis.
            digits: Keys in order, each ``0``-``9``, ``A``-``D``, ``#`` or ``*``.
            duration_ms: How long each key is held, in ms.

        Raises:
            KeyError: Unknown or hung-up channel, or a channel not in Stasis.
        """
        chan = self._live(channel_id)
        if chan is None or not chan.in_stasis:
            raise KeyError(channel_id)
        for digit in digits:
            self._emit(chan.app, "ChannelDtmfReceived", chan, digit=digit, duration_ms=duration_ms)

    async def drop_websockets(self) -> None:
        """Close every event WebSocket abruptly (TCP close, no close frame).

        Simulates an Asterisk restart of ``res_ari`` or a network drop of the
        event stream. Channels stay parked in their application, which stays
        registered while they remain; no ``StasisStart`` is replayed later.
        """
        for app in list(self._apps.values()):
            for conn in list(app.connections):
                self._detach(conn)
        for proto in list(self._ws_protocols):
            proto.transport.abort()
        self._notify()
        await asyncio.sleep(0)

    def set_rest_available(self, flag: bool) -> None:
        """Make Asterisk's HTTP server vanish or come back.

        While unavailable, every new request (REST or WebSocket handshake) has
        its TCP connection closed without any response, at the moment its
        bytes arrive (it is counted in :attr:`dropped_requests`, not recorded
        in :attr:`requests`). Open event WebSockets are left alone; call
        :meth:`drop_websockets` too for a full outage.

        Args:
            flag: False to drop requests, True to serve again.
        """
        self.rest_available = flag

    def parked_channels(self, app: str) -> list[str]:
        """Ids of the channels in an application's Stasis.

        Args:
            app: Application name.

        Returns:
            Channel ids, oldest first (``GET /applications/{app}`` ``channel_ids``).
        """
        return [c.id for c in self.channels.values() if c.in_stasis and c.app == app]

    def is_app_registered(self, app: str) -> bool:
        """Tell whether ``Stasis(app)`` would succeed now.

        Args:
            app: Application name.

        Returns:
            True while a WebSocket, a parked channel or ``apps_known`` keeps it.
        """
        return app in self._apps

    def ws_count(self, app: str) -> int:
        """Number of event WebSockets connected for an application.

        Args:
            app: Application name.

        Returns:
            Connection count.
        """
        entry = self._apps.get(app)
        return len(entry.connections) if entry else 0

    async def wait_for_ws(
        self,
        app: str = "ai_ari_app",
        timeout: float = 5.0,  # noqa: ASYNC109
        count: int = 1,
    ) -> None:
        """Wait until the gateway's event WebSocket for ``app`` is connected.

        Args:
            app: Application name.
            timeout: Seconds to wait.
            count: Minimum number of connections.

        Raises:
            TimeoutError: Not connected within ``timeout``.
        """
        await self.wait_until(lambda: self.ws_count(app) >= count, timeout)

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate()`` is true, re-checking on each change of the fake.

        Args:
            predicate: Condition on the fake's state.
            timeout: Seconds to wait.

        Raises:
            TimeoutError: Still false after ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            changed = self._changed
            # Re-check periodically too, for predicates on state outside the fake.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.05))

    async def send_event(self, app: str, event: dict[str, Any]) -> None:
        """Send a custom event to an application's WebSocket(s).

        ``application``, ``asterisk_id`` and ``timestamp`` are filled in when missing.

        Args:
            app: Application name.
            event: Event body with at least ``type``.
        """
        full = {
            "application": app,
            "asterisk_id": self.asterisk_id,
            "timestamp": asterisk_timestamp(),
        }
        full.update(event)
        self._dispatch(app, full)

    # ---------------------------------------------------------------- internals: state

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _live(self, channel_id: str) -> FakeChannel | None:
        chan = self.channels.get(channel_id)
        return chan if chan is not None and not chan.hung_up else None

    def _event(self, app: str, event_type: str, chan: FakeChannel, **extra: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "application": app,
            "asterisk_id": self.asterisk_id,
            "channel": chan.to_json(),
            "timestamp": asterisk_timestamp(),
            "type": event_type,
        }
        event.update(extra)
        return dict(sorted(event.items()))

    def _event_plain(self, app: str, event_type: str, **extra: Any) -> dict[str, Any]:
        """An event without a ``channel`` (PlaybackStarted, BridgeDestroyed, ...)."""
        event: dict[str, Any] = {
            "application": app,
            "asterisk_id": self.asterisk_id,
            "timestamp": asterisk_timestamp(),
            "type": event_type,
        }
        event.update(extra)
        return dict(sorted(event.items()))

    def _new_external_channel(self, channel_id: str | None, name: str) -> FakeChannel:
        """A ``Down`` channel made by externalMedia (externalMedia-websocket-*-response.json)."""
        cid = channel_id or f"{self._id_epoch}.{next(self._id_counter)}"
        chan = FakeChannel(
            id=cid,
            name=name,
            app="",
            args=[],
            app_data="(Outgoing Line)",
            caller_number="",
            caller_name="",
            context="default",
            exten="s",
            priority=1,
            state="Down",
            creationtime=asterisk_timestamp(),
            app_name="AppDial2",
        )
        self.channels[cid] = chan
        return chan

    def _emit(self, app: str, event_type: str, chan: FakeChannel, **extra: Any) -> None:
        self._dispatch(app, self._event(app, event_type, chan, **extra))

    def _dispatch(self, app: str, event: dict[str, Any]) -> None:
        self.events.append(event)
        entry = self._apps.get(app)
        if entry is None:
            return
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        for conn in entry.connections:
            if not conn.closed:
                conn.queue.put_nowait(text)

    def _leave_stasis(self, chan: FakeChannel, *, set_status: bool) -> None:
        chan.in_stasis = False
        if set_status:
            chan.variables["STASISSTATUS"] = "SUCCESS"
        chan.left_stasis.set()

    def _maybe_destroy_app(self, name: str) -> None:
        entry = self._apps.get(name)
        if entry is None or entry.permanent or entry.connections:
            return
        if any(c.in_stasis and c.app == name for c in self.channels.values()):
            return
        del self._apps[name]
        logger.info("application %s destroyed", name)

    def _detach(self, conn: _EventConnection) -> None:
        if conn.closed:
            return
        conn.closed = True
        conn.queue.put_nowait(None)
        for name in conn.apps:
            entry = self._apps.get(name)
            if entry is not None:
                entry.connections.discard(conn)
                self._maybe_destroy_app(name)
        self._notify()

    def _protocol_for(self, client: tuple[str, int] | None) -> WebSocketsSansIOProtocol | None:
        for proto in self._ws_protocols:
            if client is not None and proto.client is not None and tuple(proto.client) == client:
                return proto
        return None

    # ---------------------------------------------------------------- internals: ASGI

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._handle_http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._handle_ws(WebSocket(scope, receive, send))

    def _authorized(self, headers: Mapping[str, str], query: list[tuple[str, str]]) -> bool:
        """Asterisk ``res_ari.c`` authenticate_user: Basic or ``api_key=user:pass``."""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return decoded == f"{self.username}:{self.password}"
        keys = [v for k, v in query if k == "api_key"]
        return bool(keys) and keys[-1] == f"{self.username}:{self.password}"

    def _check_spec(
        self, method: str, path: str, query: list[tuple[str, str]], body: Any | None
    ) -> tuple[AriOperation | None, dict[str, str]]:
        try:
            op, path_params = find_operation(method, path)
        except AriSpecViolation as exc:
            self.spec_violations.append(str(exc))
            return None, {}
        problems = check_parameters(op, [k for k, _ in query], body)
        self.spec_violations.extend(problems)
        return op, path_params

    async def _handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        arrived = time.monotonic()
        path = request.url.path
        query = list(request.query_params.multi_items())
        raw = await request.body()
        body: Any | None = None
        body_error = False
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if raw:
            if ctype == "application/json":
                try:
                    body = json.loads(raw)
                except ValueError:
                    body, body_error = raw.decode("utf-8", "replace"), True
            else:
                # Asterisk ignores a body that is not application/json
                # (http.c ast_http_get_json).
                body = raw.decode("utf-8", "replace")
        if path.startswith("/_fake/"):
            # Control API of the standalone fake: not ARI, not recorded.
            response = await self._control(request, path, body)
            await response(scope, receive, send)
            return
        record = RecordedRequest(request.method, path, query, body, 0, arrived)
        self.requests.append(record)
        deferred: _Deferred = []
        json_body = body if ctype == "application/json" and not body_error else None
        if not (path == "/ari" or path.startswith("/ari/")):
            self.spec_violations.append(f"{request.method} {path}: not under /ari")
            response = _error(404, "Resource not found")
        elif not self._authorized(request.headers, query):
            response = JSONResponse(
                {"message": "Authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        else:
            op, path_params = self._check_spec(request.method, path, query, json_body)
            if op is not None:
                record.operation = f"{op.resource}.{op.nickname}"
            response, deferred = await self._dispatch_rest(
                request, path, op, path_params, json_body, body_error
            )
        record.status = response.status_code
        await response(scope, receive, send)
        # Events caused by a request follow its response (StasisEnd 1-6 ms after
        # /continue's 204 on the real PBX, ari_samples README).
        for app, event in deferred:
            self._dispatch(app, event)
        if deferred:
            self._notify()

    async def _dispatch_rest(
        self,
        request: Request,
        path: str,
        op: AriOperation | None,
        path_params: dict[str, str],
        body: Any | None,
        body_error: bool,
    ) -> tuple[Response, _Deferred]:
        if op is None:
            if find_path(path):
                return _error(405, "Invalid method"), []
            return _error(404, "Resource not found"), []
        if op.upgrade == "websocket":
            return _error(400, "Upgrade to WebSocket required"), []
        if not op.available_in(self.asterisk_version):
            return _error(404, "Resource not found"), []
        if body_error:
            return _error(400, "Error parsing request body"), []
        handler = self._handlers.get((op.resource, op.nickname))
        if handler is None:
            return _error(501, f"FakeAriServer does not implement {op.resource}.{op.nickname}"), []
        return await handler(request, op, path_params, body)

    async def _handle_ws(self, websocket: WebSocket) -> None:
        arrived = time.monotonic()
        path = websocket.url.path
        if path.startswith("/media/"):
            # chan_websocket's server mode, on Asterisk's HTTP server (not ARI).
            await self.media.serve_websocket(websocket)
            return
        query = list(websocket.query_params.multi_items())
        record = RecordedRequest("GET", path, query, None, 0, arrived)
        self.requests.append(record)

        async def deny(status: int, message: str) -> None:
            record.status = status
            headers = {"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'} if status == 401 else None
            await websocket.send_denial_response(
                JSONResponse({"message": message}, status_code=status, headers=headers)
            )

        if path != "/ari/events":
            self.spec_violations.append(f"WebSocket {path}: only /ari/events is a WebSocket")
            await deny(404, "Resource not found")
            return
        op, _ = self._check_spec("GET", path, query, None)
        if op is not None:
            record.operation = f"{op.resource}.{op.nickname}"
        if not self._authorized(websocket.headers, query):
            await deny(401, "Authentication required")
            return
        apps = [a for k, v in query if k == "app" for a in v.split(",") if a]
        if not apps:
            await deny(400, "Missing param 'app'")
            return
        subprotocol = "ari" if "ari" in websocket.scope.get("subprotocols", []) else None
        await websocket.accept(subprotocol=subprotocol)
        record.status = 101
        conn = _EventConnection(websocket, list(dict.fromkeys(apps)), self.ws_write_timeout)
        for name in conn.apps:
            entry = self._apps.setdefault(name, _App(name))
            # events.json ApplicationReplaced: "An application may only be subscribed to by a
            # single WebSocket at a time ... the newer WebSocket wins, and the older one
            # receives this event." The older socket stays open but gets nothing more.
            for old in list(entry.connections):
                entry.connections.discard(old)
                if not old.closed:
                    replaced = {
                        "type": "ApplicationReplaced",
                        "application": name,
                        "timestamp": asterisk_timestamp(),
                        "asterisk_id": self.asterisk_id,
                    }
                    self.events.append(replaced)
                    old.queue.put_nowait(json.dumps(replaced, separators=(",", ":")))
            entry.connections.add(conn)
        conn.writer = asyncio.create_task(self._writer(conn), name=f"fake-ari-ws-{apps[0]}")
        self._notify()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self._detach(conn)
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await conn.writer

    async def _writer(self, conn: _EventConnection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None or conn.closed:
                return
            try:
                if conn.write_timeout is None:
                    await conn.websocket.send_text(text)
                else:
                    await asyncio.wait_for(conn.websocket.send_text(text), conn.write_timeout)
            except TimeoutError:
                logger.warning("event WebSocket %s too slow: dropped", conn.client)
                conn.dropped_slow = True
                self._detach(conn)
                proto = self._protocol_for(conn.client)
                if proto is not None:
                    proto.transport.abort()
                return
            except (RuntimeError, OSError, WebSocketDisconnect):  # connection gone
                self._detach(conn)
                return

    # ---------------------------------------------------------------- REST handlers

    def _find_control(self, channel_id: str) -> tuple[FakeChannel | None, Response | None]:
        """``resource_channels.c`` find_control: 404 if gone, 409 if not in Stasis."""
        chan = self._live(channel_id)
        if chan is None:
            return None, _error(404, "Channel not found")
        if not chan.in_stasis:
            return None, _error(409, "Channel not in Stasis application")
        return chan, None

    async def _h_get_info(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        info: dict[str, Any] = {
            "build": {
                "date": "2026-11-01 00:00:00 UTC",
                "kernel": "6.1.0",
                "machine": "x86_64",
                "options": "",
                "os": "Linux",
                "user": "root",
            },
            "config": {
                "default_language": "en",
                "name": "",
                "setid": {"group": "asterisk", "user": "asterisk"},
            },
            "status": {
                "last_reload_time": self._startup_time,
                "startup_time": self._startup_time,
            },
            "system": {"entity_id": self.asterisk_id, "version": self.asterisk_version},
        }
        only = [p for k, v in request.query_params.multi_items() if k == "only" for p in v.split(",")]
        if only:
            info = {k: v for k, v in info.items() if k in only}
        return JSONResponse(info), []

    async def _h_ping(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        return JSONResponse(
            {
                "asterisk_id": self.asterisk_id,
                "ping": "pong",
                "timestamp": asterisk_timestamp(),
            }
        ), []

    def _app_json(self, name: str) -> dict[str, Any]:
        return {
            "bridge_ids": [],
            "channel_ids": self.parked_channels(name),
            "device_names": [],
            "endpoint_ids": [],
            "events_allowed": [],
            "events_disallowed": [],
            "name": name,
        }

    async def _h_app_list(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        return JSONResponse([self._app_json(n) for n in sorted(self._apps)]), []

    async def _h_app_get(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        name = pp["applicationName"]
        if name not in self._apps:
            return _error(404, "Application not found"), []
        return JSONResponse(self._app_json(name)), []

    async def _h_chan_list(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        return JSONResponse([c.to_json() for c in self.channels.values() if not c.hung_up]), []

    async def _h_chan_get(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        chan = self._live(pp["channelId"])
        if chan is None:
            return _error(404, "Channel not found"), []
        return JSONResponse(chan.to_json()), []

    async def _h_hangup(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        chan = self._live(pp["channelId"])
        if chan is None:
            return _error(404, "Channel not found"), []
        params = _params(request, body)
        reason, reason_code = params.get("reason"), params.get("reason_code")
        if reason and reason_code:
            return _error(400, "The reason and reason_code can't both be specified"), []
        cause = 16
        if reason_code:
            try:
                cause = int(reason_code)
            except ValueError:
                return _error(400, "Invalid reason_code specified"), []
        elif reason:
            if reason not in HANGUP_REASONS:
                return _error(400, "Invalid reason for hangup specified"), []
            cause = HANGUP_REASONS[reason]
        chan.operations.append(("hangup", reason or reason_code))
        deferred: _Deferred = []
        if chan.in_stasis:
            app = chan.app
            # ChannelHangupRequest-after-ari-DELETE.json, then
            # StasisEnd-after-ari-DELETE.json.
            deferred.append(
                (
                    app,
                    self._event(
                        app,
                        "ChannelHangupRequest",
                        chan,
                        cause=SOFTHANGUP_EXPLICIT,
                        soft=True,
                    ),
                )
            )
            deferred.extend(self.bridges.leave(chan))
            self._leave_stasis(chan, set_status=False)
            deferred.append((app, self._event(app, "StasisEnd", chan)))
            deferred.extend(self.media.on_ari_hangup(chan, was_in_stasis=True))
            self._maybe_destroy_app(app)
        else:
            deferred.extend(self.media.on_ari_hangup(chan, was_in_stasis=False))
        chan.variables["HANGUPCAUSE"] = str(cause)
        chan.hung_up = True
        chan.left_stasis.set()
        self._notify()
        return _no_content(), deferred

    async def _h_continue(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        known = self.channels.get(pp["channelId"])
        if known is not None:
            known.continued_count += 1
        chan, err = self._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        params = _params(request, body)
        target = {k: params[k] for k in ("context", "extension", "priority", "label") if k in params}
        if "priority" in target:
            try:
                int(target["priority"])
            except ValueError:
                return _error(400, "Invalid priority"), []
        chan.operations.append(("continue", target))
        app = chan.app
        deferred: _Deferred = self.bridges.leave(chan)
        self._leave_stasis(chan, set_status=True)
        deferred.append((app, self._event(app, "StasisEnd", chan)))
        chan.context = target.get("context", chan.context)
        chan.exten = target.get("extension", chan.exten)
        chan.priority = int(target["priority"]) if "priority" in target else chan.priority + 1
        self._maybe_destroy_app(app)
        self._notify()
        return _no_content(), deferred

    async def _h_user_event(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        """`POST /events/user/{eventName}?application=…`: a `ChannelUserevent` to the app.

        Without `source` the event has no channel (events.json, res_stasis.c).
        """
        params = _params(request, body)
        app = str(params.get("application", ""))
        if not app:
            return _error(400, "Missing parameter application"), []
        if app not in self._apps:
            return _error(404, "Application not found"), []
        variables = body.get("variables", {}) if isinstance(body, dict) else {}
        event = {
            "application": app,
            "asterisk_id": self.asterisk_id,
            "eventname": pp["eventName"],
            "timestamp": asterisk_timestamp(),
            "type": "ChannelUserevent",
            "userevent": variables if isinstance(variables, dict) else {},
        }
        return _no_content(), [(app, event)]

    async def _h_answer(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        chan, err = self._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        chan.operations.append(("answer",))
        deferred: _Deferred = []
        if chan.state != "Up":
            chan.state = "Up"
            # ChannelStateChange-answer.json
            deferred.append((chan.app, self._event(chan.app, "ChannelStateChange", chan)))
        return _no_content(), deferred

    async def _h_ring(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        chan, err = self._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        chan.operations.append(("ring",))
        return _no_content(), []

    async def _h_ring_stop(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        chan, err = self._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        chan.operations.append(("ring_stop",))
        return _no_content(), []

    async def _h_get_var(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        variable = _params(request, body).get("variable")
        if not variable:
            return _error(400, "Variable name is required"), []
        chan = self._live(pp["channelId"])
        if chan is None:
            return _error(404, "Provided channel was not found"), []
        value = chan.get_variable(variable)
        if value is None:
            return _error(404, "Provided variable was not found"), []
        return JSONResponse({"value": value}), []

    async def _h_get_vars(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        names = [
            n for k, v in request.query_params.multi_items() if k == "variables" for n in v.split(",") if n
        ]
        if not names:
            return _error(400, "Missing variables parameter."), []
        chan, err = self._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        values: dict[str, str] = {}
        for name in names:
            value = chan.get_variable(name)
            if value is None:
                return _error(404, "Provided variable was not found"), []
            values[name] = value
        return JSONResponse({"variables": values}), []

    def _set_var(self, chan: FakeChannel, name: str, value: str | None, report: bool) -> _Deferred:
        if name.upper() == "CALLERID(NAME)" and value is not None:
            chan.caller_name = value
        elif name.upper() in ("CALLERID(NUM)", "CALLERID(NUMBER)") and value is not None:
            chan.caller_number = value
        # A NULL value unsets the variable (pbx_builtin_setvar_helper).
        if value is None:
            chan.variables.pop(name, None)
        else:
            chan.variables[name] = value
        if report:
            chan.reported_vars.add(name)
        chan.operations.append(("setvar", name, value))
        # ChannelVarset-AI_RESPONSE.json
        return [
            (
                chan.app,
                self._event(chan.app, "ChannelVarset", chan, value=value or "", variable=name),
            )
        ]

    async def _h_set_var(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        params = _params(request, body)
        variable = params.get("variable")
        if not variable:
            return _error(400, "Variable name is required"), []
        chan, err = self._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        report = str(params.get("report_events", "false")).lower() in (
            "true",
            "yes",
            "1",
        )
        return _no_content(), self._set_var(chan, variable, params.get("value"), report)

    async def _h_set_vars(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        variables = body.get("variables") if isinstance(body, dict) else None
        if not isinstance(variables, dict) or not variables:
            return _error(400, "Missing variables parameter."), []
        parsed: list[tuple[str, str, bool]] = []
        for name, spec in variables.items():
            if isinstance(spec, str):
                parsed.append((name, spec, False))
            elif isinstance(spec, dict) and isinstance(spec.get("value"), str):
                parsed.append((name, spec["value"], bool(spec.get("report_events", False))))
            else:
                return _error(400, f"Invalid value for variable {name}"), []
        chan, err = self._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        deferred: _Deferred = []
        for name, value, report in parsed:
            deferred.extend(self._set_var(chan, name, value, report))
        return _no_content(), deferred

    # ---------------------------------------------------------------- control API

    @staticmethod
    def control_routes_help() -> str:
        """Describe the ``/_fake`` control API of the standalone server.

        Returns:
            Human-readable route list.
        """
        return (
            "POST /_fake/calls {app_data|args, app, caller_number, caller_name,"
            " channel_vars, state} -> channel; GET /_fake/channels/{id} -> channel"
            " with variables and operations;"
            " POST /_fake/channels/{id}/hangup; POST /_fake/drop_websockets;"
            " POST /_fake/rest_available {available: bool}"
        )

    async def _control(self, request: Request, path: str, body: Any | None) -> Response:
        parts = path.strip("/").split("/")[1:]
        data = body if isinstance(body, dict) else {}
        if request.method == "POST" and parts == ["calls"]:
            allowed = {
                "args",
                "app",
                "caller_number",
                "caller_name",
                "channel_vars",
                "channel_id",
                "state",
                "context",
                "exten",
            }
            chan = await self.place_call(
                data.get("app_data"), **{k: v for k, v in data.items() if k in allowed}
            )
            return JSONResponse(_channel_debug(chan))
        if len(parts) >= 2 and parts[0] == "channels":
            chan_or_none = self.channels.get(parts[1])
            if chan_or_none is None:
                return _error(404, "Channel not found")
            if request.method == "GET" and len(parts) == 2:
                return JSONResponse(_channel_debug(chan_or_none))
            if request.method == "POST" and parts[2:] == ["hangup"]:
                if chan_or_none.hung_up:
                    return _error(404, "Channel not found")
                await self.hangup_by_caller(chan_or_none.id)
                return _no_content()
        if request.method == "POST" and parts == ["drop_websockets"]:
            await self.drop_websockets()
            return _no_content()
        if request.method == "POST" and parts == ["rest_available"]:
            self.set_rest_available(bool(data.get("available", True)))
            return _no_content()
        return _error(404, "Resource not found")


def _params(request: Request, body: Any | None) -> dict[str, Any]:
    """Query parameters plus JSON body keys (Asterisk's ``*_parse_body`` reads both)."""
    params: dict[str, Any] = {}
    if isinstance(body, dict):
        params.update({k: v for k, v in body.items() if isinstance(v, str | int | bool)})
    params.update(dict(request.query_params.multi_items()))
    return params


def _channel_debug(chan: FakeChannel) -> dict[str, Any]:
    data = chan.to_json()
    data.update(
        {
            "args": chan.args,
            "variables": chan.variables,
            "in_stasis": chan.in_stasis,
            "hung_up": chan.hung_up,
            "stasis_failed": chan.stasis_failed,
            "operations": [list(op) for op in chan.operations],
            "continued_count": chan.continued_count,
        }
    )
    return data


class _QuietServer(uvicorn.Server):
    """uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _make_http_protocol(fake: FakeAriServer) -> type[H11Protocol]:
    """HTTP protocol with Asterisk's session limit and the "REST gone" switch.

    The checks run at the TCP level, so refused connections get no HTTP reply
    at all, as with Asterisk's ``http.conf`` ``sessionlimit``.
    """

    class _AsteriskHttpProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            limit = fake.session_limit
            if limit is not None and len(self.connections) > limit:
                fake.refused_connections += 1
                logger.info("session limit %d reached: closing new connection", limit)
                transport.close()

        def data_received(self, data: bytes) -> None:
            if not fake.rest_available:
                fake.dropped_requests += 1
                self.transport.close()
                return
            super().data_received(data)

    return _AsteriskHttpProtocol


def _make_ws_protocol(fake: FakeAriServer) -> type[WebSocketsSansIOProtocol]:
    """WebSocket protocol whose transports the fake can abort (abrupt drops)."""

    class _AsteriskWsProtocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            fake._ws_protocols.add(self)

        def connection_lost(self, exc: Exception | None) -> None:
            fake._ws_protocols.discard(self)
            super().connection_lost(exc)

    return _AsteriskWsProtocol


@contextlib.asynccontextmanager
async def running_fake_ari(**kwargs: Any) -> AsyncIterator[FakeAriServer]:
    """Run a :class:`FakeAriServer` on a free port for the duration of a ``with`` block.

    Args:
        **kwargs: Passed to :class:`FakeAriServer`.

    Yields:
        The started server.
    """
    server = FakeAriServer(**kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _serve_forever(args: argparse.Namespace) -> None:
    server = FakeAriServer(
        username=args.username,
        password=args.password,
        apps_known=args.app or (),
        asterisk_version=args.asterisk_version,
        session_limit=args.session_limit,
        websocket_clients=dict(item.split("=", 1) for item in args.websocket_client or ()),
    )
    await server.start(args.host, args.port)
    sys.stdout.write(f"fake ARI on {server.ari_url} (user {args.username})\n")
    sys.stdout.write(f"control API: {server.control_routes_help()}\n")
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the fake ARI server standalone until interrupted.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` when ``None``.
    """
    parser = argparse.ArgumentParser(description="Fake Asterisk ARI server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--username", default="asterisk")
    parser.add_argument("--password", default="asterisk")
    parser.add_argument("--asterisk-version", default="22.5.0")
    parser.add_argument("--session-limit", type=int, default=100)
    parser.add_argument("--app", action="append", help="application registered permanently")
    parser.add_argument(
        "--websocket-client",
        action="append",
        metavar="ID=URI",
        help="websocket_client.conf entry for externalMedia client mode, e.g. media_connection1=ws://127.0.0.1:8765/media",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
