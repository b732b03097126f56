"""Prompts and tools for the call path, read from the database through a short TTL cache.

The call path never waits on the database when it can avoid it: a prompt is
served from memory for `PROMPT_CACHE_TTL_SECONDS`; after that the cached copy is still
served while one background read refreshes it (so another process's admin change shows
up within the TTL plus one turn); admin writes in this process call `invalidate()`;
when the database is down a stale copy is served (and logged). Turns that find nothing
cached at the same moment share one database read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.security import SecretBox, SecretDecryptionError
from app.models import Prompt, Tool
from app.schemas import PromptVoice
from app.services.domain import PromptSpec, ToolSpec, TransferTarget, VoiceSettings

logger = logging.getLogger(__name__)

DEFAULT_PROMPT_NAME = "default"
DEFAULT_PROMPT_CONTENT = (
    "You are the phone assistant of this company. Greet the caller briefly, understand "
    "what they need, and answer in one or two short sentences. If you cannot help, say "
    "so and offer to transfer them to a person."
)


class PromptNotFound(LookupError):
    """No prompt with that name (or no default prompt)."""


class CatalogUnavailable(Exception):
    """The database failed and no cached copy exists."""


def tool_spec_from_row(tool: Tool, box: SecretBox) -> ToolSpec:
    """Snapshot a `Tool` row, decrypting secret header values.

    A secret that cannot be decrypted (SECRET_KEY changed) is sent empty and logged.
    """
    headers: dict[str, str] = {}
    for name, value in (tool.headers or {}).items():
        try:
            headers[name] = box.decrypt(str(value))
        except SecretDecryptionError:
            logger.error("tool=%s header %s cannot be decrypted; check SECRET_KEY", tool.name, name)
            headers[name] = ""
    return ToolSpec(
        id=tool.id,
        name=tool.name,
        description=tool.description or "",
        parameters=dict(tool.parameters or {"type": "object", "properties": {}}),
        url=tool.url,
        method=(tool.method or "GET").upper(),
        headers=headers,
        secret_headers=frozenset(tool.secret_headers or ()),
        args_location=tool.args_location or "auto",
        body_template=tool.body_template,
        timeout_seconds=float(tool.timeout_seconds or 5.0),
        version=tool.version or 1,
    )


def voice_settings_from_json(data: dict[str, Any] | None, prompt_name: str = "") -> VoiceSettings:
    """The `VoiceSettings` stored in a prompt's ``voice`` JSON column.

    Args:
        data: the column's value, a `PromptVoice` dump (fields left out take their
            defaults); None for a prompt that never had voice settings.
        prompt_name: for the log line when the stored value is not valid.

    Returns:
        The settings; the defaults (logged) when the stored value does not validate,
        e.g. after a hand edit of the database.
    """
    if not data:
        return VoiceSettings()
    try:
        voice = PromptVoice.model_validate(data)
    except ValidationError as exc:
        logger.error("prompt=%s stored voice settings are not valid; using defaults: %s", prompt_name, exc)
        return VoiceSettings()
    fields = voice.model_dump(exclude={"transfer_targets"})
    targets = tuple(TransferTarget(**t.model_dump()) for t in voice.transfer_targets)
    return VoiceSettings(**fields, transfer_targets=targets)


def prompt_spec_from_row(prompt: Prompt, box: SecretBox) -> PromptSpec:
    """Snapshot a `Prompt` row with its enabled tools and its voice settings."""
    return PromptSpec(
        id=prompt.id,
        name=prompt.name,
        content=prompt.content,
        fallback_text=prompt.fallback_text,
        version=prompt.version or 1,
        tools=tuple(tool_spec_from_row(t, box) for t in prompt.tools if t.enabled),
        metadata=prompt.meta,
        is_default=prompt.is_default,
        voice=voice_settings_from_json(prompt.voice, prompt.name),
    )


class Catalog:
    """Cached read access to prompts (with their tools) for the call path.

    Args:
        session_factory: database sessions.
        secret_box: decrypts secret tool headers.
        ttl_seconds: how long a cached prompt is served without asking the database.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        secret_box: SecretBox,
        *,
        ttl_seconds: float = 5.0,
        db_timeout_seconds: float = 2.0,
    ) -> None:
        """Start with an empty cache; a database read gives up after `db_timeout_seconds` (s)."""
        self._db_timeout = db_timeout_seconds
        self._sessions = session_factory
        self.secret_box = secret_box
        self._ttl = ttl_seconds
        self._cache: dict[str | None, tuple[float, PromptSpec]] = {}
        self._reads: dict[str | None, asyncio.Task[PromptSpec]] = {}

    def invalidate(self) -> None:
        """Drop every cached prompt (call after any prompt or tool write).

        Reads already running are forgotten too: their results are not cached.
        """
        self._cache.clear()
        self._reads.clear()

    async def get_prompt(self, name: str | None) -> PromptSpec:
        """The prompt called `name`, or the default prompt when `name` is None/empty.

        Raises:
            PromptNotFound: no such prompt.
            CatalogUnavailable: the database failed and nothing is cached.
        """
        key = name or None
        cached = self._cache.get(key)
        if cached is not None:
            if cached[0] <= time.monotonic() and key not in self._reads:
                self._read(key)  # refresh in the background; this turn gets the cached copy
            return cached[1]
        task = self._reads.get(key) or self._read(key)
        try:
            return await asyncio.shield(task)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise CatalogUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    def _read(self, key: str | None) -> asyncio.Task[PromptSpec]:
        """Start the one database read for `key`; it caches what it finds."""
        task = asyncio.create_task(self._read_and_cache(key), name=f"catalog-read-{key}")
        self._reads[key] = task
        task.add_done_callback(functools.partial(self._read_done, key))
        return task

    async def _read_and_cache(self, key: str | None) -> PromptSpec:
        async with asyncio.timeout(self._db_timeout):
            spec = await self._load(key)
        if self._reads.get(key) is asyncio.current_task():  # not invalidated meanwhile
            self._cache[key] = (time.monotonic() + self._ttl, spec)
        return spec

    def _read_done(self, key: str | None, task: asyncio.Task[PromptSpec]) -> None:
        if self._reads.get(key) is task:
            del self._reads[key]
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, PromptNotFound):
            self._cache.pop(key, None)  # deleted or renamed: the next turn says so
        elif exc is not None and key in self._cache:
            logger.warning("database unavailable (%s); serving cached prompt %s", type(exc).__name__, key)

    async def _load(self, name: str | None) -> PromptSpec:
        async with self._sessions() as session:
            stmt = select(Prompt)
            stmt = stmt.where(Prompt.name == name) if name else stmt.where(Prompt.is_default.is_(True))
            prompt = (await session.scalars(stmt.limit(1))).first()
            if prompt is None:
                what = f"prompt '{name}'" if name else "default prompt"
                raise PromptNotFound(f"{what} not found")
            return prompt_spec_from_row(prompt, self.secret_box)

    async def ensure_default_prompt(self) -> bool:
        """Seed a default prompt into an empty database (first start); see `ensure_default_prompt`."""
        return await ensure_default_prompt(self._sessions)


async def ensure_default_prompt(session_factory: async_sessionmaker[AsyncSession]) -> bool:
    """Create the default prompt when the database has no prompt at all (first start).

    Not safe against a second process doing the same at once: start-up runs it under
    `app.core.database.schema_lock` (`prepare_database`).

    Returns:
        True when the prompt was created.
    """
    async with session_factory() as session:
        if (await session.scalars(select(Prompt.id).limit(1))).first() is not None:
            return False
        session.add(Prompt(name=DEFAULT_PROMPT_NAME, content=DEFAULT_PROMPT_CONTENT, is_default=True))
        await session.commit()
    logger.info("empty database: created the default prompt '%s'", DEFAULT_PROMPT_NAME)
    return True
