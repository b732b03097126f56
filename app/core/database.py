"""Async SQLAlchemy engine, session factory, and the schema step of start-up.

The engine is built by the application lifespan (never at import) and closed there.

Start-up (and `ai-gateway migrate`) calls `prepare_database`: under a database-wide lock
(PostgreSQL `pg_advisory_lock`; SQLite an exclusive `flock` on a file next to the database),
it upgrades the schema when the database is behind the newest Alembic revision and runs
the seed step (the default prompt). N processes starting together therefore migrate and
seed once. Whether migrations are pending is decided by comparing `alembic_version` with
the revision ids in `app/migrations/versions` (read as text), so a process whose
database is current never imports Alembic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: Key of the PostgreSQL advisory lock held around migrate + seed (any constant unique to us).
SCHEMA_LOCK_KEY = 0x41494757_0001  # "AIGW", 1
_REVISION_RE = re.compile(r"^revision(?:\s*:[^=]+)?\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_RE = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*(.+)$", re.MULTILINE)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine for `url` (``sqlite+aiosqlite://…`` or ``postgresql+asyncpg://…``).

    SQLite gets foreign keys switched on and a 30 s busy timeout, so concurrent call-log
    writes wait instead of failing with "database is locked".
    """
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # asyncpg connect timeout and pool wait, in seconds: a dead database fails fast.
        kwargs.update(pool_size=10, max_overflow=10, pool_timeout=3, connect_args={"timeout": 3})
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic configuration pointing at `app/migrations` (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def run_migrations(engine: AsyncEngine) -> None:
    """Upgrade the database behind `engine` to the newest Alembic revision (no lock, no check).

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


@functools.cache
def head_revisions(versions_dir: Path = MIGRATIONS_DIR / "versions") -> frozenset[str]:
    """The head revision ids of the migration scripts, read as text (Alembic is not imported).

    A head is a `revision` that no script names in its `down_revision` (a str, None, or a
    tuple of str for a merge). An empty set means "could not tell": callers then migrate.
    """
    revisions: set[str] = set()
    downs: set[str] = set()
    for script in versions_dir.glob("*.py"):
        source = script.read_text(encoding="utf-8")
        rev = _REVISION_RE.search(source)
        down = _DOWN_RE.search(source)
        if rev is None or down is None:
            return frozenset()
        revisions.add(rev.group(1))
        downs.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return frozenset(revisions - downs)


def _stored_revisions(connection: Connection) -> frozenset[str]:
    if not inspect(connection).has_table("alembic_version"):
        return frozenset()
    rows = connection.execute(text("SELECT version_num FROM alembic_version"))
    return frozenset(str(row[0]) for row in rows)


async def migrations_pending(engine: AsyncEngine) -> bool:
    """True when the database's `alembic_version` is not the scripts' heads (one query).

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    heads = head_revisions()
    async with engine.connect() as conn:
        stored = await conn.run_sync(_stored_revisions)
    return not heads or stored != heads


@contextlib.asynccontextmanager
async def schema_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the database-wide lock for schema changes and seeding while the block runs.

    PostgreSQL: a session-level `pg_advisory_lock(SCHEMA_LOCK_KEY)` on one pooled
    connection, released with `pg_advisory_unlock` (and by PostgreSQL when the process
    dies). SQLite: an exclusive `flock` on ``<database file>.lock`` (none for ``:memory:``).
    A process that finds the lock taken logs it and waits.
    """
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            key = {"k": SCHEMA_LOCK_KEY}
            if not (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), key)).scalar():
                logger.info("another gateway process is migrating the database; waiting for it")
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), key)
            await conn.commit()  # a session-level lock outlives the transaction
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), key)
                await conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another gateway process is migrating the database; waiting for it")
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


async def prepare_database(engine: AsyncEngine, seed: Callable[[], Awaitable[object]]) -> bool:
    """Under `schema_lock`: migrate when behind, then run `seed` (start-up and `ai-gateway migrate`).

    Args:
        engine: the database.
        seed: creates the rows a fresh database needs (the default prompt); must be a
            no-op when they exist.

    Returns:
        True when migrations ran (the database was empty or behind).

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    async with schema_lock(engine):
        migrated = await migrations_pending(engine)
        if migrated:
            logger.info("database schema is behind; running migrations")
            await run_migrations(engine)
        await seed()
    return migrated
