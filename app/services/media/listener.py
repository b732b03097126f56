"""Where media WebSockets come from: Asterisk connecting to us, or us connecting to Asterisk.

* ``connection_type=client`` (``websocket_client.conf``): Asterisk connects to our
  `MediaListener` during ``POST /channels/externalMedia``, path ``/media`` plus any
  ``transport_data=v(k=v,…)`` parameters, subprotocol ``media``. Every call arrives on the
  same URI, so connections are matched by ``MEDIA_START.channel_id``, which is the
  ``channelId`` we chose in the REST request. The connection can arrive before the REST
  response (``../shared/ari-samples/media/README.md``, "Gotchas"), so arrivals are kept
  until claimed.
* ``connection_type=server``: we connect to ``ws://<asterisk http>/media/<MEDIA_WEBSOCKET_CONNECTION_ID>``
  (`connect_to_asterisk`); Asterisk sends ``MEDIA_START`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve

from app.services.media.connection import MediaConnection
from app.services.media.protocol import SUBPROTOCOL, MediaStart, ProtocolError, parse_control

logger = logging.getLogger(__name__)

#: How long (s) Asterisk has to send ``MEDIA_START`` after the handshake.
MEDIA_START_TIMEOUT_S = 5.0


class MediaUnavailable(Exception):
    """No media connection for a channel in time (Asterisk never connected, or refused us)."""


async def _read_media_start(ws: Any) -> MediaStart:
    async with asyncio.timeout(MEDIA_START_TIMEOUT_S):
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                continue
            try:
                event = parse_control(message)
            except ProtocolError:
                continue
            if isinstance(event, MediaStart):
                return event


class MediaListener:
    """Accepts Asterisk's media WebSockets (client mode) and hands each to its call.

    Args:
        host: address to listen on (``MEDIA_LISTEN_HOST``).
        port: TCP port (``MEDIA_LISTEN_PORT``; 0 picks a free one, see `port`).
        max_lead_ms: passed to each `MediaConnection`.
    """

    def __init__(self, host: str = "0.0.0.0", port: int = 8765, *, max_lead_ms: int = 400) -> None:
        self._host = host
        self._port = port
        self._max_lead_ms = max_lead_ms
        self._server: Server | None = None
        self._waiting: dict[str, asyncio.Future[MediaConnection]] = {}
        self._arrived: dict[str, MediaConnection] = {}

    @property
    def port(self) -> int:
        """The bound TCP port (after `start`)."""
        if self._server is None:
            return self._port
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    async def start(self) -> None:
        """Start listening.

        Raises:
            OSError: the port is taken.
        """
        self._server = await serve(
            self._handle,
            self._host,
            self._port,
            subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
            max_size=2**16,
            ping_interval=None,
        )
        logger.info("media WebSocket listener on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop listening and close unclaimed connections."""
        for conn in list(self._arrived.values()):
            await conn.aclose()
        self._arrived.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def expect(self, channel_id: str) -> asyncio.Future[MediaConnection]:
        """A future for the connection whose ``MEDIA_START.channel_id`` is `channel_id`.

        Register it before ``POST /channels/externalMedia``: the connection may beat the response.
        """
        fut: asyncio.Future[MediaConnection] = asyncio.get_running_loop().create_future()
        early = self._arrived.pop(channel_id, None)
        if early is not None:
            fut.set_result(early)
        else:
            self._waiting[channel_id] = fut
        return fut

    def forget(self, channel_id: str) -> None:
        """Drop a pending `expect` (the call ended before its media arrived)."""
        fut = self._waiting.pop(channel_id, None)
        if fut is not None and not fut.done():
            fut.cancel()

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            start = await _read_media_start(ws)
        except (TimeoutError, websockets.ConnectionClosed):
            logger.warning("media connection from %s sent no MEDIA_START; closing", ws.remote_address)
            return
        conn = MediaConnection(ws, start, we_are_client=False, max_lead_ms=self._max_lead_ms)
        fut = self._waiting.pop(start.channel_id, None)
        if fut is not None and not fut.done():
            fut.set_result(conn)
        else:
            self._arrived[start.channel_id] = conn
        conn.start_reading()
        await conn.wait_closed()
        self._arrived.pop(start.channel_id, None)


async def connect_to_asterisk(url: str, *, timeout_s: float = 5.0, max_lead_ms: int = 400) -> MediaConnection:
    """Open a server-mode media connection: ``ws://<asterisk>/media/<connection id>``.

    Args:
        url: the full media URL.
        timeout_s: connect plus ``MEDIA_START`` timeout, in s.
        max_lead_ms: passed to the `MediaConnection`.

    Raises:
        MediaUnavailable: refused (404 unknown id, 409 already connected), closed or too slow.
    """
    try:
        async with asyncio.timeout(timeout_s):
            ws = await connect(
                url,
                subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                max_size=2**16,
                ping_interval=None,
            )
            start = await _read_media_start(ws)
    except (OSError, TimeoutError, websockets.InvalidStatus, websockets.ConnectionClosed) as exc:
        raise MediaUnavailable(f"media WebSocket {url}: {type(exc).__name__}: {exc}") from exc
    conn = MediaConnection(ws, start, we_are_client=True, max_lead_ms=max_lead_ms)
    conn.start_reading()
    return conn


async def close_quietly(conn: MediaConnection | None) -> None:
    """Close `conn` if there is one, ignoring errors."""
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.aclose()
