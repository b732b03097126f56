"""HTTP tools: CRUD with validation, secret header values encrypted at rest, audit entries.

Secret header values (see `app.core.security.is_secret_header`) are stored encrypted
with the catalog's `SecretBox`, never returned, and kept when an update does not
send them again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import MASK, SecretBox
from app.models import Tool
from app.schemas import ToolCreate, ToolRead, ToolUpdate
from app.services.admin.base import AdminWriter, diff, escape_like, page
from app.services.admin.errors import NameConflict, NotFound, ValidationFailed
from app.services.admin.serializers import tool_read
from app.services.admin.validation import (
    tool_secret_names,
    validate_headers,
    validate_parameters_schema,
    validate_url,
)
from app.services.agent.catalog import tool_spec_from_row
from app.services.agent.host_policy import url_host_refusal
from app.services.domain import ToolSpec


class ToolService(AdminWriter):
    """Tool CRUD with validation, audit and secret handling.

    Args:
        session: the request's database session; the service commits it.
        secret_box: encrypts secret header values at rest (`Catalog.secret_box`).
        actor: who is acting (the admin user name), written to the audit log.
        on_change: called after every committed write (`Catalog.invalidate`).
    """

    def __init__(
        self,
        session: AsyncSession,
        *,
        secret_box: SecretBox,
        actor: str = "system",
        on_change: Callable[[], object] | None = None,
    ) -> None:
        """Keep the collaborators."""
        super().__init__(session, actor=actor, on_change=on_change)
        self.secret_box = secret_box

    async def list_tools(
        self, *, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[ToolRead], int]:
        """Tools ordered by name; `name` filters by case-insensitive substring."""
        query = select(Tool).order_by(Tool.name)
        if name:
            query = query.where(func.lower(Tool.name).like(f"%{escape_like(name.lower())}%", escape="\\"))
        rows, total = await page(self.session, query, limit, offset)
        return [tool_read(t) for t in rows], total

    async def all_tool_names(self) -> list[str]:
        """Every tool name, sorted (for pickers)."""
        return list(await self.session.scalars(select(Tool.name).order_by(Tool.name)))

    async def _tool(self, tool_id: int) -> Tool:
        tool = await self.session.get(Tool, tool_id)
        if tool is None:
            raise NotFound("tool", tool_id)
        return tool

    async def get_tool(self, tool_id: int) -> ToolRead:
        """One tool, secrets masked.

        Raises:
            NotFound: no such id.
        """
        return tool_read(await self._tool(tool_id))

    async def tool_spec(self, tool_id: int) -> ToolSpec:
        """The executable snapshot of a tool (secret header values decrypted), as calls see it.

        Raises:
            NotFound: no such id.
        """
        return tool_spec_from_row(await self._tool(tool_id), self.secret_box)

    async def _check_tool_name(self, name: str, own_id: int | None) -> None:
        other = await self.session.scalar(select(Tool.id).where(Tool.name == name))
        if other is not None and other != own_id:
            raise NameConflict("tool", name)

    @staticmethod
    def _validate_tool(fields: Mapping[str, Any]) -> None:
        parameters = fields["parameters"]
        validate_parameters_schema(parameters)
        validate_url(fields["url"], parameters)
        if (refusal := url_host_refusal(fields["url"])) is not None:
            raise ValidationFailed("url", refusal)
        validate_headers(fields["headers"])
        for name in fields["secret_headers"]:
            if not isinstance(name, str) or not name:
                raise ValidationFailed("secret_headers", "must be a list of header names")

    def _merge_headers(
        self,
        stored: Mapping[str, str],
        stored_secret: Sequence[str],
        sent: Mapping[str, str],
        flagged: Sequence[str],
    ) -> tuple[dict[str, str], list[str]]:
        """Headers to store (secret values encrypted) from what was sent.

        A stored secret header that is omitted or sent as the mask keeps its value;
        one sent as an empty string is removed.
        """
        result: dict[str, str] = {}
        for key, value in sent.items():
            if value == MASK:
                if key not in stored:
                    raise ValidationFailed(f"headers.{key}", "no stored value to keep; send the value")
                result[key] = stored[key]
            elif value == "" and key in stored_secret:
                continue
            else:
                result[key] = value
        for key in stored_secret:
            if key not in sent and key in stored:
                result[key] = stored[key]
        secret = tool_secret_names(result, flagged)
        for key, value in result.items():
            unchanged = key in stored_secret and stored.get(key) == value
            if key in secret and not unchanged:
                result[key] = self.secret_box.encrypt(value)
            elif key not in secret and unchanged:
                # no longer secret: store the plain value again
                result[key] = self.secret_box.decrypt(value)
        return result, secret

    @staticmethod
    def _tool_snapshot(tool: Tool) -> dict[str, Any]:
        secret = tool_secret_names(tool.headers or {}, tool.secret_headers or [])
        return {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
            "url": tool.url,
            "method": tool.method,
            # encrypted values differ on each write; compare masks and plain values only
            "headers": {
                k: (f"{MASK}#{v[-12:]}" if k in secret else v) for k, v in (tool.headers or {}).items()
            },
            "secret_headers": list(tool.secret_headers or []),
            "args_location": tool.args_location,
            "body_template": tool.body_template,
            "timeout_seconds": tool.timeout_seconds,
            "enabled": tool.enabled,
        }

    @staticmethod
    def _public_changes(changes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Replace the per-secret fingerprints in header diffs by the plain mask."""
        if "headers" in changes:
            changes["headers"] = [
                {k: (MASK if isinstance(v, str) and v.startswith(MASK) else v) for k, v in side.items()}
                if isinstance(side, dict)
                else side
                for side in changes["headers"]
            ]
        return changes

    async def create_tool(self, data: ToolCreate) -> ToolRead:
        """Create a tool.

        Raises:
            NameConflict: the name is taken.
            ValidationFailed: bad schema, URL, placeholder or header.
        """
        fields = data.model_dump()
        self._validate_tool(fields)
        await self._check_tool_name(data.name, None)
        for key, value in data.headers.items():
            if value == MASK:
                raise ValidationFailed(f"headers.{key}", "send the real value, not the mask")
        headers, secret = self._merge_headers({}, [], data.headers, data.secret_headers)
        tool = Tool(
            name=data.name,
            description=data.description,
            parameters=data.parameters,
            url=data.url,
            method=data.method,
            headers=headers,
            secret_headers=secret,
            args_location=data.args_location,
            body_template=data.body_template,
            timeout_seconds=data.timeout_seconds,
            enabled=data.enabled,
            version=1,
        )
        self.session.add(tool)
        await self.session.flush()
        changes = self._public_changes(diff({}, self._tool_snapshot(tool)))
        self._audit("create", "tool", tool.id, tool.name, changes)
        await self._commit("tool", data.name)
        return tool_read(tool)

    async def update_tool(self, tool_id: int, data: ToolCreate | ToolUpdate) -> ToolRead:
        """Replace (`ToolCreate`) or patch (`ToolUpdate`, only fields sent) a tool.

        Secret header values not sent again (or sent masked) are kept. An update that
        changes nothing (``{}``, or the current values) writes nothing: the version
        stays and no audit entry is added.

        Raises:
            NotFound: no such id.
            NameConflict: the new name is taken.
            ValidationFailed: bad schema, URL, placeholder or header.
        """
        tool = await self._tool(tool_id)
        before = self._tool_snapshot(tool)
        current = self._fields(tool)
        sent = data.model_dump() if isinstance(data, ToolCreate) else data.model_dump(exclude_unset=True)
        merged = {**current, **sent}
        self._validate_tool(merged)
        if merged["name"] != tool.name:
            await self._check_tool_name(merged["name"], tool.id)
        stored_secret = tool_secret_names(current["headers"], current["secret_headers"])
        headers, secret = self._merge_headers(
            current["headers"], stored_secret, merged["headers"], merged["secret_headers"]
        )
        for key in current:
            setattr(tool, key, merged[key])
        tool.headers = headers
        tool.secret_headers = secret
        changes = self._public_changes(diff(before, self._tool_snapshot(tool)))
        if not changes:
            await self.session.rollback()
            await self.session.refresh(tool)
            return tool_read(tool)
        tool.version = (tool.version or 0) + 1
        self._audit("update", "tool", tool.id, tool.name, changes)
        await self._commit("tool", tool.name)
        await self.session.refresh(tool)
        return tool_read(tool)

    @staticmethod
    def _fields(tool: Tool) -> dict[str, Any]:
        """The stored values of the fields an update may send (headers as stored)."""
        return {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters or {},
            "url": tool.url,
            "method": tool.method,
            "headers": dict(tool.headers or {}),
            "secret_headers": list(tool.secret_headers or []),
            "args_location": tool.args_location,
            "body_template": tool.body_template,
            "timeout_seconds": tool.timeout_seconds,
            "enabled": tool.enabled,
        }

    async def delete_tool(self, tool_id: int) -> None:
        """Delete a tool (prompts that used it lose it).

        Raises:
            NotFound: no such id.
        """
        tool = await self._tool(tool_id)
        snapshot = self._tool_snapshot(tool)
        changes = self._public_changes({k: [v, None] for k, v in snapshot.items()})
        self._audit("delete", "tool", tool.id, tool.name, changes)
        await self.session.delete(tool)
        await self._commit("tool", tool.name)
