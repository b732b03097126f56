"""Where ARI events come from: the `EventSource` interface and the client WebSocket.

An event source delivers parsed ARI events (`events.AriEvent`) to one callback,
`on_event`, which must not block, and reports whether it is connected. The session
layer (`sessions.SessionManager`) only sees that callback and `on_connected`; it
does not know how events travel.

Today's implementation, `AriEventStream`, is the client WebSocket every Asterisk
offers: one `GET /ari/events?app=<app>&subscribeAll=false` connection for the whole
application, reconnecting forever.

Outbound per-call WebSockets (`ari.conf` `type=outbound_websocket`, Asterisk
20.17/22.7/23.1+; facts in `ari-samples/ha/README.md`) fit without touching session
code: a server-side source accepts one WebSocket per call (subprotocol ``ari``),
parses its frames with the same `parse_event` and calls the same `on_event`. The
per-call application name is ``<app>:<channel name>``; `SessionManager` routes by
channel id, not by application, so it does not care. What differs is REST: on that
socket requests travel as ``RESTRequest`` messages, so such a source would also
provide an `AriClient` whose transport sends them (`AriClient` takes any
`httpx.AsyncClient`; an `httpx.AsyncBaseTransport` that maps each request to a
``RESTRequest`` and its ``RESTResponse`` back is all it needs). Asterisk closes a
per-call socket 3.5 s after `continue`, so such a source is connected while any call is.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, WebSocketException

from app.core.metrics import Metrics
from app.services.telephony.events import AriEvent, EventParseError, parse_event

logger = logging.getLogger(__name__)

#: Called with each parsed event; must return at once (never await).
EventCallback = Callable[[AriEvent], None]


class EventSource(Protocol):
    """A source of ARI events for our Stasis application.

    Attributes:
        connected: set while events can arrive (delivery waits on it).
        state: ``connecting``, ``connected``, ``reconnecting``, ``stopped`` (or ``disabled``).
        on_event: the callback each parsed event is handed to, in arrival order.
    """

    @property
    def connected(self) -> asyncio.Event:
        """Set while events can arrive."""
        ...

    @property
    def state(self) -> str:
        """Connection state, for logs and the status page."""
        ...

    @property
    def on_event(self) -> EventCallback:
        """The callback each parsed event is handed to, in arrival order."""
        ...

    async def run(self) -> None:
        """Receive events until `stop()` (reconnecting as the source sees fit)."""
        ...

    async def stop(self) -> None:
        """Stop receiving and close connections (bounded in time)."""
        ...

    def status(self) -> dict[str, Any]:
        """State for the status page: state, since, last_event_at, reconnects."""
        ...


ConnectionState = Literal["disabled", "connecting", "connected", "reconnecting", "stopped"]


def _now() -> datetime:
    return datetime.now(UTC)


class AriEventStream:
    """The client WebSocket event source (an `EventSource`), reconnecting forever.

    Reads `GET /ari/events?app=…&subscribeAll=false` over WebSocket.

    Backoff between attempts is exponential from `min_backoff_s` to `max_backoff_s`,
    with full jitter. After each (re)connect `on_connected` runs in its own task
    (it finds channels parked in the application). Each frame is parsed and handed
    to `on_event`, which must not block: Asterisk drops a reader slower than its
    `websocket_write_timeout` (100 ms by default, ari.conf).
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        on_event: EventCallback,
        on_connected: Callable[[], Coroutine[Any, Any, Any]] | None = None,
        metrics: Metrics | None = None,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        open_timeout_s: float = 10.0,
        connected: asyncio.Event | None = None,
    ) -> None:
        """Configure the stream; nothing connects until `run()`."""
        self._url = url
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self.on_event = on_event
        self._on_connected = on_connected
        self._metrics = metrics
        self._min_backoff = min_backoff_s
        self._max_backoff = max_backoff_s
        self._open_timeout = open_timeout_s
        self._stopping = False
        self._ws: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.state: ConnectionState = "connecting"
        self.since = _now()
        self.last_event_at: datetime | None = None
        self.reconnects = 0
        self.connected = connected if connected is not None else asyncio.Event()

    def _set_state(self, state: ConnectionState, detail: str = "") -> None:
        if state != self.state:
            logger.info("ARI event stream %s -> %s %s", self.state, state, detail)
            self.state = state
            self.since = _now()
        if self._metrics is not None:
            self._metrics.ari_connected.set(1 if state == "connected" else 0)
        if state == "connected":
            self.connected.set()
        else:
            self.connected.clear()

    def status(self) -> dict[str, Any]:
        """Connection state for the status page: state, since, last_event_at, reconnects."""
        return {
            "state": self.state,
            "since": self.since.isoformat(),
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "reconnects": self.reconnects,
        }

    def _backoff(self, attempt: int) -> float:
        cap = min(self._max_backoff, self._min_backoff * (2 ** min(attempt, 16)))
        return random.uniform(self._min_backoff / 2, cap)

    async def run(self) -> None:
        """Connect, read events, and reconnect on any failure until `stop()` is called."""
        attempt = 0
        while not self._stopping:
            try:
                async with ws_connect(
                    self._url,
                    additional_headers=self._headers,
                    open_timeout=self._open_timeout,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                    max_size=2**22,
                ) as ws:
                    self._ws = ws
                    attempt = 0
                    self._set_state("connected")
                    if self._on_connected is not None:
                        task: asyncio.Task[Any] = asyncio.create_task(self._on_connected())
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    async for frame in ws:
                        self.last_event_at = _now()
                        try:
                            event = parse_event(frame)
                        except EventParseError as exc:
                            logger.warning("ignoring ARI frame: %s", exc)
                            continue
                        try:
                            self.on_event(event)
                        except Exception:
                            logger.exception("ARI event handler failed on %s", event.type)
                    detail = "closed by Asterisk"
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                code = exc.response.status_code
                detail = f"refused with HTTP {code}"
                if code in (401, 403):
                    logger.error("ARI rejected our credentials (HTTP %s); check ASTERISK_ARI_*", code)
            except (OSError, TimeoutError, WebSocketException) as exc:
                detail = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
            if self._stopping:
                break
            attempt += 1
            self.reconnects += 1
            if self._metrics is not None:
                self._metrics.ari_reconnects.inc()
            delay = self._backoff(attempt)
            self._set_state("reconnecting", f"({detail}; retry in {delay:.2f}s)")
            await asyncio.sleep(delay)
        self._set_state("stopped")

    def reader_crashed(self, exc: BaseException, delay_s: float) -> None:
        """Record that `run()` ended on an unexpected exception and will restart in `delay_s` s.

        Called by the supervisor (`app.services.telephony.supervisor.supervise`): the stream
        counts as down (state ``reconnecting``, `/readyz` not ready) until the restart connects.
        """
        self.reconnects += 1
        if self._metrics is not None:
            self._metrics.ari_reader_restarts.inc()
        self._set_state("reconnecting", f"(reader crashed: {type(exc).__name__}; restart in {delay_s:.2f}s)")

    async def stop(self) -> None:
        """Stop reconnecting and close the WebSocket (bounded by its close timeout)."""
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        for task in list(self._tasks):
            task.cancel()


if TYPE_CHECKING:  # mypy checks that the client WebSocket is an `EventSource`
    _client_websocket_is_a_source: type[EventSource] = AriEventStream
