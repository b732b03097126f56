"""Runs an HTTP tool call: validate arguments, render the request, call the API safely.

The model controls only argument *values*:

* Arguments are checked against the tool's JSON Schema (`jsonschema`); a failure
  goes back to the model as the tool's result, it never fails the turn.
* The scheme and host of the URL come from the admin's template and are never
  rendered from values. Path and query placeholders are percent-encoded with no
  safe characters (``/``, ``?``, ``#`` and ``.`` included, so ``..`` cannot climb).
* Call context (`{caller_id_number}`, `{uniqueid}`, ... see `CallContext`) beats
  a model argument of the same name.
* The destination host goes through `HostPolicy` (`host_policy`): as written before
  each request, and each resolved address inside the HTTP client's resolver, so the
  address checked is the one connected to. Link-local and cloud metadata addresses
  are always refused; loopback and private hosts are allowed; when
  `TOOL_ALLOWED_HOSTS` is set, only listed hosts pass. The model is told only
  "error: request refused"; the reason goes to the log and the call log (`detail`).
* Redirects are followed only to the same scheme and host, at most 3 hops.
* The body is read up to `TOOL_MAX_RESPONSE_BYTES` and cut there.
* Non-2xx answers, timeouts and connection errors become short error results.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from aiohttp.abc import AbstractResolver
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from app.core.http import create_http_client
from app.core.metrics import Metrics
from app.services.agent.host_policy import HostPolicy, ToolBlocked
from app.services.domain import CallContext, ToolResult, ToolSpec

logger = logging.getLogger(__name__)

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_REDIRECTS = 3
REFUSED = "error: request refused"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render_text(template: str, values: dict[str, Any], *, encode: bool = False) -> str:
    """Fill `{name}` placeholders in `template` from `values` (missing ones become "").

    Args:
        template: text with placeholders.
        values: placeholder name -> value (str()-ed; JSON for dicts and lists).
        encode: percent-encode each value with no safe characters, dots too.
    """

    def sub(match: re.Match[str]) -> str:
        text = _as_text(values.get(match.group(1)))
        if encode:
            return quote(text, safe="").replace(".", "%2E")
        return text.replace("\r", " ").replace("\n", " ")

    return PLACEHOLDER_RE.sub(sub, template)


def render_body(template: Any, values: dict[str, Any]) -> Any:
    """Render a JSON body template recursively.

    A string that is exactly ``"{name}"`` becomes the value itself (keeping its JSON
    type); other strings get text substitution. Keys are not rendered.
    """
    if isinstance(template, str):
        whole = PLACEHOLDER_RE.fullmatch(template)
        if whole:
            return values.get(whole.group(1))
        return render_text(template, values)
    if isinstance(template, list):
        return [render_body(item, values) for item in template]
    if isinstance(template, dict):
        return {key: render_body(item, values) for key, item in template.items()}
    return template


def render_url(template: str, values: dict[str, Any]) -> tuple[str, set[str]]:
    """Render a tool URL; scheme and host are never taken from values.

    Returns:
        The URL and the placeholder names it used.

    Raises:
        ToolBlocked: the template is not http(s) or has a placeholder in its host.
    """
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ToolBlocked("tool URL must be an absolute http(s) URL")
    if PLACEHOLDER_RE.search(parts.netloc):
        raise ToolBlocked("placeholders are not allowed in the tool URL's host")
    origin = f"{parts.scheme}://{parts.netloc}"
    rest = template[len(origin) :]
    used = set(PLACEHOLDER_RE.findall(rest))
    return origin + render_text(rest, values, encode=True), used


def validate_arguments(schema: dict[str, Any], args: dict[str, Any]) -> str | None:
    """Check `args` against the JSON Schema `schema`; the most relevant error, or None."""
    validator = Draft202012Validator(schema)
    error = best_match(validator.iter_errors(args))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"


def create_tool_http_client(
    policy: HostPolicy,
    *,
    timeout: httpx.Timeout,
    max_connections: int,
    resolver: Callable[[], AbstractResolver] | None = None,
    socket_factory: Callable[[Any], Any] | None = None,
) -> httpx.AsyncClient:
    """The HTTP tools' client: `create_http_client` whose DNS answers pass through `policy`.

    Every new connection resolves its host through `policy.resolver` (no DNS cache),
    so the address aiohttp dials is one the policy accepted.

    Args:
        policy: the host policy (the same one given to `ToolExecutor`).
        timeout: per-request timeouts, in seconds.
        max_connections: most TCP connections open at once.
        resolver: builds the resolver that does the lookups (aiohttp's default when
            None); tests pass a DNS stand-in.
        socket_factory: see `app.core.http.ExactUrlTransport`.
    """
    return create_http_client(
        timeout=timeout,
        max_connections=max_connections,
        resolver=lambda: policy.resolver(resolver() if resolver is not None else None),
        dns_cache=False,
        socket_factory=socket_factory,
    )


class ToolExecutor:
    """Executes HTTP tools with one shared `httpx.AsyncClient`.

    Args:
        http: the tools' client from `create_tool_http_client` (its resolver applies
            the policy to resolved addresses; this class checks the host as written).
        max_response_bytes: body cap, in bytes.
        allowed_hosts: `TOOL_ALLOWED_HOSTS`, when `policy` is not given.
        policy: the `HostPolicy` the client's resolver uses.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        max_response_bytes: int = 8192,
        allowed_hosts: list[str] | None = None,
        policy: HostPolicy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Keep the client and the limits."""
        self._http = http
        self._max_bytes = max_response_bytes
        self._policy = policy if policy is not None else HostPolicy(allowed_hosts or [])
        self._metrics = metrics

    def build_request(
        self, tool: ToolSpec, args: dict[str, Any], context: CallContext
    ) -> tuple[str, str, dict[str, str], dict[str, Any] | None, Any]:
        """Render method, URL, headers, query params and JSON body for one call.

        Raises:
            ToolBlocked: the URL template is not acceptable.
        """
        ctx = context.placeholders()
        values = {**args, **ctx}
        url, used = render_url(tool.url, values)
        headers = {name: render_text(value, ctx) for name, value in tool.headers.items()}
        method = tool.method.upper()
        remaining = {k: (ctx[k] if k in ctx else v) for k, v in args.items() if k not in used}
        params: dict[str, Any] | None = None
        body: Any = None
        if tool.body_template is not None:
            body = render_body(tool.body_template, values)
        elif remaining:
            to_query = tool.args_location == "query" or (
                tool.args_location == "auto" and method in ("GET", "DELETE", "HEAD")
            )
            if to_query:
                params = {k: _as_text(v) for k, v in remaining.items()}
            else:
                body = remaining
        return method, url, headers, params, body

    async def execute(
        self,
        tool: ToolSpec,
        args: dict[str, Any],
        context: CallContext,
        *,
        timeout_seconds: float | None = None,
    ) -> ToolResult:
        """Run one tool call. Never raises for tool-side failures.

        Args:
            tool: the tool to call.
            args: the model's arguments (a JSON object).
            context: call facts for placeholders (they beat same-named args).
            timeout_seconds: overall cap, in seconds; the smaller of this and the
                tool's own `timeout_seconds` applies.

        Returns:
            A `ToolResult` whose `content` is what the model sees.
        """
        start = time.perf_counter()
        if not isinstance(args, dict):
            return self._done(
                tool, start, ToolResult(False, "invalid arguments: expected a JSON object", "invalid_args")
            )
        problem = validate_arguments(tool.parameters or {"type": "object"}, args)
        if problem is not None:
            return self._done(
                tool,
                start,
                ToolResult(
                    False,
                    f"invalid arguments: {problem}. Fix the arguments and call the tool again.",
                    "invalid_args",
                ),
            )
        timeout = tool.timeout_seconds
        if timeout_seconds is not None:
            timeout = max(0.05, min(timeout, timeout_seconds))
        try:
            method, url, headers, params, body = self.build_request(tool, args, context)
            async with asyncio.timeout(timeout):
                status, text, truncated = await self._send(
                    method, url, headers, params, body, request_timeout=timeout
                )
        except (ToolBlocked, TimeoutError, httpx.HTTPError) as exc:
            return self._done(tool, start, _failure(exc, timeout, tool, context))
        if 200 <= status < 300:
            content = text + (" …[truncated]" if truncated else "")
            return self._done(tool, start, ToolResult(True, content, "ok", status, truncated=truncated))
        snippet = text[:300]
        return self._done(
            tool, start, ToolResult(False, f"error: HTTP {status} {snippet}".strip(), "http_error", status)
        )

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: dict[str, Any] | None,
        body: Any,
        *,
        request_timeout: float,
    ) -> tuple[int, str, bool]:
        origin = urlsplit(url)
        for _hop in range(MAX_REDIRECTS + 1):
            self._policy.check_host(urlsplit(url).hostname or "")
            target_url = httpx.URL(url)
            if params:
                target_url = target_url.copy_merge_params(params)
            request = self._http.build_request(
                method, target_url, headers=headers, json=body, timeout=request_timeout
            )
            response = await self._http.send(request, stream=True, follow_redirects=False)
            try:
                if response.is_redirect and "location" in response.headers:
                    nxt = urljoin(url, response.headers["location"])
                    nparts = urlsplit(nxt)
                    if (nparts.scheme, nparts.netloc) != (origin.scheme, origin.netloc):
                        raise ToolBlocked(f"redirect to another host ({nparts.netloc}) not followed")
                    url, params = nxt, None
                    if response.status_code in (301, 302, 303):
                        method, body = "GET", None
                    continue
                data = bytearray()
                truncated = False
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) >= self._max_bytes:
                        truncated = len(data) > self._max_bytes
                        break
                encoding = response.encoding or "utf-8"
                text = bytes(data[: self._max_bytes]).decode(encoding, errors="replace")
                return response.status_code, text, truncated
            finally:
                await response.aclose()
        raise ToolBlocked("too many redirects")

    def _done(self, tool: ToolSpec, start: float, result: ToolResult) -> ToolResult:
        latency_ms = (time.perf_counter() - start) * 1000.0
        if self._metrics is not None:
            self._metrics.tool_latency.labels(tool.name, result.outcome).observe(latency_ms / 1000.0)
        logger.info(
            "tool=%s outcome=%s status=%s latency_ms=%.1f",
            tool.name,
            result.outcome,
            result.status_code,
            latency_ms,
        )
        return ToolResult(
            ok=result.ok,
            content=result.content,
            outcome=result.outcome,
            status_code=result.status_code,
            latency_ms=round(latency_ms, 1),
            truncated=result.truncated,
            detail=result.detail,
        )


def _refusal(exc: BaseException) -> ToolBlocked | None:
    """The `ToolBlocked` behind `exc` (the resolver's refusal arrives wrapped by aiohttp)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ToolBlocked):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _failure(exc: Exception, timeout: float, tool: ToolSpec, context: CallContext) -> ToolResult:
    """The result the model sees for a failed request; admin detail kept apart."""
    refused = _refusal(exc)
    if refused is not None:
        logger.warning("channel=%s tool=%s request refused: %s", context.channel_id, tool.name, refused)
        return ToolResult(False, REFUSED, "blocked", detail=str(refused))
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return ToolResult(False, f"error: the tool did not answer within {timeout:g} s", "timeout")
    return ToolResult(
        False,
        f"error: could not reach the tool API ({type(exc).__name__})",
        "connection_error",
        detail=str(exc) or type(exc).__name__,
    )
