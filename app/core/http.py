"""The process's outgoing HTTP clients: httpx's API over aiohttp's connection pool.

Every long-lived client the gateway builds in its lifespan (ARI REST, HTTP tools, the
OpenAI SDK) comes from here. They keep httpx's interface (requests, responses, errors,
timeouts, streaming), but send through aiohttp's transport (`httpx-aiohttp`, the same
transport the OpenAI SDK ships as `DefaultAioHttpClient`). Why: httpx's own transport
(httpcore) scans its whole pool on every request; measured on this project's 2-core VM
with 50 requests in flight, it costs ~2.3 ms of CPU per small request, against ~0.45 ms
through this transport (`python -m benchmarks.http_transport`). A phone turn makes 3-5
such requests.

The library's transport hands aiohttp the URL as text, and aiohttp re-quotes it: it
decodes ``%2E`` and resolves dot segments, so ``/orders/%2E%2E`` would reach the server
as ``/``. `ExactUrlTransport` passes the URL already encoded, exactly as httpx built it
(a tool argument rendered into a path must stay inside that path segment).

Differences from httpx's default transport that callers must know:

* requests through a proxy from the environment (``HTTP_PROXY`` …) use httpx's own
  transport;
* errors are mapped to httpx's as its own transport raises them (`_as_httpx_error`):
  refused → `httpx.ConnectError`, closed without an answer → `httpx.RemoteProtocolError`,
  timeouts → `httpx.ConnectTimeout` / `httpx.ReadTimeout`;
* the ``pool`` timeout bounds aiohttp's whole connect step, ``connect`` its socket connect,
  ``read`` each socket read; ``write`` is not applied;
* a client may bring its own DNS resolver (`create_http_client(resolver=...)`): the HTTP
  tools' client uses one that checks every resolved address, so it connects only to
  addresses that were checked (`app.services.agent.host_policy`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
from aiohttp import ClientTimeout
from aiohttp.abc import AbstractResolver
from httpx_aiohttp.transport import AiohttpResponseStream, AiohttpTransport
from yarl import URL


def _as_httpx_error(exc: Exception, request: httpx.Request) -> Exception:
    """The httpx error httpx's own transport would raise for aiohttp's `exc`.

    (The library's table maps every `ClientConnectionError`, a refused connection
    included, to `httpx.ConnectTimeout`.) Anything unknown is returned unchanged.
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, (aiohttp.ServerTimeoutError, TimeoutError)):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return httpx.ProxyError(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return httpx.ReadError(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.ClientError):
        return httpx.NetworkError(message, request=request)
    return exc


class ExactUrlTransport(AiohttpTransport):
    """`httpx_aiohttp.AiohttpTransport` that sends the request URL byte for byte.

    Same behaviour as the library's transport (timeouts, error mapping, streaming), but
    the URL is given to aiohttp as ``yarl.URL(..., encoded=True)``, so it is not
    re-quoted (see the module notes). No proxy support: httpx routes proxied requests
    to its own transport.

    Args:
        limits: connection pool limits.
        resolver: builds the DNS resolver for the connector, called once inside the
            running event loop; None for aiohttp's default resolver.
        dns_cache: keep resolved addresses for 10 s (aiohttp's default); off, each
            new connection resolves again through `resolver`.
        socket_factory: aiohttp's hook that creates the socket for each address it
            dials (``(family, type, proto, canonname, sockaddr)`` -> socket).
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        resolver: Callable[[], AbstractResolver] | None = None,
        dns_cache: bool = True,
        socket_factory: Callable[[Any], Any] | None = None,
    ) -> None:
        """Keep the connector options; the session is built on first use."""
        super().__init__(limits=limits)
        self._resolver_factory = resolver
        self._dns_cache = dns_cache
        self._socket_factory = socket_factory
        self._resolver: AbstractResolver | None = None

    def get_client(self) -> aiohttp.ClientSession:
        """A new session whose connector has this transport's resolver and limits."""
        if self._resolver_factory is None and self._dns_cache and self._socket_factory is None:
            return super().get_client()
        limit = self.limits.max_connections
        if self._resolver_factory is not None:
            self._resolver = self._resolver_factory()
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=limit if limit is not None else 100,
            resolver=self._resolver,
            use_dns_cache=self._dns_cache,
            socket_factory=self._socket_factory,
        )
        return aiohttp.ClientSession(connector=connector)

    async def aclose(self) -> None:
        """Close the session, then the resolver (aiohttp leaves a given resolver open)."""
        await super().aclose()
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on the aiohttp session (created on first use).

        Raises:
            httpx.TransportError: mapped from aiohttp's errors (`_as_httpx_error`).
        """
        session = self.get_client() if self.client is None or callable(self.client) else self.client
        self.client = session
        timeout = request.extensions.get("timeout", {})
        data: bytes | httpx.AsyncByteStream | None
        try:
            data = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # type: ignore[assignment]
            request.headers.pop("transfer-encoding", None)  # aiohttp frames the body itself
        try:
            response = await session.request(
                method=request.method,
                url=URL(str(request.url), encoded=True),
                headers=request.headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            ).__aenter__()
        except Exception as exc:
            mapped = _as_httpx_error(exc, request)
            if mapped is exc:
                raise
            raise mapped from exc
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions=extensions,
        )


def create_http_client(
    *,
    timeout: httpx.Timeout,
    max_connections: int,
    base_url: str = "",
    auth: httpx.Auth | None = None,
    resolver: Callable[[], AbstractResolver] | None = None,
    dns_cache: bool = True,
    socket_factory: Callable[[Any], Any] | None = None,
) -> httpx.AsyncClient:
    """One shared `httpx.AsyncClient` on aiohttp's transport, redirects off.

    Args:
        timeout: per-request timeouts, in seconds (see the module notes).
        max_connections: most TCP connections open at once; further requests wait
            for a free one (bounded by ``timeout.pool``; None waits for ever).
        base_url: prefix for relative request URLs ('' for none).
        auth: credentials sent with every request, e.g. `httpx.BasicAuth`.
        resolver: builds the connector's DNS resolver (see `ExactUrlTransport`).
        dns_cache: keep resolved addresses for 10 s (see `ExactUrlTransport`).
        socket_factory: aiohttp's socket hook (see `ExactUrlTransport`).

    The aiohttp session is created on first use, inside the running event loop;
    close the client with ``await client.aclose()``.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        timeout=timeout,
        follow_redirects=False,
        limits=limits,
        transport=ExactUrlTransport(
            limits=limits, resolver=resolver, dns_cache=dns_cache, socket_factory=socket_factory
        ),
    )
