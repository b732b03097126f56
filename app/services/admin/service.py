"""Admin operations: prompt and tool CRUD, call-log queries, and the audit log.

Every write is validated here (routes and the web UI share the rules), recorded in
`audit_log`, bumps the entity's `version` (the agent cache keys on it) and calls
`on_change` so the catalog forgets what it cached.

Secret header values (see `app.core.security.is_secret_header`) are stored encrypted
with the catalog's `SecretBox`, never returned, and kept when an update does not
send them again.

Nothing here imports FastAPI: errors are the exceptions below, which `app.api.errors`
maps to HTTP answers.
"""

from __future__ import annotations

import asyncio
import string
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from sqlalchemy import Select, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import __version__
from app.core.security import MASK, SecretBox, is_secret_header
from app.models import AuditEntry, Call, Prompt, Tool, Turn
from app.schemas import (
    AriStatusRead,
    AuditRead,
    CallDetail,
    CallRead,
    ComponentStatus,
    PromptCreate,
    PromptRead,
    PromptUpdate,
    ProviderStatus,
    ReadinessRead,
    StatusRead,
    ToolCallRead,
    ToolCreate,
    ToolRead,
    ToolUpdate,
    TurnRead,
)
from app.services.agent.catalog import tool_spec_from_row
from app.services.domain import ToolSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.services.gateway import GatewayState
    from app.services.telephony.event_source import AriEventStream

#: Placeholders every tool may use besides its own parameters (from `CallContext`).
CONTEXT_PLACEHOLDERS = frozenset({"uniqueid", "channel_id", "caller_id_number", "caller_id_name"})
_HEADER_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


# --- Errors -----------------------------------------------------------------------------


class AdminError(Exception):
    """Base of the admin service errors.

    Attributes:
        field: dotted path of the offending field, or None.
        message: readable explanation, safe to show to an admin.
    """

    code = "admin_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        """Keep the message and the field."""
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(AdminError):
    """A field holds a value the gateway cannot use (HTTP 422)."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        """Name the field first, as in `ValidationFailed("url", "must be http(s)")`."""
        super().__init__(message, field)


class NameConflict(AdminError):
    """Another entity already has this name (HTTP 409)."""

    code = "name_conflict"

    def __init__(self, entity: str, name: str) -> None:
        """Describe the clash of `name` among `entity` rows."""
        super().__init__(f"a {entity} named {name!r} already exists", "name")


class NotFound(AdminError):
    """No entity with this id (HTTP 404)."""

    code = "not_found"

    def __init__(self, entity: str, key: object) -> None:
        """Describe the missing `entity` with id or name `key`."""
        super().__init__(f"{entity} {key} not found")


# --- Validation helpers (pure) ----------------------------------------------------------


def url_placeholders(url: str) -> list[str]:
    """The `{placeholder}` names in a URL template, in order.

    Raises:
        ValidationFailed: the braces do not pair up (field ``url``).
    """
    try:
        parsed = list(string.Formatter().parse(url))
    except ValueError as exc:
        raise ValidationFailed("url", f"invalid placeholder syntax: {exc}") from exc
    names: list[str] = []
    for _literal, name, _spec, _conv in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValidationFailed("url", f"placeholder {{{name}}} is not a simple name")
        names.append(name)
    return names


def validate_parameters_schema(schema: Mapping[str, Any]) -> None:
    """Check a tool's `parameters` against its JSON Schema meta-schema.

    The draft comes from ``$schema`` when present (else 2020-12). Functions take
    named arguments, so the schema must describe an object.

    Raises:
        ValidationFailed: not a valid schema, or not an object schema (field ``parameters``).
    """
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        at = f" at /{where}" if where else ""
        raise ValidationFailed("parameters", f"not a valid JSON Schema{at}: {exc.message}") from exc
    if schema.get("type", "object") != "object":
        raise ValidationFailed("parameters", 'must be an object schema ("type": "object")')
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ValidationFailed("parameters", '"properties" must be an object')


def validate_url(url: str, parameters: Mapping[str, Any]) -> None:
    """Check the tool URL: http(s), a host, and placeholders that name parameters.

    Raises:
        ValidationFailed: field ``url``.
    """
    placeholders = url_placeholders(url)
    probe = string.Formatter().vformat(url, (), _Probe()) if placeholders else url
    parts = urlsplit(probe)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed("url", "must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValidationFailed("url", "must name a host")
    properties = parameters.get("properties") or {}
    for name in placeholders:
        if name not in properties and name not in CONTEXT_PLACEHOLDERS:
            allowed = ", ".join(sorted(set(properties) | CONTEXT_PLACEHOLDERS))
            raise ValidationFailed(
                "url", f"placeholder {{{name}}} is not a parameter (use one of: {allowed})"
            )


class _Probe(dict[str, str]):
    """Fills every placeholder with ``x`` so the URL can be parsed."""

    def __missing__(self, key: str) -> str:
        return "x"


def validate_headers(headers: Mapping[str, Any]) -> None:
    """Header names must be HTTP tokens and values single-line strings.

    Raises:
        ValidationFailed: field ``headers.<name>``.
    """
    for name, value in headers.items():
        field = f"headers.{name}"
        if not name or not set(name) <= _HEADER_NAME_CHARS:
            raise ValidationFailed(field, "header name must be an HTTP token (letters, digits, -)")
        if not isinstance(value, str):
            raise ValidationFailed(field, "header value must be a string")
        if "\r" in value or "\n" in value:
            raise ValidationFailed(field, "header value must be on one line")


def tool_secret_names(headers: Mapping[str, Any], flagged: Sequence[str]) -> list[str]:
    """Header names whose values are secret: credential-looking or flagged by the admin."""
    lowered = {f.lower() for f in flagged}
    return sorted(h for h in headers if is_secret_header(h) or h.lower() in lowered)


def _mask_headers(headers: Mapping[str, str], secret: Sequence[str]) -> dict[str, str]:
    return {k: (MASK if k in secret else v) for k, v in headers.items()}


# --- Read models ------------------------------------------------------------------------


def prompt_read(prompt: Prompt) -> PromptRead:
    """The API view of a prompt row."""
    return PromptRead(
        id=prompt.id,
        name=prompt.name,
        content=prompt.content,
        metadata=prompt.meta,
        is_default=prompt.is_default,
        fallback_text=prompt.fallback_text,
        tools=[t.name for t in prompt.tools],
        version=prompt.version,
        created_at=prompt.created_at,
        updated_at=prompt.updated_at,
    )


def tool_read(tool: Tool) -> ToolRead:
    """The API view of a tool row, secret header values masked."""
    secret = tool_secret_names(tool.headers or {}, tool.secret_headers or [])
    return ToolRead(
        id=tool.id,
        name=tool.name,
        description=tool.description,
        parameters=tool.parameters or {},
        url=tool.url,
        method=tool.method,
        headers=_mask_headers(tool.headers or {}, secret),
        secret_headers=secret,
        args_location=tool.args_location,
        body_template=tool.body_template,
        timeout_seconds=tool.timeout_seconds,
        enabled=tool.enabled,
        version=tool.version,
        created_at=tool.created_at,
        updated_at=tool.updated_at,
    )


def turn_read(turn: Turn) -> TurnRead:
    """The API view of a turn."""
    calls = [
        ToolCallRead.model_validate(c if isinstance(c, dict) else {"result": c})
        for c in (turn.tool_calls or [])
    ]
    return TurnRead(
        id=turn.id,
        user_input=turn.user_input,
        response=turn.response,
        status=turn.status,
        error=turn.error,
        model=turn.model,
        tool_calls=calls,
        latency_ms=turn.latency_ms,
        llm_latency_ms=turn.llm_latency_ms,
        token_usage=turn.token_usage,
        degraded=turn.degraded,
        created_at=turn.created_at,
    )


def call_read(call: Call, turn_count: int) -> CallRead:
    """The API view of a call without its turns."""
    return CallRead(
        id=call.id,
        source=call.source,
        channel_id=call.channel_id,
        uniqueid=call.uniqueid,
        caller_id_number=call.caller_id_number,
        caller_id_name=call.caller_id_name,
        prompt_name=call.prompt_name,
        model=call.model,
        status=call.status,
        degraded=call.degraded,
        started_at=call.started_at,
        ended_at=call.ended_at,
        turn_count=turn_count,
    )


def call_detail(call: Call) -> CallDetail:
    """The API view of a call with its turns."""
    base = call_read(call, len(call.turns))
    return CallDetail(**base.model_dump(), turns=[turn_read(t) for t in call.turns])


def audit_read(entry: AuditEntry) -> AuditRead:
    """The API view of an audit entry."""
    return AuditRead.model_validate(entry, from_attributes=True)


# --- Queries ----------------------------------------------------------------------------


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


async def _page(session: AsyncSession, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = (await session.scalars(query.limit(limit).offset(offset))).all()
    return list(rows), int(total or 0)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- The service ------------------------------------------------------------------------


class AdminService:
    """Prompt/tool CRUD with validation, audit and secret handling; call-log reads.

    Args:
        session: the request's database session; the service commits it.
        secret_box: encrypts secret header values at rest (`Catalog.secret_box`).
        actor: who is acting (the admin user name), written to the audit log.
        on_change: called after every committed prompt/tool write (`Catalog.invalidate`).
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
        self.session = session
        self.secret_box = secret_box
        self.actor = actor
        self._on_change = on_change

    # -- shared --------------------------------------------------------------------------

    async def _commit(self, entity: str, name: str) -> None:
        try:
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise NameConflict(entity, name) from exc
        if self._on_change is not None:
            self._on_change()

    def _audit(
        self,
        action: str,
        entity_type: str,
        entity_id: int | None,
        entity_name: str | None,
        changes: dict[str, Any],
    ) -> None:
        self.session.add(
            AuditEntry(
                actor=self.actor,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                entity_name=entity_name,
                changes=changes,
            )
        )

    @staticmethod
    def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
        return {k: [old.get(k), new.get(k)] for k in new if old.get(k) != new.get(k)}

    # -- prompts -------------------------------------------------------------------------

    async def list_prompts(
        self, *, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[PromptRead], int]:
        """Prompts ordered by name; `name` filters by case-insensitive substring."""
        query = select(Prompt).order_by(Prompt.name)
        if name:
            query = query.where(func.lower(Prompt.name).like(f"%{_escape_like(name.lower())}%", escape="\\"))
        rows, total = await _page(self.session, query, limit, offset)
        return [prompt_read(p) for p in rows], total

    async def _prompt(self, prompt_id: int) -> Prompt:
        prompt = await self.session.get(Prompt, prompt_id)
        if prompt is None:
            raise NotFound("prompt", prompt_id)
        return prompt

    async def get_prompt(self, prompt_id: int) -> PromptRead:
        """One prompt.

        Raises:
            NotFound: no such id.
        """
        return prompt_read(await self._prompt(prompt_id))

    async def get_prompt_by_name(self, name: str) -> PromptRead | None:
        """The prompt called `name`, or None."""
        prompt = await self.session.scalar(select(Prompt).where(Prompt.name == name))
        return prompt_read(prompt) if prompt is not None else None

    async def _tools_named(self, names: Sequence[str]) -> list[Tool]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        found = {t.name: t for t in await self.session.scalars(select(Tool).where(Tool.name.in_(wanted)))}
        missing = [n for n in wanted if n not in found]
        if missing:
            raise ValidationFailed("tools", f"unknown tool(s): {', '.join(missing)}")
        return [found[n] for n in wanted]

    async def _check_prompt_name(self, name: str, own_id: int | None) -> None:
        other = await self.session.scalar(select(Prompt.id).where(Prompt.name == name))
        if other is not None and other != own_id:
            raise NameConflict("prompt", name)

    @staticmethod
    def _prompt_snapshot(prompt: Prompt) -> dict[str, Any]:
        return {
            "name": prompt.name,
            "content": prompt.content,
            "metadata": prompt.meta,
            "is_default": prompt.is_default,
            "fallback_text": prompt.fallback_text,
            "tools": [t.name for t in prompt.tools],
        }

    async def _clear_other_defaults(self, keep_id: int | None) -> None:
        query = update(Prompt).where(Prompt.is_default.is_(True))
        if keep_id is not None:
            query = query.where(Prompt.id != keep_id)
        await self.session.execute(query.values(is_default=False))

    async def create_prompt(self, data: PromptCreate) -> PromptRead:
        """Create a prompt (and make it the default when `is_default`).

        Raises:
            NameConflict: the name is taken.
            ValidationFailed: an unknown tool name.
        """
        await self._check_prompt_name(data.name, None)
        tools = await self._tools_named(data.tools)
        if data.is_default:
            await self._clear_other_defaults(None)
        prompt = Prompt(
            name=data.name,
            content=data.content,
            meta=data.metadata,
            is_default=data.is_default,
            fallback_text=data.fallback_text,
            version=1,
            tools=tools,
        )
        self.session.add(prompt)
        await self.session.flush()
        snapshot = self._prompt_snapshot(prompt)
        self._audit("create", "prompt", prompt.id, prompt.name, self._diff({}, snapshot))
        await self._commit("prompt", data.name)
        return prompt_read(prompt)

    async def update_prompt(self, prompt_id: int, data: PromptCreate | PromptUpdate) -> PromptRead:
        """Replace (`PromptCreate`) or patch (`PromptUpdate`, only fields sent) a prompt.

        Raises:
            NotFound: no such id.
            NameConflict: the new name is taken.
            ValidationFailed: an unknown tool name.
        """
        prompt = await self._prompt(prompt_id)
        before = self._prompt_snapshot(prompt)
        if isinstance(data, PromptCreate):
            fields: dict[str, Any] = data.model_dump()
        else:
            fields = data.model_dump(exclude_unset=True)
            # null for a non-nullable field means "leave as is"
            for key in ("name", "content", "is_default", "tools"):
                if fields.get(key, 0) is None:
                    del fields[key]
        if "name" in fields:
            await self._check_prompt_name(fields["name"], prompt.id)
            prompt.name = fields["name"]
        if "content" in fields:
            prompt.content = fields["content"]
        if "metadata" in fields:
            prompt.meta = fields["metadata"]
        if "fallback_text" in fields:
            prompt.fallback_text = fields["fallback_text"]
        if "tools" in fields:
            prompt.tools = await self._tools_named(fields["tools"])
        if "is_default" in fields:
            if fields["is_default"] and not prompt.is_default:
                await self._clear_other_defaults(prompt.id)
            prompt.is_default = fields["is_default"]
        prompt.version = (prompt.version or 0) + 1
        changes = self._diff(before, self._prompt_snapshot(prompt))
        self._audit("update", "prompt", prompt.id, prompt.name, changes)
        await self._commit("prompt", prompt.name)
        await self.session.refresh(prompt)
        return prompt_read(prompt)

    async def set_default_prompt(self, prompt_id: int) -> PromptRead:
        """Make this prompt the default (the one used without `AI_PROMPT_NAME`).

        Raises:
            NotFound: no such id.
        """
        prompt = await self._prompt(prompt_id)
        previous = await self.session.scalar(
            select(Prompt.name).where(Prompt.is_default.is_(True), Prompt.id != prompt.id)
        )
        await self._clear_other_defaults(prompt.id)
        changed = not prompt.is_default
        prompt.is_default = True
        if changed:
            prompt.version = (prompt.version or 0) + 1
        self._audit(
            "set_default",
            "prompt",
            prompt.id,
            prompt.name,
            {"default_prompt": [previous, prompt.name]} if changed else {},
        )
        await self._commit("prompt", prompt.name)
        await self.session.refresh(prompt)
        return prompt_read(prompt)

    async def delete_prompt(self, prompt_id: int) -> None:
        """Delete a prompt.

        Raises:
            NotFound: no such id.
        """
        prompt = await self._prompt(prompt_id)
        snapshot = self._prompt_snapshot(prompt)
        self._audit("delete", "prompt", prompt.id, prompt.name, {k: [v, None] for k, v in snapshot.items()})
        await self.session.delete(prompt)
        await self._commit("prompt", prompt.name)

    # -- tools ---------------------------------------------------------------------------

    async def list_tools(
        self, *, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[ToolRead], int]:
        """Tools ordered by name; `name` filters by case-insensitive substring."""
        query = select(Tool).order_by(Tool.name)
        if name:
            query = query.where(func.lower(Tool.name).like(f"%{_escape_like(name.lower())}%", escape="\\"))
        rows, total = await _page(self.session, query, limit, offset)
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
        changes = self._public_changes(self._diff({}, self._tool_snapshot(tool)))
        self._audit("create", "tool", tool.id, tool.name, changes)
        await self._commit("tool", data.name)
        return tool_read(tool)

    async def update_tool(self, tool_id: int, data: ToolCreate | ToolUpdate) -> ToolRead:
        """Replace (`ToolCreate`) or patch (`ToolUpdate`, only fields sent) a tool.

        Secret header values not sent again (or sent masked) are kept.

        Raises:
            NotFound: no such id.
            NameConflict: the new name is taken.
            ValidationFailed: bad schema, URL, placeholder or header.
        """
        tool = await self._tool(tool_id)
        before = self._tool_snapshot(tool)
        current: dict[str, Any] = {
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
        if isinstance(data, ToolCreate):
            sent = data.model_dump()
        else:
            sent = data.model_dump(exclude_unset=True)
            for key in list(sent):
                if sent[key] is None and key != "body_template":
                    del sent[key]
        merged = {**current, **sent}
        self._validate_tool(merged)
        if merged["name"] != tool.name:
            await self._check_tool_name(merged["name"], tool.id)
        stored_secret = tool_secret_names(current["headers"], current["secret_headers"])
        headers, secret = self._merge_headers(
            current["headers"], stored_secret, merged["headers"], merged["secret_headers"]
        )
        tool.name = merged["name"]
        tool.description = merged["description"]
        tool.parameters = merged["parameters"]
        tool.url = merged["url"]
        tool.method = merged["method"]
        tool.headers = headers
        tool.secret_headers = secret
        tool.args_location = merged["args_location"]
        tool.body_template = merged["body_template"]
        tool.timeout_seconds = merged["timeout_seconds"]
        tool.enabled = merged["enabled"]
        tool.version = (tool.version or 0) + 1
        changes = self._public_changes(self._diff(before, self._tool_snapshot(tool)))
        self._audit("update", "tool", tool.id, tool.name, changes)
        await self._commit("tool", tool.name)
        await self.session.refresh(tool)
        return tool_read(tool)

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

    # -- call log ------------------------------------------------------------------------

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
            pattern = f"%{_escape_like(filters.caller_id.lower())}%"
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
        calls, total = await _page(self.session, query, limit, offset)
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

    # -- audit ---------------------------------------------------------------------------

    async def list_audit(
        self,
        *,
        entity_type: str | None = None,
        entity_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AuditRead], int]:
        """Audit entries, newest first."""
        query = select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        if entity_type:
            query = query.where(AuditEntry.entity_type == entity_type)
        if entity_id is not None:
            query = query.where(AuditEntry.entity_id == entity_id)
        rows, total = await _page(self.session, query, limit, offset)
        return [audit_read(a) for a in rows], total


# --- Status -----------------------------------------------------------------------------

#: Longest wait for one reachability probe, in seconds (health checks must be cheap).
PROBE_TIMEOUT_SECONDS = 1.0


async def _probe(check: Callable[[], Awaitable[object]]) -> ComponentStatus:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return ComponentStatus(ok=False, error=f"no answer within {PROBE_TIMEOUT_SECONDS:g} s")
    except Exception as exc:  # any failure means "not reachable"; report its type only
        return ComponentStatus(ok=False, error=type(exc).__name__)
    return ComponentStatus(ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 1))


async def check_database(engine: AsyncEngine) -> ComponentStatus:
    """Whether the database answers ``SELECT 1``, and how fast (ms)."""

    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return await _probe(ping)


async def check_redis(redis: Redis) -> ComponentStatus:
    """Whether Redis answers ``PING``, and how fast (ms)."""

    async def ping() -> object:
        return await redis.ping()

    return await _probe(ping)


def ari_status(events: AriEventStream | None) -> AriStatusRead:
    """The ARI event stream state (``disabled`` when ARI is off)."""
    if events is None:
        return AriStatusRead(enabled=False, state="disabled")
    return AriStatusRead.model_validate({"enabled": True, **events.status()})


async def gateway_status(gateway: GatewayState) -> StatusRead:
    """ARI, Redis, database, LLM providers (key present or not, never the key) and version."""
    settings = gateway.settings
    database, redis = await asyncio.gather(check_database(gateway.engine), check_redis(gateway.redis))
    providers = [
        ProviderStatus(
            name="openai",
            key_present=settings.provider_key("openai") is not None,
            model=settings.openai_model_name,
            custom_base_url=bool(settings.openai_base_url),
        ),
        ProviderStatus(
            name="gemini",
            key_present=settings.provider_key("gemini") is not None,
            model=settings.gemini_model_name,
            custom_base_url=bool(settings.gemini_base_url),
        ),
    ]
    return StatusRead(
        version=__version__,
        ari=ari_status(gateway.ari_events),
        redis=redis,
        database=database,
        providers=providers,
        default_model=settings.default_ai_model,
        fallback_model=settings.fallback_ai_model,
    )


async def readiness(gateway: GatewayState) -> ReadinessRead:
    """Ready when both the database and Redis answer."""
    database, redis = await asyncio.gather(check_database(gateway.engine), check_redis(gateway.redis))
    ready = database.ok and redis.ok
    return ReadinessRead(status="ready" if ready else "not_ready", database=database, redis=redis)
