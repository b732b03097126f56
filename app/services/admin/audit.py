"""The audit log of admin writes (who changed which prompt or tool, when, and what)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEntry
from app.schemas import AuditRead
from app.services.admin.base import page
from app.services.admin.serializers import audit_read


class AuditService:
    """Reads of the audit log.

    Args:
        session: the request's database session.
    """

    def __init__(self, session: AsyncSession) -> None:
        """Keep the session."""
        self.session = session

    async def list_audit(
        self,
        *,
        entity_type: str | None = None,
        entity_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AuditRead], int]:
        """Audit entries, newest first."""
        query = select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        if entity_type:
            query = query.where(AuditEntry.entity_type == entity_type)
        if entity_id is not None:
            query = query.where(AuditEntry.entity_id == entity_id)
        rows, total = await page(self.session, query, limit, offset)
        return [audit_read(a) for a in rows], total
