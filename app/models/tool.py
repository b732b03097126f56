"""`Tool`: an HTTP API the agent may call, defined by an admin in the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TimestampMixin


class Tool(TimestampMixin, Base):
    """An HTTP tool.

    `parameters` is a JSON Schema object for the model's arguments. `url`, `headers`
    and `body_template` may hold `{placeholders}` filled from the arguments and from
    the call context (`{caller_id_number}`, `{uniqueid}`, ...). `args_location` says
    where arguments not used by a path placeholder go: ``query``, ``json`` or ``auto``
    (query for GET/DELETE, JSON body otherwise). Header values named in
    `secret_headers` are stored encrypted (see `app.core.security`).
    """

    __tablename__ = "tools"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    url: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10), default="GET")
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    secret_headers: Mapped[list[str]] = mapped_column(JSON, default=list)
    args_location: Mapped[str] = mapped_column(String(10), default="auto")
    body_template: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=5.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
