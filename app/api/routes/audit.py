"""`/api/v1/audit`: who changed which prompt or tool, when, and what."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.routes.common import MAX_ID, AuditServiceDep, Limit, Offset, errors
from app.schemas import AuditRead, Page

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=Page[AuditRead], responses=errors(422))
async def list_audit(
    service: AuditServiceDep,
    entity_type: Literal["prompt", "tool"] | None = None,
    entity_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuditRead]:
    """List admin writes, newest first."""
    items, total = await service.list_audit(
        entity_type=entity_type, entity_id=entity_id, limit=limit, offset=offset
    )
    return Page(items=items, total=total, limit=limit, offset=offset)
