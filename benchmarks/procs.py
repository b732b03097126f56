"""The processes under test: the real gateway (uvicorn) and the minimal baseline.

Both run as child processes of the benchmark, on loopback, against the benchmark's
fakes; psutil reads their CPU time and RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from redis.asyncio import Redis

from app.core.config import Settings
from benchmarks.fakes import PLAIN_PROMPT, TOOL_NAME, TOOL_PROMPT, Fakes

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GATEWAY_APP = "ai_ari_app"
BASELINE_APP = "bench_baseline"
ADMIN_PASSWORD = "bench-" + "x" * 24  # long and not a well-known default
SECRET_KEY = "bench-secret-key-0123456789abcdef0123"


@dataclass
class Child:
    """One child process with its log file; `psutil` handle for CPU and memory."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def alive(self) -> bool:
        return self.proc.returncode is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    async def stop(self, timeout: float = 40.0) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


async def _spawn(name: str, args: list[str], env: dict[str, str], workdir: Path) -> Child:
    log_path = workdir / f"{name}.log"
    log = log_path.open("wb")
    # The children get only the settings given here (plus PATH etc.), not the caller's.
    settings = {name.upper() for name in Settings.model_fields}
    full_env = {k: v for k, v in os.environ.items() if k.upper() not in settings}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(REPO)
    full_env["PYTHONUNBUFFERED"] = "1"
    proc = await asyncio.create_subprocess_exec(
        PYTHON, *args, cwd=workdir, env=full_env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    log.close()
    return Child(name, proc, log_path)


async def _wait_ws(fakes: Fakes, child: Child, app: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while fakes.ari.ws_count(app) < 1:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}):\n{child.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not connect to ARI in {timeout}s:\n{child.log_tail()}")
        await asyncio.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- databases


@dataclass
class Database:
    kind: str  # sqlite | postgres
    url: str
    pg_admin_url: str | None = None
    pg_name: str | None = None

    async def drop(self) -> None:
        if self.pg_admin_url and self.pg_name:
            conn = await asyncpg.connect(self.pg_admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            finally:
                await conn.close()


async def make_database(kind: str, workdir: Path, pg_url: str) -> Database:
    if kind == "sqlite":
        return Database("sqlite", f"sqlite:///{workdir}/gateway-{uuid.uuid4().hex[:8]}.db")
    name = f"aigw_bench_{uuid.uuid4().hex[:10]}"
    base = pg_url.rstrip("/").rpartition("/")[0]
    admin_url = f"{base}/postgres"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return Database("postgres", f"{base}/{name}", admin_url, name)


async def clear_redis(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- gateway


@dataclass
class Target:
    """A running process under test and how to address it."""

    kind: str  # gateway | baseline
    child: Child
    app: str
    db: Database | None = None
    redis_prefix: str | None = None
    profile_prefix: Path | None = None


async def start_gateway(
    fakes: Fakes,
    db: Database,
    workdir: Path,
    *,
    redis_url: str,
    max_concurrent: int,
    loop: str,
    profile_prefix: Path | None = None,
) -> Target:
    port = _free_port()
    prefix = f"aigw-bench-{uuid.uuid4().hex[:8]}:"
    env = {
        "ASTERISK_ARI_URL": fakes.ari.base_url,
        "ASTERISK_ARI_USERNAME": fakes.ari.username,
        "ASTERISK_ARI_PASSWORD": fakes.ari.password,
        "ASTERISK_APP_NAME": GATEWAY_APP,
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": fakes.llm.openai_base_url,
        "DEFAULT_AI_MODEL": "openai",
        "DATABASE_URL": db.url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "TOOL_ALLOWED_HOSTS": "127.0.0.1",
        "MAX_CONCURRENT_CALLS": str(max_concurrent),
        "LOG_LEVEL": "WARNING",
        "WEB_UI_PASSWORD": ADMIN_PASSWORD,
        "SECRET_KEY": SECRET_KEY,
        "AI_TURN_TIMEOUT_SECONDS": "60",
        "ARI_RECONNECT_MIN_SECONDS": "0.1",
    }
    uvicorn_args = [
        "app.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        loop,
    ]
    if profile_prefix is None:
        args = ["-m", "uvicorn", *uvicorn_args]
    else:
        args = ["-m", "benchmarks.profiled_gateway", str(profile_prefix), *uvicorn_args]
    child = await _spawn(f"gateway-{db.kind}-{port}", args, env, workdir)
    target = Target("gateway", child, GATEWAY_APP, db=db, redis_prefix=prefix, profile_prefix=profile_prefix)
    try:
        await _wait_ws(fakes, child, GATEWAY_APP, 120)
        await seed_prompts(f"http://127.0.0.1:{port}", fakes, child)
    except BaseException:
        await child.stop(10)
        raise
    return target


async def seed_prompts(base_url: str, fakes: Fakes, child: Child) -> None:
    """Create the benchmark's tool and prompts through the admin REST API."""
    auth = ("admin", ADMIN_PASSWORD)
    async with httpx.AsyncClient(base_url=base_url, auth=auth, timeout=30) as http:
        deadline = time.monotonic() + 60
        while True:
            try:
                (await http.get("/api/v1/prompts")).raise_for_status()
                break
            except httpx.HTTPError:
                if not child.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"gateway admin API not reachable:\n{child.log_tail()}") from None
                await asyncio.sleep(0.1)
        tool = {
            "name": TOOL_NAME,
            "description": "Look up the delivery status of an order by its number.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}},
                "required": ["order_id"],
            },
            "url": fakes.tool_base_url + "/orders/{order_id}",
            "method": "GET",
            "headers": {"X-Bench-Call": "{uniqueid}"},
            "timeout_seconds": 10.0,
        }
        prompts = [
            {"name": PLAIN_PROMPT, "content": "You are the phone assistant of Example Shop. Be brief."},
            {
                "name": TOOL_PROMPT,
                "content": "You are the order hotline of Example Shop. Use check_order for orders.",
                "tools": [TOOL_NAME],
            },
        ]
        for path, body in [("/api/v1/tools", tool), *(("/api/v1/prompts", p) for p in prompts)]:
            response = await http.post(path, json=body)
            if response.status_code >= 300:
                raise RuntimeError(f"seeding {path} failed: {response.status_code} {response.text[:300]}")


async def start_baseline(fakes: Fakes, workdir: Path, *, loop: str) -> Target:
    env = {
        "BASELINE_ARI_URL": fakes.ari.ari_url,
        "BASELINE_ARI_USER": fakes.ari.username,
        "BASELINE_ARI_PASSWORD": fakes.ari.password,
        "BASELINE_APP": BASELINE_APP,
        "BASELINE_LLM_URL": fakes.llm.openai_base_url,
        "BASELINE_TOOL_URL": fakes.tool_base_url + "/orders/{order_id}",
        "BASELINE_TOOL_PROMPT": TOOL_PROMPT,
        "BASELINE_LOOP": loop,
    }
    child = await _spawn("baseline", [str(REPO / "benchmarks" / "baseline.py")], env, workdir)
    try:
        await _wait_ws(fakes, child, BASELINE_APP, 60)
    except BaseException:
        await child.stop(10)
        raise
    return Target("baseline", child, BASELINE_APP)


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="aigw-bench-"))
