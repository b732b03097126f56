"""The prompt catalog on the real database: what a turn gets, and when it asks the database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import delete, event, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_session_factory
from app.core.security import SecretBox
from app.models import Prompt
from app.services.agent.catalog import Catalog, PromptNotFound
from tests.utils import create_prompt


def count_prompt_reads(engine: AsyncEngine) -> list[str]:
    """Every SELECT on the prompts table from now on (a listener on `engine`)."""
    seen: list[str] = []

    def on_execute(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM prompts" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    return seen


async def set_content(engine: AsyncEngine, name: str, content: str) -> None:
    """Change a prompt behind the catalog's back, as another gateway process would."""
    async with create_session_factory(engine)() as session, session.begin():
        await session.execute(update(Prompt).where(Prompt.name == name).values(content=content))


async def test_turns_that_find_nothing_cached_share_one_read(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    await create_prompt(sessions, "support", "Help with orders.")
    catalog = Catalog(sessions, SecretBox("k"), ttl_seconds=60)
    reads = count_prompt_reads(db_engine)
    specs = await asyncio.gather(*(catalog.get_prompt("support") for _ in range(30)))
    assert {s.content for s in specs} == {"Help with orders."}
    assert len(reads) == 1
    await catalog.get_prompt("support")
    assert len(reads) == 1  # fresh: from memory


async def test_expired_prompt_is_served_at_once_and_refreshed_behind(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    await create_prompt(sessions, "support", "Version one.")
    catalog = Catalog(sessions, SecretBox("k"), ttl_seconds=0.2)
    assert (await catalog.get_prompt("support")).content == "Version one."
    await set_content(db_engine, "support", "Version two.")
    assert (await catalog.get_prompt("support")).content == "Version one."  # within the TTL
    await asyncio.sleep(0.3)
    reads = count_prompt_reads(db_engine)
    # Expired: this turn still gets the cached copy without waiting; one refresh starts.
    got = await asyncio.gather(*(catalog.get_prompt("support") for _ in range(10)))
    assert {s.content for s in got} == {"Version one."}
    for _ in range(100):
        if (await catalog.get_prompt("support")).content == "Version two.":
            break
        await asyncio.sleep(0.01)
    assert (await catalog.get_prompt("support")).content == "Version two."
    assert len(reads) == 1


async def test_deleted_prompt_is_reported_after_the_refresh(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    await create_prompt(sessions, "gone", "Soon deleted.")
    catalog = Catalog(sessions, SecretBox("k"), ttl_seconds=0.05)
    await catalog.get_prompt("gone")
    async with sessions() as session, session.begin():
        await session.execute(delete(Prompt).where(Prompt.name == "gone"))
    await asyncio.sleep(0.1)
    await catalog.get_prompt("gone")  # stale copy; the refresh finds the prompt gone
    for _ in range(100):
        try:
            await catalog.get_prompt("gone")
        except PromptNotFound:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(PromptNotFound):
        await catalog.get_prompt("gone")


async def test_invalidate_wins_over_a_read_in_flight(
    db_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = create_session_factory(db_engine)
    await create_prompt(sessions, "support", "Old words.")
    catalog = Catalog(sessions, SecretBox("k"), ttl_seconds=60)
    real_load, gate = catalog._load, asyncio.Event()

    async def load_then_wait(name: str | None) -> Any:
        spec = await real_load(name)  # reads "Old words."
        await gate.wait()
        return spec

    monkeypatch.setattr(catalog, "_load", load_then_wait)
    first = asyncio.create_task(catalog.get_prompt("support"))
    await asyncio.sleep(0.1)
    await set_content(db_engine, "support", "New words.")
    catalog.invalidate()  # an admin write in this process, while the old read is in flight
    monkeypatch.setattr(catalog, "_load", real_load)
    gate.set()
    assert (await first).content == "Old words."
    assert (await catalog.get_prompt("support")).content == "New words."
