"""Start-up: the schema is migrated and the default prompt seeded once, however many processes start."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from app.cli import main as cli_main
from app.core.database import (
    alembic_config,
    create_engine,
    create_session_factory,
    head_revisions,
    migrations_pending,
    prepare_database,
)
from app.models import Prompt
from app.services.agent.catalog import DEFAULT_PROMPT_NAME, ensure_default_prompt
from tests.conftest import REDIS_URL, TEST_ADMIN_PASSWORD, TEST_SECRET_KEY
from tests.redis_proc import free_port

PG_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards), whatever TEST_DATABASE_URL says."""
    name = f"aigw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{PG_URL.rpartition('/')[0]}/{name}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def schema_facts(url: str) -> tuple[list[str], list[tuple[str, bool]]]:
    """(`alembic_version` rows, (name, is_default) of every prompt) of the database at `url`."""
    engine = create_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.connect() as conn:
            versions = [str(v) for v in (await conn.scalars(text("SELECT version_num FROM alembic_version")))]
            prompts = [(p.name, p.is_default) for p in (await conn.execute(select(Prompt))).all()]
    finally:
        await engine.dispose()
    return versions, prompts


async def _start_gateway(database_url: str, workdir: Path) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "GEMINI", "DATABASE"))},
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"aigw-test-startup-{port}:",
        "ARI_ENABLED": "false",
        "WEB_UI_PASSWORD": TEST_ADMIN_PASSWORD,
        "SECRET_KEY": TEST_SECRET_KEY,
        "PYTHONPATH": str(REPO),
    }
    args = ["-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        cwd=str(workdir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return proc, port


async def _wait_healthy(proc: asyncio.subprocess.Process, port: int, timeout: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while asyncio.get_running_loop().time() < deadline:
            assert proc.returncode is None, "the gateway process exited during start-up"
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not become ready")


async def test_two_processes_starting_at_once_on_a_fresh_postgres_both_come_up(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    procs = [await _start_gateway(fresh_pg_url, tmp_path) for _ in range(2)]
    outputs: list[str] = []
    try:
        await asyncio.gather(*(_wait_healthy(proc, port) for proc, port in procs))
    finally:
        for proc, _port in procs:
            if proc.returncode is None:
                proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            outputs.append((await proc.stdout.read()).decode() if proc.stdout else "")
        logging.getLogger("tests.gateway_process").info("gateway outputs:\n%s", "\n----\n".join(outputs))
    versions, prompts = await schema_facts(fresh_pg_url)
    assert versions == sorted(head_revisions())
    assert prompts == [(DEFAULT_PROMPT_NAME, True)]
    assert not any("Traceback" in out for out in outputs), outputs


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_concurrent_prepare_migrates_and_seeds_once(
    kind: str, fresh_pg_url: str, tmp_path: Path
) -> None:
    """Four start-ups racing in one event loop (each its own engine): one schema, one default prompt."""
    url = f"sqlite+aiosqlite:///{tmp_path}/race.db" if kind == "sqlite" else fresh_pg_url
    url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    engines = [create_engine(url) for _ in range(4)]
    try:
        assert await migrations_pending(engines[0])
        migrated = await asyncio.gather(
            *(
                prepare_database(e, functools.partial(ensure_default_prompt, create_session_factory(e)))
                for e in engines
            )
        )
        assert sorted(migrated) == [False, False, False, True]
        assert not await migrations_pending(engines[0])
        async with create_session_factory(engines[0])() as session:
            assert await session.scalar(select(func.count()).select_from(Prompt)) == 1
            default = (await session.scalars(select(Prompt))).one()
        assert default.is_default and default.name == DEFAULT_PROMPT_NAME
    finally:
        for engine in engines:
            await engine.dispose()


def test_migrate_command_prepares_the_database_and_is_idempotent(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """`ai-gateway migrate` on an empty SQLite file, twice: the second run changes nothing."""
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO)
    for _ in range(2):
        with pytest.raises(SystemExit) as exited:
            cli_main(["migrate"])
        assert exited.value.code == 0
    assert "database migrated to the newest revision" in caplog.text
    assert "database already at the newest revision" in caplog.text
    versions, prompts = asyncio.run(schema_facts(f"sqlite+aiosqlite:///{db}"))
    assert versions == sorted(head_revisions())
    assert prompts == [(DEFAULT_PROMPT_NAME, True)]


def test_head_revisions_follow_branches_and_merges(tmp_path: Path) -> None:
    """The pending-migrations check reads revision ids as text; a merge leaves one head."""
    scripts = {
        "a": "revision = 'a'\ndown_revision = None\n",
        "b": "revision: str = 'b'\ndown_revision: str | None = 'a'\n",
        "c": 'revision = "c"\ndown_revision = "a"\n',
        "d": "revision = 'd'\ndown_revision = ('b', 'c')\n",
    }
    for name, body in scripts.items():
        (tmp_path / f"{name}.py").write_text(f'"""Revision ID: {name}\nRevises: x\n"""\n{body}')
    assert head_revisions(tmp_path) == {"d"}
    (tmp_path / "d.py").unlink()
    head_revisions.cache_clear()
    assert head_revisions(tmp_path) == {"b", "c"}
    (tmp_path / "broken.py").write_text("REVISION = 1\n")
    head_revisions.cache_clear()
    assert head_revisions(tmp_path) == frozenset()  # cannot tell: start-up then runs Alembic
    # The project's own scripts: the text reading agrees with Alembic's.
    assert head_revisions() == set(ScriptDirectory.from_config(alembic_config()).get_heads())
