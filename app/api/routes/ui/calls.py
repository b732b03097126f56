"""Admin UI call log pages: the filtered list and one call as a conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.api.auth import AdminUser
from app.api.deps import GatewayDep
from app.api.routes.common import CallServiceDep
from app.api.routes.ui.common import PAGE_SIZE, not_found, paging, render
from app.services.admin.calls import CallFilter
from app.services.admin.errors import NotFound
from app.services.domain import TurnStatus

router = APIRouter(prefix="/ui", include_in_schema=False)


def _parse_date(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@router.get("/calls", response_class=HTMLResponse, response_model=None)
async def calls_list(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: CallServiceDep,
    status_filter: Annotated[TurnStatus | Literal[""], Query(alias="status")] = "",
    caller_id: Annotated[str, Query(max_length=80)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    source: Annotated[Literal["", "call", "chat"], Query()] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Call list with filters."""
    filters = CallFilter(
        status=status_filter or None,
        caller_id=caller_id or None,
        since=_parse_date(since),
        until=_parse_date(until),
        source=source or None,
    )
    items, total = await service.list_calls(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    query = {
        "status": status_filter,
        "caller_id": caller_id,
        "since": since,
        "until": until,
        "source": source,
    }
    return render(
        request,
        gateway,
        user,
        "calls.html",
        {
            "active": "calls",
            "calls": items,
            "total": total,
            "filters": query,
            "query": urlencode({k: v for k, v in query.items() if v}),
            "statuses": [s.value for s in TurnStatus],
            **paging(page, total),
        },
    )


@router.get("/calls/{call_id}", response_class=HTMLResponse, response_model=None)
async def call_detail(
    call_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: CallServiceDep
) -> HTMLResponse:
    """One call as a conversation."""
    try:
        call = await service.get_call(call_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    return render(request, gateway, user, "call_detail.html", {"active": "calls", "call": call})
