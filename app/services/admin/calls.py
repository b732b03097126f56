"""The call log as the admin sees it: phone calls and admin chats with their turns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Call, Turn
from app.schemas import CallDetail, CallRead
from app.services.admin.base import escape_like, page
from app.services.admin.errors import NotFound
from app.services.admin.serializers import call_detail, call_read


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Filters of the call list. Dates are inclusive bounds on `started_at`.

    Attributes:
        caller_id: substring of the caller ID number or name.
    """

    status: str | None = None
    caller_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None


class CallService:
    """Reads of the call log.

    Args:
        session: the request's database session.
    """

    def __init__(self, session: AsyncSession) -> None:
        """Keep the session."""
        self.session = session

    async def list_calls(
        self, filters: CallFilter, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[CallRead], int]:
        """Calls, newest first, with their turn counts."""
        query = select(Call).order_by(Call.started_at.desc(), Call.id.desc())
        if filters.status:
            query = query.where(Call.status == filters.status)
        if filters.source:
            query = query.where(Call.source == filters.source)
        if filters.caller_id:
            pattern = f"%{escape_like(filters.caller_id.lower())}%"
            query = query.where(
                or_(
                    func.lower(Call.caller_id_number).like(pattern, escape="\\"),
                    func.lower(Call.caller_id_name).like(pattern, escape="\\"),
                )
            )
        if filters.since is not None:
            query = query.where(Call.started_at >= filters.since)
        if filters.until is not None:
            query = query.where(Call.started_at <= filters.until)
        calls, total = await page(self.session, query, limit, offset)
        counts: dict[int, int] = {}
        if calls:
            rows = await self.session.execute(
                select(Turn.call_id, func.count())
                .where(Turn.call_id.in_([c.id for c in calls]))
                .group_by(Turn.call_id)
            )
            counts = {int(cid): int(n) for cid, n in rows}
        return [call_read(c, counts.get(c.id, 0)) for c in calls], total

    async def get_call(self, call_id: int) -> CallDetail:
        """One call with its turns.

        Raises:
            NotFound: no such id.
        """
        call = await self.session.get(Call, call_id)
        if call is None:
            raise NotFound("call", call_id)
        return call_detail(call)

    async def latest_call_for(self, uniqueid: str, source: str | None = None) -> CallDetail | None:
        """The newest call with this UNIQUEID (a chat's conversation id), with its turns."""
        query = select(Call).where(Call.uniqueid == uniqueid)
        if source:
            query = query.where(Call.source == source)
        call = await self.session.scalar(query.order_by(Call.id.desc()).limit(1))
        if call is None:
            return None
        await self.session.refresh(call, ["turns"])
        return call_detail(call)
