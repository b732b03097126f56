"""Admin UI audit log page."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.api.auth import AdminUser
from app.api.deps import GatewayDep
from app.api.routes.common import AuditServiceDep
from app.api.routes.ui.common import PAGE_SIZE, paging, render

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/audit", response_class=HTMLResponse, response_model=None)
async def audit_list(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: AuditServiceDep,
    entity_type: Annotated[Literal["", "prompt", "tool"], Query()] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Audit log of admin writes."""
    items, total = await service.list_audit(
        entity_type=entity_type or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        gateway,
        user,
        "audit.html",
        {
            "active": "audit",
            "entries": items,
            "total": total,
            "entity_type": entity_type,
            **paging(page, total),
        },
    )
