"""`Prompt`: the system prompt an agent runs with, chosen by `AI_PROMPT_NAME`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, TimestampMixin

if TYPE_CHECKING:
    from app.models.tool import Tool

prompt_tools = Table(
    "prompt_tools",
    Base.metadata,
    Column("prompt_id", ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True),
    Column("tool_id", ForeignKey("tools.id", ondelete="CASCADE"), primary_key=True),
)


class Prompt(TimestampMixin, Base):
    """A named system prompt, its fallback text and the HTTP tools its agent may call.

    `version` grows on every change; the agent cache keys on it.
    """

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    content: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: Voice-conversation settings (`app.schemas.PromptVoice` as JSON); None = the defaults.
    voice: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    tools: Mapped[list[Tool]] = relationship(secondary=prompt_tools, lazy="selectin", order_by="Tool.name")
