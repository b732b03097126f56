"""The service started the ways the README and users start it, as real processes.

`uvicorn app.main:app` (the original project's command), `uvicorn --factory`,
`python -m app.cli serve` (what `make run` runs) and the `ai-gateway serve` entry point
each answer `/healthz` and connect their Stasis application to the fake Asterisk. In
dev mode the person who started the process reads the generated admin password on the
console and logs in with it; no log line (the process's or the suite's) holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.testing.fake_ari import FakeAriServer
from tests.conftest import SUITE_LOG, TEST_ADMIN_PASSWORD, TEST_SECRET_KEY
from tests.redis_proc import free_port

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: A line written by the gateway's logging (`%(asctime)s %(levelname)s %(name)s: …`, or uvicorn's).
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ |INFO:|WARNING:|ERROR:|DEBUG:)")
PASSWORD_LINE = re.compile(r"^\s+password:\s+(\S+)\s*$")

pytestmark = pytest.mark.slow
process_log = logging.getLogger("tests.gateway_process")


@dataclass
class Proc:
    """A child process whose stdout and stderr lines are collected as they arrive."""

    proc: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def _read(self, stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        async for raw in stream:
            into.append(raw.decode(errors="replace").rstrip("\n"))

    def start_reading(self) -> None:
        self.readers = [
            asyncio.create_task(self._read(self.proc.stdout, self.stdout)),
            asyncio.create_task(self._read(self.proc.stderr, self.stderr)),
        ]

    async def wait_for_line(self, lines: list[str], pattern: re.Pattern[str], timeout: float = 60) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for line in lines:
                match = pattern.search(line)
                if match:
                    return match.group(1) if match.groups() else line
            assert self.proc.returncode is None, "process exited:\n" + "\n".join(self.stderr[-30:])
            assert asyncio.get_running_loop().time() < deadline, "\n".join(self.stderr[-30:])
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.readers), 5)


@contextlib.asynccontextmanager
async def spawn(argv: list[str], *, cwd: Path, env: dict[str, str]) -> AsyncIterator[Proc]:
    """Start `argv`; on exit stop it (SIGINT, as Ctrl-C) and record its log lines in the suite log."""
    proc = Proc(
        await asyncio.create_subprocess_exec(
            *argv, cwd=str(cwd), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    )
    proc.start_reading()
    try:
        yield proc
    finally:
        await proc.stop()
        # The process's log output goes to the suite log (test_zz_no_secrets_in_logs reads it);
        # the console notice meant for the person at the terminal does not.
        logged = [line for line in proc.stderr if LOG_LINE.match(line)]
        process_log.info("%s output:\n%s", " ".join(argv[:3]), "\n".join(logged))


def base_env(settings: Settings, fake_ari: FakeAriServer) -> dict[str, str]:
    """The environment of a gateway process: the test's database, Redis prefix and fake ARI."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    return {
        **{k: v for k, v in os.environ.items() if k in keep},
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.effective_redis_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "ASTERISK_ARI_URL": fake_ari.base_url,
        "ASTERISK_ARI_USERNAME": fake_ari.username,
        "ASTERISK_ARI_PASSWORD": fake_ari.password,
        "SECRET_KEY": TEST_SECRET_KEY,
    }


async def wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            assert asyncio.get_running_loop().time() < deadline, f"{url}/healthz never answered"
            await asyncio.sleep(0.2)


def assert_no_log_line_holds(password: str, proc: Proc) -> None:
    """The password appears once, on the console notice, and in no log line of the process."""
    holding = [line for line in proc.stderr + proc.stdout if password in line]
    assert len(holding) == 1 and PASSWORD_LINE.match(holding[0]), holding
    assert not any(password in line for line in proc.stderr if LOG_LINE.match(line))
    assert any("admin login for this run" in line or "Login:" in line for line in proc.stderr + proc.stdout)


COMMANDS = {
    "uvicorn app.main:app": [str(VENV_BIN / "uvicorn"), "app.main:app"],
    "uvicorn --factory": [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"],
    "make run": [sys.executable, "-m", "app.cli", "serve"],
    "ai-gateway serve": [str(VENV_BIN / "ai-gateway"), "serve"],
}


@pytest.mark.parametrize("how", list(COMMANDS))
async def test_the_service_starts_as_users_start_it(
    how: str, make_settings: Callable[..., Settings], fake_ari: FakeAriServer, tmp_path: Path
) -> None:
    settings = make_settings()
    env = base_env(settings, fake_ari)
    port = free_port()
    dev_mode = how in ("make run", "ai-gateway serve")
    if dev_mode:
        env["DEV_MODE"] = "true"  # as `make run` sets it; no WEB_UI_PASSWORD
    else:
        env["WEB_UI_PASSWORD"] = TEST_ADMIN_PASSWORD
    # `uvicorn app.main:app` is run from the repository root, as the original README says.
    cwd = REPO if how == "uvicorn app.main:app" else tmp_path
    argv = [*COMMANDS[how], "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    async with spawn(argv, cwd=cwd, env=env) as proc:
        await wait_healthy(url)
        await fake_ari.wait_for_ws(settings.asterisk_app_name, timeout=30)
        assert fake_ari.is_app_registered(settings.asterisk_app_name)
        password = await proc.wait_for_line(proc.stderr, PASSWORD_LINE) if dev_mode else TEST_ADMIN_PASSWORD
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/api/v1/status")).status_code == 401
            assert (await client.get("/api/v1/status", auth=("admin", password))).status_code == 200
            assert (await client.get("/ui", auth=("admin", password))).status_code == 200
    if dev_mode:
        assert_no_log_line_holds(password, proc)
        kept = tmp_path / ".gateway-admin-password"
        assert kept.read_text().strip() == password
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert str(kept) in "\n".join(proc.stderr)
        _assert_not_in_suite_log(password)


def _assert_not_in_suite_log(password: str) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert password not in SUITE_LOG.read_text(encoding="utf-8", errors="replace")


async def test_demo_keep_running_prints_a_login_that_opens_the_ui(redis_prefix: str, tmp_path: Path) -> None:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if k in keep}
    env.update(PYTHONPATH=str(REPO), REDIS_KEY_PREFIX=redis_prefix)
    port = free_port()
    argv = [sys.executable, "-m", "app.cli", "demo", "--keep-running", "--verbose", "--port", str(port)]
    async with spawn(argv, cwd=tmp_path, env=env) as proc:
        await proc.wait_for_line(proc.stdout, re.compile(r"(Press Ctrl-C)"), timeout=90)
        password = await proc.wait_for_line(proc.stderr, PASSWORD_LINE)
        assert any("/ui and log in as admin" in line for line in proc.stdout), proc.stdout
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/ui")).status_code == 401
            page = await client.get("/ui", auth=("admin", password))
            assert page.status_code == 200 and "demo" in page.text.lower()
            assert (await client.get("/api/v1/status", auth=("admin", password))).status_code == 200
    assert_no_log_line_holds(password, proc)
    _assert_not_in_suite_log(password)
