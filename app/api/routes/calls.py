"""`/api/v1/calls`: the call log (phone calls and admin chats) with their turns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.routes.common import CallId, CallServiceDep, Limit, Offset, errors
from app.schemas import CallDetail, CallRead, Page
from app.services.admin.calls import CallFilter
from app.services.domain import TurnStatus

router = APIRouter(prefix="/api/v1/calls", tags=["calls"])


@router.get("", response_model=Page[CallRead], responses=errors(422))
async def list_calls(
    service: CallServiceDep,
    status: Annotated[TurnStatus | None, Query(description="The call's last `AI_STATUS`.")] = None,
    caller_id: Annotated[
        str | None, Query(max_length=80, description="Substring of caller ID number or name.")
    ] = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Started at or before (ISO 8601).")] = None,
    source: Literal["call", "chat"] | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CallRead]:
    """List recent calls, newest first."""
    filters = CallFilter(status=status, caller_id=caller_id, since=since, until=until, source=source)
    items, total = await service.list_calls(filters, limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{call_id}", response_model=CallDetail, responses=errors(404, 422))
async def get_call(call_id: CallId, service: CallServiceDep) -> CallDetail:
    """Get one call with its turns and tool calls."""
    return await service.get_call(call_id)
