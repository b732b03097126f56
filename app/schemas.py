"""Pydantic v2 schemas of the admin REST API (`/api/v1`).

Naming follows the `XCreate` / `XUpdate` / `XRead` pattern: `XCreate` is the full
body of a create (and of a full update, `PUT`), `XUpdate` is a partial update
(`PATCH`, every field optional), `XRead` is what the API returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

T = TypeVar("T")


def _as_utc(value: datetime) -> datetime:
    """Stored times are UTC; SQLite hands them back without an offset."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


#: A timestamp that always carries its UTC offset (RFC 3339 `date-time`).
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]

#: Text without NUL characters (PostgreSQL cannot store them in text columns).
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]

#: Tool names end up as LLM function names: OpenAI allows ``^[a-zA-Z0-9_-]{1,64}$``.
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
#: Prompt names are used as `AI_PROMPT_NAME` in the dialplan.
PROMPT_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
#: The two patterns above in words, for the admin UI's hints and error messages.
TOOL_NAME_RULE = "1 to 64 characters: letters, digits, - and _ (no spaces)"
PROMPT_NAME_RULE = "1 to 100 characters: letters, digits, - _ . and : (no spaces)"


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "null_not_allowed", "may not be null; leave the field out to keep its value"
        )
    return value


#: A `PATCH` field that may be left out (it is then None) but not sent as null. Pydantic
#: sees only `T` (so the OpenAPI schema shows no null and errors name one branch) and the
#: unvalidated None default; type checkers see `T | None`, which is what the code reads.
if TYPE_CHECKING:
    Patch = Annotated[T | None, ...]
else:
    Patch = Annotated[T, BeforeValidator(_refuse_null)]

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
ArgsLocation = Literal["auto", "query", "json"]


# --- Errors and pagination --------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One error: a stable machine code, a human message, and the offending field."""

    code: str = Field(description="Stable error code, e.g. `validation_error`, `not_found`.")
    message: str = Field(description="Readable explanation.")
    field: str | None = Field(
        default=None, description="Dotted path of the invalid field, e.g. `headers.X-Api-Key`."
    )


class ErrorResponse(BaseModel):
    """The one JSON shape of every error answer."""

    error: ErrorDetail


class Page(BaseModel, Generic[T]):
    """A page of results; `total` counts every match, not just this page."""

    items: list[T]
    total: int = Field(ge=0)
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)


# --- Prompts ----------------------------------------------------------------------------


class PromptCreate(BaseModel):
    """A new prompt, or the full replacement of one (`PUT`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PROMPT_NAME_PATTERN, description="`AI_PROMPT_NAME` value.")
    content: Text = Field(min_length=1, max_length=100_000, description="System prompt text.")
    metadata: dict[str, Any] | None = Field(default=None, description="Free JSON object.")
    is_default: bool = False
    fallback_text: Text | None = Field(default=None, max_length=2000, description="Spoken when a turn fails.")
    tools: list[Text] = Field(default_factory=list, description="Names of the tools it may call.")


class PromptUpdate(BaseModel):
    """A partial prompt update (`PATCH`): only the fields sent change.

    Leave a field out to keep it. ``null`` clears `metadata` and `fallback_text`; on any
    other field it is refused (422), since those fields cannot be empty. A body that
    changes nothing (``{}`` or the current values) answers the prompt unchanged: no new
    version, no audit entry.
    """

    model_config = ConfigDict(extra="forbid")

    # Left out: kept. Null: refused (422), except where the field may be empty.
    name: Patch[Annotated[str, StringConstraints(pattern=PROMPT_NAME_PATTERN)]] = None
    content: Patch[Annotated[Text, StringConstraints(min_length=1, max_length=100_000)]] = None
    metadata: dict[str, Any] | None = None
    is_default: Patch[bool] = None
    fallback_text: Text | None = Field(default=None, max_length=2000)
    tools: Patch[list[Text]] = None


class PromptRead(BaseModel):
    """A stored prompt. `version` grows on every change."""

    id: int
    name: str
    content: str
    metadata: dict[str, Any] | None
    is_default: bool
    fallback_text: str | None
    tools: list[str]
    version: int
    created_at: UtcDateTime
    updated_at: UtcDateTime


# --- Tools ------------------------------------------------------------------------------


_HEADERS_DESCRIPTION = (
    "Header name -> value (may hold `{placeholders}`). Values of credential-like headers "
    "(`Authorization`, `*-Key`, `*Token*`, or listed in `secret_headers`) are write-only: "
    "they read back as `********`. On update, a secret header that is left out or sent as "
    "`********` keeps its stored value; send an empty string to remove it."
)


class ToolCreate(BaseModel):
    """A new HTTP tool, or the full replacement of one (`PUT`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME_PATTERN, description="Function name the model sees.")
    description: Text = Field(default="", max_length=4000)
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema (an object schema) of the model's arguments.",
    )
    url: Text = Field(min_length=1, max_length=2000, description="http(s) URL; `{param}` ok.")
    method: HttpMethod = "GET"
    headers: dict[str, Text] = Field(default_factory=dict, description=_HEADERS_DESCRIPTION)
    secret_headers: list[Text] = Field(
        default_factory=list, description="Extra header names to treat as secret."
    )
    args_location: ArgsLocation = "auto"
    body_template: Any | None = Field(default=None, description="JSON body template.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    enabled: bool = True


class ToolUpdate(BaseModel):
    """A partial tool update (`PATCH`): only the fields sent change.

    Leave a field out to keep it. ``null`` clears `body_template`; on any other field it
    is refused (422). A body that changes nothing answers the tool unchanged: no new
    version, no audit entry.
    """

    model_config = ConfigDict(extra="forbid")

    # Left out: kept. Null: refused (422), except where the field may be empty.
    name: Patch[Annotated[str, StringConstraints(pattern=TOOL_NAME_PATTERN)]] = None
    description: Patch[Annotated[Text, StringConstraints(max_length=4000)]] = None
    parameters: Patch[dict[str, Any]] = None
    url: Patch[Annotated[Text, StringConstraints(min_length=1, max_length=2000)]] = None
    method: Patch[HttpMethod] = None
    headers: Patch[dict[str, Text]] = Field(default=None, description=_HEADERS_DESCRIPTION)
    secret_headers: Patch[list[Text]] = None
    args_location: Patch[ArgsLocation] = None
    body_template: Any | None = None
    timeout_seconds: Patch[Annotated[float, Field(gt=0, le=120)]] = None
    enabled: Patch[bool] = None


class ToolRead(BaseModel):
    """A stored tool; secret header values are masked."""

    id: int
    name: str
    description: str
    parameters: dict[str, Any]
    url: str
    method: str
    headers: dict[str, str]
    secret_headers: list[str] = Field(description="Headers whose values are masked.")
    args_location: str
    body_template: Any | None
    timeout_seconds: float
    enabled: bool
    version: int
    created_at: UtcDateTime
    updated_at: UtcDateTime


class ToolTestRequest(BaseModel):
    """Arguments for a test run of a tool, plus optional call facts for placeholders."""

    model_config = ConfigDict(extra="forbid")

    args: dict[str, Any] = Field(default_factory=dict)
    caller_id_number: Text | None = Field(default=None, max_length=80)
    uniqueid: Text | None = Field(default=None, max_length=150)


class ToolTestResult(BaseModel):
    """What the tool executor got back."""

    ok: bool
    outcome: str = Field(description="ok, invalid_args, http_error, timeout, ...")
    status_code: int | None
    latency_ms: float
    body: str = Field(description="Response body as given to the model (capped).")
    truncated: bool
    detail: str | None = Field(
        default=None, description="Why the call failed, for admins; the model is not told this."
    )


# --- Calls ------------------------------------------------------------------------------


class ToolCallRead(BaseModel):
    """One tool call made during a turn."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    args: Any = None
    result: Any = None
    outcome: str | None = None
    status_code: int | None = None
    latency_ms: float | None = None
    detail: str | None = Field(default=None, description="Why it failed, for admins; not shown to the model.")


class TurnRead(BaseModel):
    """One agent turn of a call."""

    id: int
    user_input: str
    response: str
    status: str
    error: str | None
    model: str | None
    tool_calls: list[ToolCallRead]
    latency_ms: int
    llm_latency_ms: int
    token_usage: dict[str, Any] | None
    degraded: bool
    created_at: UtcDateTime


class CallRead(BaseModel):
    """A call (or a chat conversation) in the call log."""

    id: int
    source: str
    channel_id: str | None
    uniqueid: str
    caller_id_number: str | None
    caller_id_name: str | None
    prompt_name: str | None
    model: str | None
    status: str | None
    degraded: bool
    started_at: UtcDateTime
    ended_at: UtcDateTime | None
    turn_count: int


class CallDetail(CallRead):
    """A call with its turns, oldest first."""

    turns: list[TurnRead]


# --- Status -----------------------------------------------------------------------------


class AriStatusRead(BaseModel):
    """The ARI event WebSocket, as seen by the gateway."""

    enabled: bool
    state: str = Field(description="connected, reconnecting, connecting, stopped or disabled.")
    since: UtcDateTime | None = Field(default=None, description="When `state` was entered.")
    last_event_at: UtcDateTime | None = None
    reconnects: int = 0


class ComponentStatus(BaseModel):
    """Reachability of a backing service."""

    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class ProviderStatus(BaseModel):
    """One provider of the registry (LLM, STT or TTS). No secret is ever shown."""

    name: str = Field(description="Registry name, as used in `AI_MODEL` (`openai`, `anthropic`).")
    capability: str = Field(description="`llm`, `stt` or `tts`.")
    label: str = Field(description="Human label, e.g. `Anthropic Claude`.")
    configured: bool = Field(description="True when it can serve a turn now.")
    detail: str = Field(description="Why not, or a short note such as the default model.")
    env: list[str] = Field(description="The environment variables that configure it.")


class StatusRead(BaseModel):
    """Everything an operator checks first."""

    version: str
    ari: AriStatusRead
    redis: ComponentStatus
    database: ComponentStatus
    providers: list[ProviderStatus]
    default_model: str
    fallback_model: str | None


class HealthRead(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = "ok"


class ReadinessRead(BaseModel):
    """Readiness answer: the database and Redis reachable, the Stasis application connected.

    ARI counts only when ARI is enabled and `READYZ_REQUIRE_ARI` is true (the default).
    """

    status: Literal["ready", "not_ready"]
    database: ComponentStatus
    redis: ComponentStatus
    ari: ComponentStatus | None = Field(
        default=None, description="The ARI event WebSocket; absent when it does not count."
    )


# --- Chat -------------------------------------------------------------------------------


class ChatRequest(BaseModel):
    """One chat turn through the same code path as a phone call."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="Reuse to continue a conversation (its memory); omit to start one.",
    )
    message: Text = Field(min_length=1, max_length=8000)
    prompt_name: Text | None = Field(default=None, max_length=100)
    model: Text | None = Field(
        default=None,
        max_length=100,
        description="A provider (`openai`, `anthropic`, `offline`, ...) or `provider:model`.",
    )


class ChatResponse(BaseModel):
    """The agent's reply and the turn as recorded in the call log."""

    conversation_id: str
    reply: str
    status: str
    error: str | None
    model: str | None
    prompt_name: str | None
    tool_calls: list[ToolCallRead]
    call_id: int | None = Field(description="The call-log entry of this conversation.")
    turn: TurnRead | None = Field(description="The stored turn; None if the log was down.")


# --- Audit ------------------------------------------------------------------------------


class AuditRead(BaseModel):
    """One admin write. `changes` maps field -> [old, new], secrets masked."""

    id: int
    actor: str
    action: str
    entity_type: str
    entity_id: int | None
    entity_name: str | None
    changes: dict[str, Any]
    created_at: UtcDateTime
