"""Wire-level stand-ins for the LLM vendors used by the gateway.

:class:`FakeLLMServer` is a single local HTTP server that speaks three real vendor
wire protocols, so the unmodified vendor SDKs (``openai`` behind
``langchain_openai.ChatOpenAI``, ``google-genai`` behind
``langchain_google_genai.ChatGoogleGenerativeAI`` and ``anthropic`` behind
``langchain_anthropic.ChatAnthropic``) can be pointed at it:

* the **OpenAI Chat Completions API** (``POST /v1/chat/completions``, plain JSON
  and ``stream: true`` server-sent events, plus ``GET /v1/models``);
* the **Anthropic Messages API** (``POST /v1/messages``, JSON and streamed
  server-sent events; see :mod:`app.testing.fake_anthropic`);
* the **Gemini API generateContent** (``POST /v1beta/models/{model}:generateContent``
  and ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``).

Both protocols are normalised into one vendor-neutral :class:`LLMRequest`, and
the answer is chosen by scripts (:meth:`FakeLLMServer.script`), a custom
responder (:meth:`FakeLLMServer.set_responder`) or the built-in, clearly
labelled *offline model* (:func:`offline_reply`).

Run standalone (offline model only)::

    python -m app.testing.fake_llm --host 127.0.0.1 --port 8099 --latency-ms 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self, TypeAlias

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "ErrorReply",
    "FakeLLMServer",
    "HangReply",
    "LLMRequest",
    "NeutralMessage",
    "Reply",
    "Responder",
    "TextReply",
    "ToolCallReply",
    "chunk_text",
    "count_tokens",
    "offline_reply",
    "prompt_text",
    "reply_text",
]

OFFLINE_PREFIX = "[offline model]"
"""Label that starts every answer produced by the built-in offline model."""


# --------------------------------------------------------------------------- #
# Neutral request view
# --------------------------------------------------------------------------- #


@dataclass
class NeutralMessage:
    """One conversation turn, independent of the vendor wire format.

    Attributes:
        role: ``"user"``, ``"assistant"`` or ``"tool"`` (a tool result).
        content: Plain text of the turn (text parts joined with newlines; for a
            tool result, the result rendered as text).
        tool_calls: Tool calls requested by an assistant turn, each
            ``{"name": str, "args": dict, "id": str | None}``.
        tool_name: Name of the tool whose result this is (``role == "tool"``).
            OpenAI does not send it on the wire; it is resolved from the
            matching earlier ``tool_calls`` entry when possible.
        tool_call_id: ID of the tool call this result answers (``role == "tool"``),
            when the vendor sends one.
    """

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_name: str | None = None
    tool_call_id: str | None = None


@dataclass
class LLMRequest:
    """A chat request received by the stand-in, normalised across vendors.

    Attributes:
        vendor: ``"openai"`` (Chat Completions API), ``"gemini"``
            (Gemini API generateContent) or ``"anthropic"`` (Messages API).
        model: Model name from the request body (OpenAI) or URL path (Gemini).
        system: System instruction text, or ``None`` when absent.
        messages: Conversation turns in order, system prompt excluded.
        tools: Offered tools, each ``{"name", "description", "parameters"}``
            where ``parameters`` is a JSON-schema dict.
        raw: The untouched JSON request body.
        stream: Whether the client asked for a streamed (SSE) answer.
    """

    vendor: Literal["openai", "gemini", "anthropic"]
    model: str
    system: str | None
    messages: list[NeutralMessage]
    tools: list[dict[str, Any]]
    raw: dict[str, Any]
    stream: bool = False

    @property
    def user_texts(self) -> list[str]:
        """Texts of every user message, in order."""
        return [m.content for m in self.messages if m.role == "user"]

    @property
    def last_user_text(self) -> str:
        """Text of the most recent user message (empty string if none)."""
        texts = self.user_texts
        return texts[-1] if texts else ""

    @property
    def tool_names(self) -> list[str]:
        """Names of the offered tools."""
        return [str(t["name"]) for t in self.tools]


# --------------------------------------------------------------------------- #
# Replies
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class TextReply:
    """Answer with assistant text (``finish_reason`` ``stop`` / ``STOP``).

    Attributes:
        text: The assistant message content.
    """

    text: str


@dataclass(frozen=True)
class ToolCallReply:
    """Answer with one or more tool (function) calls.

    Attributes:
        calls: ``(tool_name, args)`` pairs; ``args`` must be JSON-serialisable.
    """

    calls: list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class ErrorReply:
    """Answer with a vendor-shaped HTTP error.

    Attributes:
        status: HTTP status code, e.g. 429 (rate limited), 500, 503, 401.
        message: Human-readable error message put in the error body.
    """

    status: int
    message: str = "simulated vendor error"


@dataclass(frozen=True)
class HangReply:
    """Simulate a hung vendor: sleep, then answer with text.

    Attributes:
        seconds: How long to sleep before answering, in seconds.
        text: Text to answer with after the sleep; ``None`` means the offline
            model's answer for the request.
    """

    seconds: float
    text: str | None = None


Reply: TypeAlias = TextReply | ToolCallReply | ErrorReply | HangReply
"""Any reply the stand-in can give."""

Responder: TypeAlias = Callable[[LLMRequest], "Reply | Awaitable[Reply]"]
"""Custom answer logic: sync or async callable from request to reply."""


def count_tokens(text: str) -> int:
    """Roughly count tokens the way the stand-in reports usage.

    Args:
        text: Any text.

    Returns:
        ``len(text) // 4``, at least 1.
    """
    return max(1, len(text) // 4)


# --------------------------------------------------------------------------- #
# Offline model
# --------------------------------------------------------------------------- #

_WORD_RE = re.compile(r"[a-z0-9]+")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_NAME_SPLIT_RE = re.compile(r"[_\-\s.]+|(?<=[a-z0-9])(?=[A-Z])")


def _name_tokens(name: str) -> list[str]:
    return [t.lower() for t in _NAME_SPLIT_RE.split(name) if t]


def _args_from_schema(schema: dict[str, Any], text: str) -> dict[str, Any]:
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    match = _NUMBER_RE.search(text)
    number = match.group(0) if match else None
    args: dict[str, Any] = {}
    for name in required:
        prop = props.get(name) or {}
        kind = str(prop.get("type", "string")).lower()
        if kind == "integer":
            args[name] = int(float(number)) if number is not None else 0
        elif kind == "number":
            args[name] = float(number) if number is not None else 0.0
        elif kind == "boolean":
            args[name] = False
        else:
            args[name] = number if number is not None else "unknown"
    return args


def offline_reply(request: LLMRequest) -> Reply:
    """Answer like the clearly labelled offline model (used when no key is set).

    Rules, deterministic and small:

    * last message is a tool result -> ``"[offline model] The tool <name>
      returned: <first 200 chars>"``;
    * the last user text names an offered tool (its full name, or every token
      of it, e.g. ``check order 42`` for ``check_order``) -> call that tool with
      the schema's required properties filled from the first number in the
      text (strings: that number or ``"unknown"``; integers/numbers: that
      number or 0; booleans: ``False``);
    * otherwise -> ``"[offline model] You said: <last user text>"``.

    Args:
        request: The normalised request.

    Returns:
        A :class:`TextReply` or :class:`ToolCallReply`.
    """
    last = request.messages[-1] if request.messages else None
    if last is not None and last.role == "tool":
        name = last.tool_name or "unknown"
        return TextReply(f"{OFFLINE_PREFIX} The tool {name} returned: {last.content[:200]}")
    text = request.last_user_text
    lowered = text.lower()
    words = set(_WORD_RE.findall(lowered))
    for tool in request.tools:
        name = str(tool["name"])
        tokens = _name_tokens(name)
        if name.lower() in lowered or (tokens and all(t in words for t in tokens)):
            params = tool.get("parameters") or {}
            return ToolCallReply([(name, _args_from_schema(params, text))])
    return TextReply(f"{OFFLINE_PREFIX} You said: {text}")


# --------------------------------------------------------------------------- #
# Parsing: OpenAI Chat Completions API
# --------------------------------------------------------------------------- #


def _openai_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                out.append(str(part.get("text", "")))
            elif isinstance(part, str):
                out.append(part)
        return "\n".join(out)
    return str(content)


def _loads_args(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return parsed if isinstance(parsed, dict) else {"_value": parsed}


def parse_openai(body: dict[str, Any]) -> LLMRequest:
    """Normalise an OpenAI Chat Completions API request body.

    Args:
        body: JSON body of ``POST /v1/chat/completions``.

    Returns:
        The neutral view (``vendor="openai"``).
    """
    system_parts: list[str] = []
    messages: list[NeutralMessage] = []
    call_names: dict[str, str] = {}
    for msg in body.get("messages") or []:
        role = msg.get("role")
        text = _openai_text(msg.get("content"))
        if role in ("system", "developer"):
            system_parts.append(text)
        elif role == "user":
            messages.append(NeutralMessage(role="user", content=text))
        elif role == "assistant":
            calls = []
            for tc in msg.get("tool_calls") or []:
                fn = tc.get("function") or {}
                name = str(fn.get("name", ""))
                call_id = tc.get("id")
                if call_id:
                    call_names[call_id] = name
                calls.append(
                    {
                        "name": name,
                        "args": _loads_args(fn.get("arguments")),
                        "id": call_id,
                    }
                )
            messages.append(NeutralMessage(role="assistant", content=text, tool_calls=calls))
        elif role in ("tool", "function"):
            call_id = msg.get("tool_call_id")
            tool_name: str | None = msg.get("name") or (call_names.get(call_id) if call_id else None)
            messages.append(
                NeutralMessage(role="tool", content=text, tool_name=tool_name, tool_call_id=call_id)
            )
    tools = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        tools.append(
            {
                "name": fn.get("name", ""),
                "description": fn.get("description", ""),
                "parameters": fn.get("parameters") or {},
            }
        )
    return LLMRequest(
        vendor="openai",
        model=str(body.get("model", "")),
        system="\n".join(system_parts) if system_parts else None,
        messages=messages,
        tools=tools,
        raw=body,
        stream=bool(body.get("stream")),
    )


# --------------------------------------------------------------------------- #
# Parsing: Gemini API generateContent
# --------------------------------------------------------------------------- #


def _gemini_response_text(response: Any) -> str:
    if isinstance(response, dict):
        if len(response) == 1:
            (value,) = response.values()
            if isinstance(value, str):
                return value
        return orjson.dumps(response).decode()
    if isinstance(response, str):
        return response
    return orjson.dumps(response).decode()


def _gemini_schema(decl: dict[str, Any]) -> dict[str, Any]:
    schema = decl.get("parametersJsonSchema") or decl.get("parameters") or {}
    return _lower_types(schema) if isinstance(schema, dict) else {}


def _lower_types(node: Any) -> Any:
    """Gemini ``Schema`` uses upper-case ``type`` enums; make it JSON-schema-like."""
    if isinstance(node, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_lower_types(v) for v in node]
    return node


def parse_gemini(model: str, body: dict[str, Any], *, stream: bool) -> LLMRequest:
    """Normalise a Gemini API generateContent request body.

    Args:
        model: Model name from the URL path (``models/{model}:generateContent``).
        body: JSON request body (``contents``, ``systemInstruction``, ``tools``).
        stream: Whether it came in via ``streamGenerateContent``.

    Returns:
        The neutral view (``vendor="gemini"``).
    """
    messages: list[NeutralMessage] = []
    for content in body.get("contents") or []:
        role = content.get("role", "user")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[NeutralMessage] = []
        for part in content.get("parts") or []:
            if part.get("thought"):
                continue
            if "text" in part:
                texts.append(str(part["text"]))
            if "functionCall" in part:
                fc = part["functionCall"] or {}
                calls.append(
                    {
                        "name": fc.get("name", ""),
                        "args": fc.get("args") or {},
                        "id": fc.get("id"),
                    }
                )
            if "functionResponse" in part:
                fr = part["functionResponse"] or {}
                results.append(
                    NeutralMessage(
                        role="tool",
                        content=_gemini_response_text(fr.get("response")),
                        tool_name=fr.get("name"),
                        tool_call_id=fr.get("id"),
                    )
                )
        if role == "model":
            messages.append(NeutralMessage(role="assistant", content="\n".join(texts), tool_calls=calls))
        else:
            messages.extend(results)
            if texts or not results:
                messages.append(NeutralMessage(role="user", content="\n".join(texts)))
    system = None
    instruction = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(instruction, dict):
        system = "\n".join(str(p.get("text", "")) for p in instruction.get("parts") or [])
    tools = []
    for tool in body.get("tools") or []:
        for decl in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
            tools.append(
                {
                    "name": decl.get("name", ""),
                    "description": decl.get("description", ""),
                    "parameters": _gemini_schema(decl),
                }
            )
    return LLMRequest(
        vendor="gemini",
        model=model,
        system=system,
        messages=messages,
        tools=tools,
        raw=body,
        stream=stream,
    )


def prompt_text(request: LLMRequest) -> str:
    """Everything the model was sent, as one text (for the usage counts)."""
    parts = [request.system or ""]
    for m in request.messages:
        parts.append(m.content)
        parts.extend(orjson.dumps(c["args"]).decode() for c in m.tool_calls)
    return "".join(parts)


def reply_text(reply: TextReply | ToolCallReply) -> str:
    """Everything the model answers, as one text (for the usage counts)."""
    if isinstance(reply, TextReply):
        return reply.text
    return "".join(name + orjson.dumps(args).decode() for name, args in reply.calls)


def chunk_text(text: str, size: int = 16) -> list[str]:
    """`text` in pieces of `size` characters, as a stream sends them (at least one piece)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_OPENAI_ERROR = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _openai_error(status: int, message: str) -> JSONResponse:
    kind, code = _OPENAI_ERROR.get(status, ("server_error", None))
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
    )


def _gemini_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": status,
                "message": message,
                "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
            }
        },
        status_code=status,
    )


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


# --------------------------------------------------------------------------- #
# Server
# --------------------------------------------------------------------------- #


class FakeLLMServer:
    """Local HTTP stand-in for the OpenAI Chat Completions API and the Gemini API.

    One Starlette app served by ``uvicorn.Server`` as a task in the running
    asyncio loop. Point ``ChatOpenAI(base_url=server.openai_base_url, ...)`` or
    ``ChatGoogleGenerativeAI(base_url=server.gemini_base_url, ...)`` at it.

    Answer selection per request, first match wins:

    1. a keyed script whose key occurs in any user message text;
    2. the global (key ``None``) script FIFO;
    3. the custom responder set with :meth:`set_responder`;
    4. :func:`offline_reply`.

    Usage::

        async with FakeLLMServer() as server:
            server.script(None, [ToolCallReply([("check_order", {"id": 42})])])
            ...

    Attributes:
        host: Interface to bind.
        port: Requested port (0 = ephemeral); the real one is in :attr:`port`
            after :meth:`start`.
        latency_ms: Extra delay before every answer, in milliseconds.
        requests: Every normalised request received, in arrival order.
        disconnected: The requests whose client closed the connection while a
            :class:`HangReply` held the answer back (the gateway cancelled the turn).
        total_busy_seconds: Wall-clock seconds spent inside the chat handlers
            (summed over concurrent requests), for benchmarks.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency_ms: float = 0.0) -> None:
        """Create a stopped server.

        Args:
            host: Interface to bind, e.g. ``"127.0.0.1"``.
            port: TCP port; 0 picks a free one.
            latency_ms: Added delay before every answer, in milliseconds.
        """
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.requests: list[LLMRequest] = []
        self.disconnected: list[LLMRequest] = []
        self.total_busy_seconds = 0.0
        self._global: deque[Reply] = deque()
        self._keyed: dict[str, deque[Reply]] = {}
        self._responder: Responder | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/messages", self._anthropic_messages, methods=["POST"]),
                Route("/v1/models", self._openai_models, methods=["GET"]),
                Route("/v1beta/models/{target:path}", self._gemini, methods=["POST"]),
                Route("/v1/models/{target:path}", self._gemini, methods=["POST"]),
                Route("/v1alpha/models/{target:path}", self._gemini, methods=["POST"]),
            ]
        )

    # ---------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        """Root URL, ``http://<host>:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Value for ``ChatOpenAI(base_url=...)`` / ``openai.OpenAI(base_url=...)``."""
        return self.base_url + "/v1"

    @property
    def gemini_base_url(self) -> str:
        """Value for ``ChatGoogleGenerativeAI(base_url=...)``.

        google-genai (given an API key) appends
        ``/v1beta/models/{model}:generateContent`` to it.
        """
        return self.base_url

    @property
    def anthropic_base_url(self) -> str:
        """Value for ``ChatAnthropic(base_url=...)`` (the SDK appends ``/v1/messages``)."""
        return self.base_url

    def script(self, conversation_key: str | None, replies: list[Reply]) -> None:
        """Queue scripted replies.

        Args:
            conversation_key: ``None`` for the global FIFO queue; otherwise a
                marker string: a request takes from this queue when any of its
                user messages contains the marker (if several markers match,
                the longest wins, so ``CALL-1`` does not steal ``CALL-10``).
            replies: Replies consumed one per matching request, in order.
        """
        if conversation_key is None:
            self._global.extend(replies)
        else:
            self._keyed.setdefault(conversation_key, deque()).extend(replies)

    def set_responder(self, fn: Responder | None) -> None:
        """Install custom answer logic used when no script applies.

        Args:
            fn: Sync or async callable taking an :class:`LLMRequest` and
                returning a :data:`Reply`; ``None`` restores the offline model.
        """
        self._responder = fn

    def reset(self) -> None:
        """Drop scripts, the responder, recorded requests and busy time."""
        self._global.clear()
        self._keyed.clear()
        self._responder = None
        self.requests.clear()
        self.disconnected.clear()
        self.total_busy_seconds = 0.0

    def pending(self, conversation_key: str | None = None) -> int:
        """Count scripted replies not yet consumed.

        Args:
            conversation_key: Queue to inspect (``None`` = global queue).

        Returns:
            Number of queued replies.
        """
        if conversation_key is None:
            return len(self._global)
        return len(self._keyed.get(conversation_key, ()))

    async def start(self) -> Self:
        """Start serving in the current event loop and wait until bound.

        Returns:
            ``self``, with :attr:`port` set to the real port.

        Raises:
            RuntimeError: If uvicorn exits before it starts listening (e.g. the
                port is in use).
        """
        self._stopping = asyncio.Event()
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                raise RuntimeError(f"fake LLM server failed to start on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        sock = self._server.servers[0].sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stop serving and wait for the server task to finish.

        Pending latency/hang sleeps are cut short so shutdown is prompt.
        """
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = None
        self._task = None

    async def __aenter__(self) -> Self:
        """Start the server (see :meth:`start`)."""
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        """Stop the server (see :meth:`stop`)."""
        await self.stop()

    # --------------------------------------------------------------- answering

    def _take_script(self, request: LLMRequest) -> Reply | None:
        """Pop the keyed (longest matching key wins) or global scripted reply."""
        user_texts = request.user_texts
        matching = [
            key for key, queue in self._keyed.items() if queue and any(key in text for text in user_texts)
        ]
        if matching:
            return self._keyed[max(matching, key=len)].popleft()
        if self._global:
            return self._global.popleft()
        return None

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early when the server is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _hang(self, seconds: float, http: Request) -> bool:
        """Sleep like `_sleep`; True (and at once) if the client closes the connection first.

        Once the body is read, the ASGI ``receive`` only returns on ``http.disconnect``.
        """
        sleep = asyncio.ensure_future(self._sleep(seconds))
        gone = asyncio.ensure_future(http.receive())
        try:
            await asyncio.wait({sleep, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            gone.cancel()
        return gone.done() and not gone.cancelled() and gone.result().get("type") == "http.disconnect"

    async def _decide(
        self, request: LLMRequest, http: Request | None = None
    ) -> TextReply | ToolCallReply | ErrorReply:
        """Record the request, pick a reply, apply latency/hangs.

        During a :class:`HangReply` a client that closes its connection is recorded in
        :attr:`disconnected`, and the reply becomes an error nobody reads.
        """
        self.requests.append(request)
        reply = self._take_script(request)
        if reply is None and self._responder is not None:
            result = self._responder(request)
            reply = await result if inspect.isawaitable(result) else result
        if reply is None:
            reply = offline_reply(request)
        if self.latency_ms > 0:
            await self._sleep(self.latency_ms / 1000.0)
        if isinstance(reply, HangReply):
            if http is not None and await self._hang(reply.seconds, http):
                self.disconnected.append(request)
                return ErrorReply(499, "client closed request")
            if http is None:
                await self._sleep(reply.seconds)
            if reply.text is not None:
                return TextReply(reply.text)
            fallback = offline_reply(request)
            return fallback if not isinstance(fallback, HangReply) else TextReply("")
        return reply

    # ------------------------------------------------------------------ OpenAI

    async def _openai_models(self, request: Request) -> Response:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _openai_error(401, "You didn't provide an API key.")
        models = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": m,
                        "object": "model",
                        "created": 1700000000,
                        "owned_by": "fake-llm",
                    }
                    for m in models
                ],
            }
        )

    async def _openai_chat(self, http: Request) -> Response:
        started = time.perf_counter()
        try:
            auth = http.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not auth[7:].strip():
                return _openai_error(
                    401,
                    "You didn't provide an API key. Use 'Authorization: Bearer <key>'.",
                )
            try:
                body = orjson.loads(await http.body())
            except orjson.JSONDecodeError:
                return _openai_error(400, "We could not parse the JSON body of your request.")
            request = parse_openai(body)
            reply = await self._decide(request, http)
        finally:
            self.total_busy_seconds += time.perf_counter() - started
        if isinstance(reply, ErrorReply):
            return _openai_error(reply.status, reply.message)
        prompt_tokens = count_tokens(prompt_text(request))
        completion_tokens = count_tokens(reply_text(reply))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        calls = (
            [
                {
                    "id": "call_" + uuid.uuid4().hex[:24],
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": orjson.dumps(args).decode(),
                    },
                }
                for name, args in reply.calls
            ]
            if isinstance(reply, ToolCallReply)
            else []
        )
        finish = "tool_calls" if calls else "stop"
        content = reply.text if isinstance(reply, TextReply) else None
        if not request.stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": content,
                "refusal": None,
            }
            if calls:
                message["tool_calls"] = calls
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": request.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_fake_llm",
                }
            )
        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        return StreamingResponse(
            self._openai_stream(
                completion_id,
                created,
                request.model,
                content,
                calls,
                finish,
                usage,
                include_usage,
            ),
            media_type="text/event-stream",
        )

    async def _openai_stream(
        self,
        completion_id: str,
        created: int,
        model: str,
        content: str | None,
        calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int],
        include_usage: bool,
    ) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake_llm",
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
            }
            if include_usage:
                payload["usage"] = None
            return _sse(payload)

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if content:
            for piece in chunk_text(content):
                yield chunk({"content": piece})
        for index, call in enumerate(calls):
            fn = call["function"]
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for piece in chunk_text(fn["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, finish)
        if include_usage:
            yield _sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake_llm",
                    "choices": [],
                    "usage": usage,
                }
            )
        yield b"data: [DONE]\n\n"

    # --------------------------------------------------------------- Anthropic

    async def _anthropic_messages(self, http: Request) -> Response:
        from app.testing.fake_anthropic import anthropic_error, anthropic_response, parse_anthropic

        started = time.perf_counter()
        try:
            # The key arrives as `x-api-key` (the documented header) or, from anthropic
            # SDK 2.x, as `Authorization: Bearer <key>`.
            bearer = http.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not (http.headers.get("x-api-key", "").strip() or bearer):
                return anthropic_error(401, "x-api-key header is required")
            try:
                body = orjson.loads(await http.body())
            except orjson.JSONDecodeError:
                return anthropic_error(400, "There was an issue with your request body: invalid JSON")
            if not isinstance(body.get("max_tokens"), int):
                return anthropic_error(400, "max_tokens: Field required")
            request = parse_anthropic(body)
            reply = await self._decide(request)
        finally:
            self.total_busy_seconds += time.perf_counter() - started
        if isinstance(reply, ErrorReply):
            return anthropic_error(reply.status, reply.message)
        return anthropic_response(request, reply)

    # ------------------------------------------------------------------ Gemini

    async def _gemini(self, http: Request) -> Response:
        target = str(http.path_params["target"])
        model, _, method = target.partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return _gemini_error(404, f"Method {method or target!r} not found.")
        started = time.perf_counter()
        try:
            key = http.headers.get("x-goog-api-key") or http.query_params.get("key")
            if not key:
                return _gemini_error(
                    401,
                    "Method doesn't allow unregistered callers. Please use an API key.",
                )
            try:
                body = orjson.loads(await http.body())
            except orjson.JSONDecodeError:
                return _gemini_error(400, "Invalid JSON payload received.")
            stream = method == "streamGenerateContent"
            request = parse_gemini(model, body, stream=stream)
            reply = await self._decide(request, http)
        finally:
            self.total_busy_seconds += time.perf_counter() - started
        if isinstance(reply, ErrorReply):
            return _gemini_error(reply.status, reply.message)
        prompt_tokens = count_tokens(prompt_text(request))
        completion_tokens = count_tokens(reply_text(reply))
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": completion_tokens,
            "totalTokenCount": prompt_tokens + completion_tokens,
        }
        response_id = uuid.uuid4().hex[:22]
        parts_list: list[list[dict[str, Any]]]
        if isinstance(reply, ToolCallReply):
            parts_list = [[{"functionCall": {"name": name, "args": args}} for name, args in reply.calls]]
        else:
            parts_list = [[{"text": piece}] for piece in chunk_text(reply.text, 24)]

        def payload(parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": parts},
                "index": 0,
            }
            if last:
                candidate["finishReason"] = "STOP"
            out: dict[str, Any] = {
                "candidates": [candidate],
                "modelVersion": model,
                "responseId": response_id,
            }
            if last:
                out["usageMetadata"] = usage
            else:
                out["usageMetadata"] = {
                    "promptTokenCount": prompt_tokens,
                    "totalTokenCount": prompt_tokens,
                }
            return out

        if not stream:
            merged = [p for parts in parts_list for p in parts]
            if isinstance(reply, TextReply):
                merged = [{"text": reply.text}]
            return JSONResponse(payload(merged, True))

        async def events() -> AsyncIterator[bytes]:
            for i, parts in enumerate(parts_list):
                yield (b"data: " + orjson.dumps(payload(parts, i == len(parts_list) - 1)) + b"\r\n\r\n")

        return StreamingResponse(events(), media_type="text/event-stream")


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


async def _serve_forever(host: str, port: int, latency_ms: float) -> None:
    server = FakeLLMServer(host, port, latency_ms=latency_ms)
    await server.start()
    sys.stdout.write(
        f"fake LLM server (offline model) listening on {server.base_url}\n"
        f"  OpenAI: base_url={server.openai_base_url}\n"
        f"  Gemini: base_url={server.gemini_base_url}\n"
        f"  Anthropic: base_url={server.anthropic_base_url}\n"
    )
    sys.stdout.flush()
    try:
        assert server._task is not None
        await server._task
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the stand-in standalone with the offline model.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.host, args.port, args.latency_ms))


if __name__ == "__main__":
    main()
