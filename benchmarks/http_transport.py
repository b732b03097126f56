"""CPU per HTTP request for the client stacks the gateway could use, against one local server.

Why the gateway sends through `app.core.http` (httpx's API on aiohttp's
transport): a phone turn makes 3-5 small requests (ARI `setChannelVars` and `continue`,
the LLM, a tool), and httpx's own transport costs several times more CPU per request once
many are in flight. Prints CPU ms per request (this process only; the server runs in
another process) and requests/s, for 1 and 50 requests in flight.

    .venv/bin/python -m benchmarks.http_transport [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import uvloop
from aiohttp import web

from app.core.http import create_http_client


def _serve(port: int) -> None:
    async def empty(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/channels/{cid}/variables", empty)
    web.run_app(app, host="127.0.0.1", port=port, print=None, loop=uvloop.new_event_loop())


async def _measure(name: str, post: Callable[[int], Awaitable[Any]], requests: int, in_flight: int) -> None:
    slots = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with slots:
            await post(i)

    for i in range(200):  # warm the pool
        await one(i)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    cpu_ms = (time.process_time() - cpu) / requests * 1000
    rate = requests / (time.perf_counter() - wall)
    print(f"{name:34s} in flight {in_flight:3d}: {cpu_ms:6.3f} CPU ms/request  {rate:7.0f} requests/s")


async def _run(port: int, requests: int) -> None:
    base = f"http://127.0.0.1:{port}"
    body = {"variables": {"AI_STATUS": "OK", "AI_RESPONSE": "Your order has shipped."}}
    for in_flight in (1, 50):
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        async with httpx.AsyncClient(base_url=base, limits=limits) as plain:
            await _measure(
                "httpx (httpcore transport)",
                lambda i, c=plain: c.post(f"/channels/{i}.1/variables", json=body),
                requests,
                in_flight,
            )
        timeout = httpx.Timeout(10.0)
        async with create_http_client(base_url=base, timeout=timeout, max_connections=in_flight) as ours:
            await _measure(
                "httpx on aiohttp (http_clients)",
                lambda i, c=ours: c.post(f"/channels/{i}.1/variables", json=body),
                requests,
                in_flight,
            )
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(base, connector=connector) as session:

            async def raw(i: int, s: aiohttp.ClientSession = session) -> None:
                async with s.post(f"/channels/{i}.1/variables", json=body) as response:
                    await response.read()

            await _measure("aiohttp alone (reference)", raw, requests, in_flight)


def main() -> None:
    """Start the server process, measure each client stack, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        uvloop.run(_run(port, args.requests))
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
