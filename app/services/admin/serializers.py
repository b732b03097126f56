"""API views (`*Read` schemas) of the admin's database rows."""

from __future__ import annotations

from app.models import AuditEntry, Call, Prompt, Tool, Turn
from app.schemas import AuditRead, CallDetail, CallRead, PromptRead, ToolCallRead, ToolRead, TurnRead
from app.services.admin.validation import mask_headers, tool_secret_names
from app.services.admin.voice import read_voice


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
        voice=read_voice(prompt.voice, prompt.name),
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
        headers=mask_headers(tool.headers or {}, secret),
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
        details=turn.details,
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
