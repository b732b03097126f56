"""Test helpers: a loopback ASGI server runner, a recording tool API, data factories."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.models import Prompt, Tool


class LoopbackServer:
    """Runs an ASGI app with uvicorn on 127.0.0.1 and a free port, in this event loop."""

    def __init__(self, app: Any) -> None:
        self._config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(self._config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)


@dataclass
class ToolApi:
    """A small HTTP API for tools to call; records every request it gets."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    slow_seconds: float = 30.0
    server: LoopbackServer | None = None

    def app(self) -> Starlette:
        async def record(request: Request) -> dict[str, Any]:
            body = await request.body()
            entry = {
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope.get("raw_path", b"").decode(),
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "json": json.loads(body) if body else None,
            }
            self.requests.append(entry)
            return entry

        async def order(request: Request) -> Response:
            entry = await record(request)
            order_id = request.path_params["order_id"]
            return JSONResponse(
                {"order_id": order_id, "status": "shipped", "eta_days": 2, "seen": entry["query"]}
            )

        async def echo(request: Request) -> Response:
            entry = await record(request)
            return JSONResponse({"received": entry["json"], "query": entry["query"]})

        async def slow(request: Request) -> Response:
            await record(request)
            await asyncio.sleep(self.slow_seconds)
            return JSONResponse({"late": True})

        async def big(request: Request) -> Response:
            await record(request)
            return Response(b"x" * 100_000, media_type="text/plain")

        async def missing(request: Request) -> Response:
            await record(request)
            return JSONResponse({"detail": "no such thing"}, status_code=404)

        return Starlette(
            routes=[
                Route("/orders/{order_id:path}", order, methods=["GET", "POST"]),
                Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE"]),
                Route("/slow", slow, methods=["GET", "POST"]),
                Route("/big", big, methods=["GET"]),
                Route("/missing", missing, methods=["GET", "POST"]),
            ]
        )

    async def start(self) -> None:
        self.server = LoopbackServer(self.app())
        await self.server.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()


ORDER_TOOL_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$", "description": "Order number"}},
    "required": ["order_id"],
    "additionalProperties": False,
}


async def create_prompt(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    content: str = "You help callers with their orders.",
    *,
    tools: list[Tool] | None = None,
    fallback_text: str | None = "Sorry, our assistant is unavailable. Transferring you now.",
    is_default: bool = False,
    voice: dict[str, Any] | None = None,
) -> Prompt:
    async with sessions() as session:
        prompt = Prompt(
            name=name, content=content, fallback_text=fallback_text, is_default=is_default, voice=voice
        )
        if tools:
            merged = [await session.merge(t) for t in tools]
            prompt.tools = merged
        session.add(prompt)
        await session.commit()
        return prompt


async def create_tool(sessions: async_sessionmaker[AsyncSession], **fields: Any) -> Tool:
    defaults: dict[str, Any] = {
        "name": "check_order",
        "description": "Look up an order's delivery status by order number.",
        "parameters": ORDER_TOOL_SCHEMA,
        "method": "GET",
        "headers": {},
        "timeout_seconds": 2.0,
    }
    defaults.update(fields)
    async with sessions() as session:
        tool = Tool(**defaults)
        session.add(tool)
        await session.commit()
        return tool
