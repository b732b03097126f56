"""Call log: one `Call` per channel (or chat conversation), one `Turn` per agent turn."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow


class Call(Base):
    """A channel that entered our Stasis application, or an admin chat session.

    `channel_id` is the ARI channel id (None for chat); `uniqueid` is the
    conversation key (UNIQUEID).
    """

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(10), default="call")
    channel_id: Mapped[str | None] = mapped_column(String(150), index=True, nullable=True)
    uniqueid: Mapped[str] = mapped_column(String(150), index=True)
    caller_id_number: Mapped[str | None] = mapped_column(String(80), nullable=True)
    caller_id_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    prompt_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str | None] = mapped_column(String(20), index=True, nullable=True)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    turns: Mapped[list[Turn]] = relationship(
        back_populates="call", order_by="Turn.id", cascade="all, delete-orphan", lazy="selectin"
    )


class Turn(Base):
    """One agent turn: what the caller said, what the agent answered, and how."""

    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    user_input: Mapped[str] = mapped_column(Text, default="")
    response: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    llm_latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    token_usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A voice turn's timeline (``mode``, ``interrupted``, ``heard``, latencies in ms, and on
    #: the last turn ``end_reason``, ``end_status``, ``dtmf``); None for a text turn.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    call: Mapped[Call] = relationship(back_populates="turns")
