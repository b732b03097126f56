"""The media side of the fake Asterisk: ARI ``externalMedia`` and a chan_websocket peer.

``POST /channels/externalMedia`` with ``transport=websocket``, ``encapsulation=none``
and ``format`` ``ulaw`` or ``slin16`` creates an external channel and a
:class:`MediaSession`, which speaks Asterisk's media WebSocket protocol
(``chan_websocket.conf`` ``control_message_format=json``) with the application:

* ``connection_type=client``: the fake connects, like Asterisk with
  ``websocket_client.conf``, to the URI configured for ``external_host``
  (``FakeAriServer(websocket_clients={"media_connection1": "ws://127.0.0.1:PORT/media"})``),
  subprotocol ``media``, ``transport_data=v(k=v,...)`` appended as a query string.
  Nobody listening: ``ChannelDestroyed`` cause 3 after 0.5 s, no ``StasisStart``.
* ``connection_type=server``: the application connects to
  ``ws://<fake>/media/<MEDIA_WEBSOCKET_CONNECTION_ID>`` (404 unknown id, 409 a
  second connection). The external channel stays ``Down`` and out of Stasis
  (``addChannel`` → 422) until then.

The media WebSocket protocol itself (framing, the 20 ms playout queue, flow
control, marks, buffering, errors) is :class:`app.testing.chan_websocket.MediaSession`.
This module adds the ARI side, as captured on a real Asterisk
(``tests/fixtures/media/README.md``): in client mode ``MEDIA_START`` first, then
the external channel's ``ChannelStateChange`` (Up) and ``StasisStart``
(``args: []``); in server mode ``StasisStart`` only once the application
connected. The application closing the socket or sending ``HANGUP`` hangs the
external channel up (cause 16: ``ChannelHangupRequest``, ``ChannelLeftBridge``,
``StasisEnd``, ``ChannelDestroyed``); an oversized message too (close 1009,
cause 38); ``DELETE /channels/{external}`` closes the socket with 1000. A caller
hang-up leaves the external channel up, silent, in the bridge. Frames played by
the queue reach the ears (:attr:`FakeMedia.frame_sinks`) of the channels bridged
with the external channel, e.g. a :class:`app.testing.fake_caller.FakeCaller`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import websockets
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.websockets import WebSocket

from app.testing.ari_spec import AriOperation
from app.testing.chan_websocket import (
    FRAME_BYTES,
    FrameSink,
    MediaSession,
    _ClientTransport,
    _ServerTransport,
    _Transport,
    parse_transport_data,
)

if TYPE_CHECKING:
    from app.testing.fake_ari import FakeAriServer, FakeChannel, _Deferred, _Handler

logger = logging.getLogger(__name__)

#: websocket_client.conf ``connection_timeout`` + reconnects before cause 3, in s.
CLIENT_GIVE_UP_S = 0.5


class FakeMedia:
    """externalMedia channels and their media WebSockets, for one fake PBX.

    Args:
        fake: The server that owns channels, bridges and events.
        websocket_clients: ``websocket_client.conf``: connection id → ``uri``
            (e.g. ``{"media_connection1": "ws://127.0.0.1:8765/media"}``).
        server_connect_timeout_s: How long a server-mode external channel waits
            for the application to connect before it is destroyed (a real PBX
            waits about 31 s, the originate timeout).
        connect_before_response: Client mode: finish the media handshake,
            ``MEDIA_START`` and the external channel's ``StasisStart`` before the
            REST response goes out. A real PBX connects during the POST and the
            connection "can arrive before the application has processed the REST
            response" (capture README, Gotchas); this makes that race certain.

    Attributes:
        sessions: Media sessions by external channel id.
        frame_sinks: Callbacks per caller channel id, fed each frame played
            into a bridge the caller is in (the scripted caller's ear).
    """

    def __init__(
        self,
        fake: FakeAriServer,
        websocket_clients: dict[str, str] | None = None,
        server_connect_timeout_s: float = 31.0,
        connect_before_response: bool = False,
    ) -> None:
        """Start with no sessions."""
        self.fake = fake
        self.connect_before_response = connect_before_response
        self.websocket_clients = dict(websocket_clients or {})
        self.server_connect_timeout_s = server_connect_timeout_s
        self.sessions: dict[str, MediaSession] = {}
        self.frame_sinks: dict[str, list[FrameSink]] = {}
        self._by_connection_id: dict[str, MediaSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def handlers(self) -> dict[tuple[str, str], _Handler]:
        """REST handlers to add to the fake's dispatch table.

        Returns:
            ``(resource, nickname)`` → handler.
        """
        return {("channels", "externalMedia"): self._h_external_media}

    def session_for(self, channel_id: str) -> MediaSession | None:
        """The media session of an external channel.

        Args:
            channel_id: External channel id.

        Returns:
            The session, or ``None``.
        """
        return self.sessions.get(channel_id)

    def _spawn(self, coro: Any, owner: set[asyncio.Task[None]] | None = None) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        for bucket in (self._tasks, owner):
            if bucket is not None:
                bucket.add(task)
                task.add_done_callback(bucket.discard)
        return task

    async def aclose(self) -> None:
        """Close every media WebSocket and stop every task."""
        for session in list(self.sessions.values()):
            if session.transport is not None and session.connected:
                session.connected = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.transport.close(1001), 1)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---------------------------------------------------------------- REST

    async def _h_external_media(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        params = request.query_params
        problem = self._check_params(params)
        if problem is not None:
            return JSONResponse({"message": problem}, status_code=400), []
        fmt = params["format"]
        connection_type = params.get("connection_type", "client")
        if connection_type == "client":
            connection_id = params["external_host"]
            name_part = connection_id
        else:
            connection_id = str(uuid.uuid4())
            name_part = "INCOMING"
        variables = body.get("variables") if isinstance(body, dict) else None
        chan = self.fake._new_external_channel(
            params.get("channelId"), f"WebSocket/{name_part}/0x{uuid.uuid4().int & 0xFFFFFFFFFFFF:012x}"
        )
        chan.app = params["app"]
        channel_vars = {
            "MEDIA_WEBSOCKET_CONNECTION_ID": connection_id,
            "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": str(FRAME_BYTES[fmt]),
        }
        if isinstance(variables, dict):
            chan.variables.update({str(k): str(v) for k, v in variables.items()})
        chan.variables.update(channel_vars)
        session = MediaSession(chan, chan.app, fmt, connection_type, connection_id, channel_vars)
        session.on_play = self._play
        session.on_hangup = self.hangup_external
        self.sessions[chan.id] = session
        response_body = chan.to_json()
        response_body["channelvars"] = dict(channel_vars)
        if connection_type == "client":
            query = parse_transport_data(params.get("transport_data", ""))
            uri = self.websocket_clients[connection_id]
            url = f"{uri}?{urlencode(query)}" if query else uri
            task = self._spawn(self._connect_client(session, url), session.tasks)
            if self.connect_before_response:
                await self._until_started(session, task)
        else:
            self._by_connection_id[connection_id] = session
            self._spawn(self._server_timeout(session), session.tasks)
        self.fake._notify()
        return JSONResponse(response_body), []

    def _check_params(self, params: Any) -> str | None:
        if params.get("transport", "udp") != "websocket" or params.get("encapsulation", "rtp") != "none":
            return "FakeAriServer implements only transport=websocket encapsulation=none"
        if params.get("format") not in FRAME_BYTES:
            return "format must be ulaw or slin16 in FakeAriServer"
        if params.get("direction", "both") != "both":
            return "Invalid direction"
        connection_type = params.get("connection_type", "client")
        if connection_type not in ("client", "server"):
            return "Invalid connection_type"
        if connection_type == "client" and params.get("external_host") not in self.websocket_clients:
            return "external_host must name a websocket_client.conf connection"
        if self.fake.channels.get(params.get("channelId", "")) is not None:
            return "channelId already in use"
        return None

    # ---------------------------------------------------------------- connecting

    async def _connect_client(self, session: MediaSession, url: str) -> None:
        await asyncio.sleep(0)  # the REST response goes out first
        try:
            conn = await websockets.connect(
                url,
                subprotocols=[websockets.Subprotocol("media")],
                max_size=None,
                compression=None,
                ping_interval=None,
                open_timeout=CLIENT_GIVE_UP_S,
            )
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            logger.info("media connection %s for %s failed: %r", url, session.channel.id, exc)
            await asyncio.sleep(max(0.0, CLIENT_GIVE_UP_S - 0.01))
            self._destroy_unconnected(session, cause=3)
            return
        session.path = url.split("/", 3)[-1] if "/" in url else url
        session.path = "/" + session.path
        await self._run(session, _ClientTransport(conn))

    async def _server_timeout(self, session: MediaSession) -> None:
        await asyncio.sleep(self.server_connect_timeout_s)
        if not session.connected and session.close_code is None:
            self._destroy_unconnected(session, cause=16)

    def _destroy_unconnected(self, session: MediaSession, cause: int) -> None:
        """No media connection: ``ChannelDestroyed`` only (websocket-connection-edge-cases.json)."""
        chan = session.channel
        if chan.hung_up:
            return
        chan.hung_up = True
        chan.left_stasis.set()
        session.close_code = 0
        self._by_connection_id.pop(session.connection_id, None)
        from app.testing.fake_ari import CAUSE_TEXT

        cause_txt = {3: "No route to destination"}.get(cause, CAUSE_TEXT.get(cause, "Unknown"))
        self.fake._emit(session.app, "ChannelDestroyed", chan, cause=cause, cause_txt=cause_txt)
        self.fake._notify()

    async def serve_websocket(self, websocket: WebSocket) -> None:
        """Serve ``/media/<connection id>`` (server mode), on Asterisk's HTTP port.

        Args:
            websocket: The application's connection; accepted with subprotocol
                ``media`` when offered (also accepted without one), or denied
                with 404 "WebSocket instance not found" / 409 "Another websocket
                connection exists for this connection id".
        """
        connection_id = websocket.url.path.rsplit("/", 1)[-1]
        session = self._by_connection_id.get(connection_id)
        if session is None or session.channel.hung_up:
            await websocket.send_denial_response(_html(404, "Not found", "WebSocket instance not found"))
            return
        if session.connected or session.close_code is not None:
            await websocket.send_denial_response(
                _html(409, "Conflict", "Another websocket connection exists for this connection id")
            )
            return
        offered = websocket.scope.get("subprotocols", [])
        await websocket.accept(subprotocol="media" if "media" in offered else None)
        session.path = websocket.url.path
        await self._run(session, _ServerTransport(websocket))

    @staticmethod
    async def _until_started(session: MediaSession, task: asyncio.Task[None]) -> None:
        """Wait for the external channel's StasisStart, or the connection attempt to end."""
        started = asyncio.ensure_future(session.started.wait())
        try:
            await asyncio.wait({started, task}, timeout=2, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()

    async def _run(self, session: MediaSession, transport: _Transport) -> None:
        """Own one open media WebSocket: MEDIA_START, StasisStart, ticks and reading."""
        session.transport = transport
        session.connected = True
        chan = session.channel
        if session.connection_type == "server":
            self._enter_stasis(session)
            await session.send_message(session.media_start())
        else:
            await session.send_message(session.media_start())
            self._enter_stasis(session)
        session.started.set()
        ticker = self._spawn(session.tick_loop(), session.tasks)
        try:
            await session.read_loop()
        finally:
            ticker.cancel()
            was_connected = session.connected
            session.connected = False
            if was_connected and not chan.hung_up:
                # The application closed the socket (websocket-endings.json app_close).
                self.hangup_external(session, cause=16)

    def _enter_stasis(self, session: MediaSession) -> None:
        """External channel answered and in Stasis (``ChannelStateChange``, ``StasisStart``)."""
        chan = session.channel
        chan.state = "Up"
        chan.app_name = "Stasis"
        chan.app_data = session.app
        chan.in_stasis = True
        self.fake._emit(session.app, "ChannelStateChange", chan)
        self.fake._emit(session.app, "StasisStart", chan, args=[])
        self.fake._notify()

    # ---------------------------------------------------------------- protocol

    def _play(self, session: MediaSession, frame: bytes, now: float) -> None:
        """Feed a played frame to the ears of the channels bridged with the external one."""
        for peer in self.fake.bridges.peers(session.channel.id):
            for sink in self.frame_sinks.get(peer.id, []):
                sink(session, frame, now)

    # ---------------------------------------------------------------- endings

    def hangup_external(self, session: MediaSession, cause: int) -> None:
        """Hang the external channel up from the media side.

        Events as captured (websocket-endings.json): ``ChannelHangupRequest``
        (cause), ``ChannelVarset BRIDGEPEER``, ``ChannelLeftBridge``,
        ``StasisEnd``, ``ChannelDestroyed``; the caller stays in the bridge.

        Args:
            session: The external channel's media session.
            cause: 16 (socket closed or ``HANGUP``) or 38 (oversized message).
        """
        chan = session.channel
        if chan.hung_up:
            return
        from app.testing.fake_ari import CAUSE_TEXT

        events: _Deferred = [
            (chan.app, self.fake._event(chan.app, "ChannelHangupRequest", chan, cause=cause))
        ]
        events.extend(self.fake.bridges.leave(chan))
        if chan.in_stasis:
            self.fake._leave_stasis(chan, set_status=True)
            events.append((chan.app, self.fake._event(chan.app, "StasisEnd", chan)))
            events.append(self._stasis_status(chan))
        events.append(
            (
                chan.app,
                self.fake._event(
                    chan.app,
                    "ChannelDestroyed",
                    chan,
                    cause=cause,
                    cause_txt=CAUSE_TEXT.get(cause, "Unknown"),
                ),
            )
        )
        chan.hung_up = True
        chan.left_stasis.set()
        for app, event in events:
            self.fake._dispatch(app, event)
        self.fake._maybe_destroy_app(chan.app)
        self.fake._notify()

    async def drop_connection(self, channel_id: str, code: int = 1011, cause: int = 16) -> None:
        """Drop an external channel's media WebSocket from Asterisk's side (a test's failure case).

        Not captured on a real PBX: modelled on the captured app-side close
        (the external channel hangs up and leaves the bridge; the caller stays).

        Args:
            channel_id: External channel id.
            code: WebSocket close code sent to the application.
            cause: Hangup cause of the external channel.

        Raises:
            KeyError: No media session for ``channel_id``.
        """
        session = self.sessions[channel_id]
        await session.close(code)
        self.hangup_external(session, cause=cause)

    def _stasis_status(self, chan: FakeChannel) -> tuple[str, dict[str, Any]]:
        """``ChannelVarset STASISSTATUS=SUCCESS`` after the external channel's ``StasisEnd``."""
        event = self.fake._event(chan.app, "ChannelVarset", chan, variable="STASISSTATUS", value="SUCCESS")
        return chan.app, event

    def on_ari_hangup(self, chan: FakeChannel, was_in_stasis: bool) -> _Deferred:
        """``DELETE /channels/{id}`` of an external channel: close 1000 and ``ChannelDestroyed``.

        Args:
            chan: The channel being hung up.
            was_in_stasis: The channel was in Stasis (its media WebSocket had
                connected); else it was still ``Down`` waiting for a connection.

        Returns:
            ``ChannelVarset STASISSTATUS`` (after Stasis) and ``ChannelDestroyed``
            (cause 16) for an external channel; nothing for other channels.
        """
        session = self.sessions.get(chan.id)
        if session is None:
            return []
        if session.connected:
            self._spawn(session.close(1000))
        else:
            session.close_code = session.close_code or 1000
        from app.testing.fake_ari import CAUSE_TEXT

        destroyed = self.fake._event(chan.app, "ChannelDestroyed", chan, cause=16, cause_txt=CAUSE_TEXT[16])
        return (
            [self._stasis_status(chan), (chan.app, destroyed)] if was_in_stasis else [(chan.app, destroyed)]
        )


def _html(status: int, title: str, text: str) -> Response:
    """Asterisk's HTML error page (websocket-connection-edge-cases.json)."""
    body = (
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n'
        f"<title>{status} {title}</title>\r\n</head><body>\r\n<h1>{title}</h1>\r\n"
        f"<p>{text}</p>\r\n<hr />\r\n<address>Asterisk</address>\r\n</body></html>\r\n"
    )
    return HTMLResponse(body, status_code=status)
