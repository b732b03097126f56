"""What the admin services share: the session, the audit trail, commits and paging.

Every write is recorded in `audit_log`, bumps the entity's `version` (the agent
cache keys on it) and calls `on_change` so the catalog forgets what it cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEntry
from app.services.admin.errors import NameConflict


async def page(session: AsyncSession, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    """One page of `query`'s rows and the total row count.

    Args:
        session: the database session.
        query: a SELECT with its ORDER BY.
        limit: most rows to return.
        offset: rows to skip.

    Returns:
        The rows of the page and the count of all rows the query matches.
    """
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = (await session.scalars(query.limit(limit).offset(offset))).all()
    return list(rows), int(total or 0)


def escape_like(text: str) -> str:
    r"""`text` with the LIKE wildcards escaped (use with ``escape="\\\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The fields of `new` whose values differ from `old`, as ``{field: [old, new]}``."""
    return {k: [old.get(k), new.get(k)] for k in new if old.get(k) != new.get(k)}


class AdminWriter:
    """Base of the services that write prompts and tools: audit entries and commits.

    Args:
        session: the request's database session; the service commits it.
        actor: who is acting (the admin user name), written to the audit log.
        on_change: called after every committed write (`Catalog.invalidate`).
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        actor: str = "system",
        on_change: Callable[[], object] | None = None,
    ) -> None:
        """Keep the collaborators."""
        self.session = session
        self.actor = actor
        self._on_change = on_change

    async def _commit(self, entity: str, name: str) -> None:
        try:
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise NameConflict(entity, name) from exc
        if self._on_change is not None:
            self._on_change()

    def _audit(
        self,
        action: str,
        entity_type: str,
        entity_id: int | None,
        entity_name: str | None,
        changes: dict[str, Any],
    ) -> None:
        self.session.add(
            AuditEntry(
                actor=self.actor,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                entity_name=entity_name,
                changes=changes,
            )
        )
