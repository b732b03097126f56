"""The stand-ins the benchmark drives, all in the benchmark process, with per-call timing.

* :class:`FakeAriServer` (the project's wire-level Asterisk) places calls and records,
  per channel, when `POST /channels/{id}/continue` arrived.
* :class:`FakeLLMServer` (OpenAI Chat Completions) with a configurable latency. An ASGI
  wrapper attributes the wall time spent inside it to the call whose marker
  (``ref K<n>``) is in the request body.
* A tiny tool API (``GET /orders/{id}``) timed the same way, keyed by the
  ``X-Bench-Call`` header (filled by the gateway from ``{uniqueid}``).

Everything is keyed by the call number ``n`` (``UNIQUEID=K<n>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import defaultdict
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer

MARKER_RE = re.compile(rb"ref K(\d+)")
CALL_HEADER = b"x-bench-call"

TOOL_NAME = "check_order"
TOOL_PROMPT = "bench_tool"
PLAIN_PROMPT = "bench_notool"


class TimedApp:
    """ASGI wrapper: adds the seconds between request start and final body sent to `sink[n]`."""

    def __init__(self, app: ASGIApp, sink: defaultdict[int, float], *, from_header: bool) -> None:
        self.app = app
        self.sink = sink
        self.from_header = from_header
        self.unattributed = 0

    def _key_from_headers(self, scope: Scope) -> int | None:
        for name, value in scope.get("headers", ()):
            if name == CALL_HEADER:
                text = value.decode("latin-1").lstrip("K")
                return int(text) if text.isdigit() else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        key = self._key_from_headers(scope) if self.from_header else None
        chunks: list[bytes] = []
        done = False

        async def timed_receive() -> Message:
            message = await receive()
            if not self.from_header and message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def timed_send(message: Message) -> None:
            nonlocal key, done
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not done:
                done = True
                elapsed = time.perf_counter() - start
                if key is None and chunks:
                    found = MARKER_RE.search(b"".join(chunks))
                    key = int(found.group(1)) if found else None
                if key is None:
                    self.unattributed += 1
                else:
                    self.sink[key] += elapsed

        await self.app(scope, timed_receive, timed_send)


async def _tool_api(scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /orders/{id}` -> a small JSON document (a raw ASGI app: nearly free)."""
    while True:  # drain the request body
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    path: str = scope["path"]
    if not path.startswith("/orders/"):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = orjson.dumps(
        {"order_id": path.rsplit("/", 1)[1], "status": "shipped", "carrier": "DHL", "eta_days": 2}
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Fakes:
    """Fake ARI, fake OpenAI and the tool API, with per-call timings."""

    def __init__(self, llm_latency_ms: float) -> None:
        self.ari = FakeAriServer(asterisk_version="23.4.0")
        self.llm = FakeLLMServer(latency_ms=llm_latency_ms)
        self.llm_seconds: defaultdict[int, float] = defaultdict(float)
        self.tool_seconds: defaultdict[int, float] = defaultdict(float)
        self.continued_at: dict[str, float] = {}
        self._llm_timer = TimedApp(self.llm.app, self.llm_seconds, from_header=False)
        self.llm.app = self._llm_timer  # type: ignore[assignment]  # served by start()
        self._tool_timer = TimedApp(_tool_api, self.tool_seconds, from_header=True)
        self._tool_server: uvicorn.Server | None = None
        self._tool_task: asyncio.Task[None] | None = None
        self.tool_port = 0

    @property
    def tool_base_url(self) -> str:
        return f"http://127.0.0.1:{self.tool_port}"

    async def start(self) -> None:
        await self.ari.start()
        await self.llm.start()
        server = uvicorn.Server(
            uvicorn.Config(self._tool_timer, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        )
        self._tool_server = server
        self._tool_task = asyncio.create_task(server.serve())
        while not server.started:
            if self._tool_task.done():
                self._tool_task.result()
                raise RuntimeError("tool API failed to start")
            await asyncio.sleep(0.01)
        self.tool_port = int(server.servers[0].sockets[0].getsockname()[1])
        original = self.ari._handlers[("channels", "continueInDialplan")]
        continued_at = self.continued_at

        async def timed_continue(request: Any, op: Any, pp: dict[str, str], body: Any) -> Any:
            continued_at.setdefault(pp["channelId"], time.perf_counter())
            return await original(request, op, pp, body)

        self.ari._handlers[("channels", "continueInDialplan")] = timed_continue

    async def stop(self) -> None:
        if self._tool_server is not None:
            self._tool_server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tool_task, 5)
        await self.llm.stop()
        await self.ari.stop()

    def set_llm_latency(self, latency_ms: float) -> None:
        self.llm.latency_ms = latency_ms

    def forget(self) -> None:
        """Drop what the fakes recorded (keeps the benchmark process's memory flat)."""
        self.ari.requests.clear()
        self.ari.events.clear()
        self.llm.requests.clear()
        for cid in [c.id for c in self.ari.channels.values() if not c.in_stasis]:
            del self.ari.channels[cid]

    @property
    def unattributed(self) -> int:
        return self._llm_timer.unattributed + self._tool_timer.unattributed
