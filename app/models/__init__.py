"""SQLAlchemy 2.x ORM models. Import from here so every table is registered."""

from app.models.audit import AuditEntry
from app.models.base import Base
from app.models.call import Call, Turn
from app.models.prompt import Prompt, prompt_tools
from app.models.tool import Tool

__all__ = ["AuditEntry", "Base", "Call", "Prompt", "Tool", "Turn", "prompt_tools"]
