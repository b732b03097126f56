"""Async Asterisk REST Interface (ARI) client: REST over httpx, events over websockets.

Every request here is one operation of Asterisk's ARI Swagger specs
(`channels.json`, `applications.json`, `asterisk.json`, `events.json`); the test
suite checks each request the gateway sends against a table derived from them
(`app/vendor/ari/operations.json`).

Errors (one tree, translated once from httpx):

* `AriError` - base.
* `AriNotFound` - 404: the channel (or application) is gone, e.g. the caller hung up.
* `AriConflict` - 409: the channel is not in a Stasis application.
* `AriUnavailable` - no answer: connection refused or closed, or a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
)
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, WebSocketException

from app.core.http import create_http_client
from app.core.metrics import Metrics
from app.services.telephony.events import AriEvent, EventParseError, parse_event

logger = logging.getLogger(__name__)


class AriError(Exception):
    """An ARI request failed.

    Attributes:
        status_code: HTTP status, None when no response arrived.
        detail: Asterisk's own ``message`` from the error body ("" if none).
    """

    def __init__(self, message: str, status_code: int | None = None, detail: str = "") -> None:
        """Keep the HTTP status and Asterisk's message next to the text."""
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class AriNotFound(AriError):
    """404 from ARI: the channel, variable or application does not exist (any more)."""


class AriConflict(AriError):
    """409 from ARI: the channel is not in a Stasis application."""


class AriUnavailable(AriError):
    """ARI did not answer: connection refused or dropped, or a timeout."""


# Failures where the request never reached Asterisk's handler, or its answer was lost on
# a connection Asterisk closed (http.conf sessionlimit): safe to send again.
_RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def create_ari_http_client(
    base_url: str, username: str, password: str, *, max_connections: int, timeout_seconds: float
) -> httpx.AsyncClient:
    """The one shared `httpx.AsyncClient` for ARI REST (aiohttp transport, see `http_clients`).

    Args:
        base_url: ARI root, e.g. ``http://pbx:8088/ari``.
        username: ARI user (ari.conf).
        password: ARI password (ari.conf).
        max_connections: pool size; keep well below Asterisk's http.conf
            `sessionlimit` (100 by default), past which Asterisk closes new
            connections without replying.
        timeout_seconds: per-request timeout, in seconds.
    """
    return create_http_client(
        base_url=base_url.rstrip("/"),
        auth=httpx.BasicAuth(username, password),
        # No pool timeout: `AriClient` bounds the requests in flight itself, so waiting
        # for a connection is never mistaken for an unreachable Asterisk.
        timeout=httpx.Timeout(timeout_seconds, pool=None),
        max_connections=max_connections,
    )


class AriClient:
    """Typed ARI REST operations over an injected `httpx.AsyncClient`.

    The client's ``base_url`` must be the ARI root (``…/ari``) and carry the auth.
    Requests that fail on a dropped connection are retried up to `attempts` times.
    """

    def __init__(self, http: httpx.AsyncClient, *, attempts: int = 3, max_in_flight: int = 20) -> None:
        """Wrap `http`.

        Args:
            http: the shared client (base URL and auth set).
            attempts: total tries for a request on a closed connection.
            max_in_flight: requests sent at once; the rest wait here, in order, so
                httpx's own pool queue (costly to scan when long) stays empty. Match
                the client's connection limit.
        """
        self._http = http
        self._attempts = attempts
        self._slots = asyncio.Semaphore(max_in_flight)
        self._bulk_vars_supported: bool | None = None

    async def _send(self, method: str, path: str, params: dict[str, Any] | None, json: Any) -> httpx.Response:
        async with self._slots:
            return await self._http.request(method, path, params=params, json=json)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        try:
            try:  # first try without the retry machinery (it costs ~0.17 ms of CPU a request)
                response = await self._send(method, path, params, json)
            except _RETRYABLE:
                if self._attempts <= 1:
                    raise
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(_RETRYABLE),
                    stop=stop_after_attempt(self._attempts - 1),
                    reraise=True,
                ):
                    with attempt:
                        # Backoff before each retry: 50 ms, 100 ms, … up to 500 ms.
                        await asyncio.sleep(min(0.05 * 2 ** (attempt.retry_state.attempt_number - 1), 0.5))
                        response = await self._send(method, path, params, json)
        except httpx.TimeoutException as exc:
            raise AriUnavailable(f"ARI {method} {path}: timeout") from exc
        except httpx.TransportError as exc:
            raise AriUnavailable(f"ARI {method} {path}: {type(exc).__name__}") from exc
        if response.status_code < 400:
            return response
        try:
            message = str(response.json().get("message", response.text))
        except ValueError:
            message = response.text
        text = f"ARI {method} {path}: {response.status_code} {message}"
        if response.status_code == 404:
            raise AriNotFound(text, 404, message)
        if response.status_code == 409:
            raise AriConflict(text, 409, message)
        raise AriError(text, response.status_code, message)

    async def get_channel(self, channel_id: str) -> dict[str, Any]:
        """`GET /channels/{channelId}` (channels.json `get`): the ARI `Channel` object.

        Raises:
            AriNotFound: no such channel.
            AriUnavailable: ARI did not answer.
        """
        result: dict[str, Any] = (await self._request("GET", f"/channels/{channel_id}")).json()
        return result

    async def get_channel_var(self, channel_id: str, variable: str) -> str | None:
        """`GET /channels/{channelId}/variable` (`getChannelVar`): the value, or None if unset.

        Raises:
            AriNotFound: the channel is gone (an unset variable returns None instead).
            AriUnavailable: ARI did not answer.
        """
        try:
            response = await self._request(
                "GET", f"/channels/{channel_id}/variable", params={"variable": variable}
            )
        except AriNotFound as exc:
            # Asterisk: "Provided variable was not found" vs "Provided channel was not found".
            if "variable" not in exc.detail.lower():
                raise
            return None
        value = response.json().get("value")
        return None if value is None else str(value)

    async def set_channel_var(self, channel_id: str, variable: str, value: str) -> None:
        """`POST /channels/{channelId}/variable` (`setChannelVar`).

        Raises:
            AriNotFound: the channel is gone. AriConflict: not in Stasis.
            AriUnavailable: ARI did not answer.
        """
        await self._request(
            "POST",
            f"/channels/{channel_id}/variable",
            params={"variable": variable, "value": value},
        )

    async def set_channel_vars(self, channel_id: str, variables: dict[str, str]) -> None:
        """Set several variables at once.

        Uses `POST /channels/{channelId}/variables` (`setChannelVars`, since Asterisk
        20.20/22.10/23.4), about 2 ms on the PBX instead of 2 ms per variable. On an
        older Asterisk (404 "Resource not found", 405, 501) it remembers that and sets
        each variable with concurrent `setChannelVar` calls.

        Raises:
            AriNotFound: the channel is gone. AriConflict: not in Stasis.
            AriUnavailable: ARI did not answer.
        """
        if self._bulk_vars_supported is not False:
            try:
                await self._request(
                    "POST", f"/channels/{channel_id}/variables", json={"variables": variables}
                )
                self._bulk_vars_supported = True
                return
            except AriNotFound as exc:
                # An Asterisk without the operation answers 404 "Resource not found".
                if "resource not found" not in exc.detail.lower():
                    raise
                self._bulk_vars_supported = False
            except AriError as exc:
                if exc.status_code not in (405, 501):
                    raise
                self._bulk_vars_supported = False
            logger.info("ARI has no setChannelVars; setting variables one by one")
        await asyncio.gather(*(self.set_channel_var(channel_id, k, v) for k, v in variables.items()))

    async def continue_in_dialplan(self, channel_id: str) -> None:
        """`POST /channels/{channelId}/continue` (`continueInDialplan`): leave Stasis.

        The channel goes on at the next priority after `Stasis()`.

        Raises:
            AriNotFound: the channel is gone. AriConflict: already out of Stasis.
            AriUnavailable: ARI did not answer.
        """
        await self._request("POST", f"/channels/{channel_id}/continue")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        """`DELETE /channels/{channelId}` (`hangup`) with a `reason`.

        Raises:
            AriNotFound: the channel is gone. AriUnavailable: ARI did not answer.
        """
        await self._request("DELETE", f"/channels/{channel_id}", params={"reason": reason})

    async def get_application(self, name: str) -> dict[str, Any]:
        """`GET /applications/{applicationName}` (`get`): includes `channel_ids`.

        Raises:
            AriNotFound: the application is not registered. AriUnavailable: no answer.
        """
        result: dict[str, Any] = (await self._request("GET", f"/applications/{name}")).json()
        return result

    async def user_event(self, event_name: str, application: str) -> None:
        """`POST /events/user/{eventName}?application=…` (`userEvent`, events.json).

        With no `source`, Asterisk sends a `ChannelUserevent` (no channel) to the
        application's event WebSocket, after every event it queued there before.

        Raises:
            AriNotFound: the application is not registered. AriUnavailable: no answer.
        """
        await self._request("POST", f"/events/user/{event_name}", params={"application": application})

    async def get_asterisk_info(self) -> dict[str, Any]:
        """`GET /asterisk/info` (`getInfo`): build, system, config and status.

        Raises:
            AriUnavailable: ARI did not answer.
        """
        result: dict[str, Any] = (await self._request("GET", "/asterisk/info")).json()
        return result


ConnectionState = Literal["disabled", "connecting", "connected", "reconnecting", "stopped"]


def _now() -> datetime:
    return datetime.now(UTC)


class AriEventStream:
    """Reads `GET /ari/events?app=…&subscribeAll=false` over WebSocket, reconnecting forever.

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
        on_event: Callable[[AriEvent], None],
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
        self._on_event = on_event
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
                            self._on_event(event)
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
