"""Async Asterisk REST Interface (ARI) client: REST over httpx.

Events arrive through an event source (`app.services.telephony.event_source`).

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
import logging
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from app.core.http import create_http_client

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

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        """`POST /channels/{channelId}/continue` (`continueInDialplan`): leave Stasis.

        With no target the channel goes on at the next priority after `Stasis()`;
        with `context`/`extension`/`priority` it goes there (a blind transfer).

        Raises:
            AriNotFound: the channel is gone. AriConflict: already out of Stasis.
            AriUnavailable: ARI did not answer.
        """
        params: dict[str, Any] = {}
        if context:
            params["context"] = context
        if extension:
            params["extension"] = extension
        if priority is not None:
            params["priority"] = priority
        await self._request("POST", f"/channels/{channel_id}/continue", params=params or None)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        """`DELETE /channels/{channelId}` (`hangup`) with a `reason`.

        Raises:
            AriNotFound: the channel is gone. AriUnavailable: ARI did not answer.
        """
        await self._request("DELETE", f"/channels/{channel_id}", params={"reason": reason})

    # --- voice calls: answer, bridges, externalMedia, playback --------------------------------
    async def answer(self, channel_id: str) -> None:
        """`POST /channels/{channelId}/answer` (`answer`).

        Raises:
            AriNotFound: the channel is gone. AriConflict: not in Stasis.
        """
        await self._request("POST", f"/channels/{channel_id}/answer")

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing") -> str:
        """`POST /bridges?type=mixing&bridgeId=…` (`create`, bridges.json); returns the bridge id.

        Raises:
            AriUnavailable: ARI did not answer.
        """
        params = {"type": bridge_type, "bridgeId": bridge_id, "name": bridge_id}
        body: dict[str, Any] = (await self._request("POST", "/bridges", params=params)).json()
        return str(body.get("id", bridge_id))

    async def add_channels_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        """`POST /bridges/{bridgeId}/addChannel?channel=a,b` (`addChannel`).

        Raises:
            AriNotFound: the bridge or a channel is gone. AriError: 422 when a channel is not
                in Stasis yet (add it only after its own `StasisStart`).
        """
        await self._request(
            "POST", f"/bridges/{bridge_id}/addChannel", params={"channel": ",".join(channel_ids)}
        )

    async def destroy_bridge(self, bridge_id: str) -> None:
        """`DELETE /bridges/{bridgeId}` (`destroy`).

        Raises:
            AriNotFound: already gone.
        """
        await self._request("DELETE", f"/bridges/{bridge_id}")

    async def external_media(
        self,
        app: str,
        channel_id: str,
        *,
        codec: str,
        connection_type: str,
        external_host: str | None = None,
        transport_data: str | None = None,
    ) -> dict[str, Any]:
        """`POST /channels/externalMedia` with ``transport=websocket`` (chan_websocket).

        Args:
            app: our Stasis application (the external channel enters it).
            channel_id: the id the external channel gets (``channelId``), chosen by us so its
                media connection and events can be matched before the response arrives.
            codec: ``ulaw`` or ``slin16`` (``format``).
            connection_type: ``client`` (Asterisk connects out, via the
                ``websocket_client.conf`` entry `external_host`) or ``server``.
            external_host: the ``websocket_client.conf`` id (client mode only).
            transport_data: e.g. ``v(call_id=…)`` for URI parameters.

        Returns:
            The external Channel (``channelvars`` carry ``MEDIA_WEBSOCKET_CONNECTION_ID``).

        Raises:
            AriError: 400 for a bad combination; AriUnavailable: ARI did not answer.
        """
        params: dict[str, Any] = {
            "app": app,
            "channelId": channel_id,
            "format": codec,
            "transport": "websocket",
            "encapsulation": "none",
            "connection_type": connection_type,
        }
        if external_host:
            params["external_host"] = external_host
        if transport_data:
            params["transport_data"] = transport_data
        body: dict[str, Any] = (await self._request("POST", "/channels/externalMedia", params=params)).json()
        return body

    async def play(self, channel_id: str, media: str, playback_id: str | None = None) -> str:
        """`POST /channels/{channelId}/play?media=sound:…` (`play`); returns the playback id.

        Raises:
            AriNotFound: the channel is gone.
        """
        params = {"media": media}
        if playback_id:
            params["playbackId"] = playback_id
        body: dict[str, Any] = (
            await self._request("POST", f"/channels/{channel_id}/play", params=params)
        ).json()
        return str(body.get("id", playback_id or ""))

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
