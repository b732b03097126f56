"""Pydantic v2 schemas of the admin REST API (`/api/v1`).

Naming follows the `XCreate` / `XUpdate` / `XRead` pattern: `XCreate` is the full
body of a create (and of a full update, `PUT`), `XUpdate` is a partial update
(`PATCH`, every field optional), `XRead` is what the API returns.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
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

#: Transfer target names are what the model passes to ``transfer_call``.
TRANSFER_NAME_PATTERN = r"^[a-z0-9_]{1,40}$"
#: A channel technology and resource, as ``Dial()`` takes it: ``PJSIP/200``, ``SIP/trunk/0123``.
ENDPOINT_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,19}/[^\s,&|]{1,200}$"
#: Dialplan context or extension: no spaces, commas or separators the dialplan would split on.
DIALPLAN_NAME_PATTERN = r"^[^\s,;|&()\[\]]{0,80}$"
#: A BCP-47 language tag (``en``, ``en-US``, ``pt-BR``), or empty for the provider's default.
LANGUAGE_PATTERN = r"^([A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)?$"
#: A provider registry name, or empty for the gateway's default (``VOICE_STT_PROVIDER``...).
PROVIDER_NAME_PATTERN = r"^[a-z0-9_-]{0,40}$"

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


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as is (no "Value error," prefix)."""
    return PydanticCustomError("value_error", message)


class PromptTransferTarget(BaseModel):
    """A place `transfer_call` may send the caller: a dialplan location or an endpoint."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TRANSFER_NAME_PATTERN, description="What the model names, e.g. `sales`.")
    description: Text = Field(
        default="", max_length=500, description="What the model reads to choose this target."
    )
    context: str = Field(default="", pattern=DIALPLAN_NAME_PATTERN, description="Dialplan context.")
    extension: str = Field(default="", pattern=DIALPLAN_NAME_PATTERN, description="Dialplan extension.")
    priority: int = Field(default=1, ge=1, le=100_000, description="Dialplan priority (>= 1).")
    endpoint: str = Field(
        default="",
        description="Instead of a dialplan location: an endpoint such as `PJSIP/200`.",
        validate_default=True,
    )

    @field_validator("endpoint")
    @classmethod
    def _one_destination(cls, endpoint: str, info: ValidationInfo) -> str:
        """Exactly one of (context and extension) or endpoint."""
        context, extension = info.data.get("context", ""), info.data.get("extension", "")
        if endpoint:
            if re.fullmatch(ENDPOINT_PATTERN, endpoint) is None:
                raise _invalid("endpoint must look like TECHNOLOGY/resource, e.g. PJSIP/200")
            if context or extension:
                raise _invalid("give either a dialplan context and extension or an endpoint, not both")
        elif not (context and extension):
            raise _invalid("give a dialplan context and extension, or an endpoint such as PJSIP/200")
        return endpoint


class PromptVoice(BaseModel):
    """A prompt's voice-conversation settings (``AI_MODE=voice``); every field has a default.

    Times carry their unit in the name (`_ms`, `_s`). Provider names are checked against
    the provider registry when the prompt is saved.
    """

    model_config = ConfigDict(extra="forbid")

    default_mode: Literal["text", "voice"] = Field(
        default="text", description="Mode used when the Stasis args name none (`AI_MODE`)."
    )
    greeting: Text = Field(default="", max_length=1000, description="Spoken first; empty for none.")
    stt_provider: str = Field(
        default="",
        pattern=PROVIDER_NAME_PATTERN,
        description="STT provider; empty: the gateway's.",
    )
    stt_model: Text = Field(default="", max_length=100, description="STT model; empty: the provider's.")
    stt_language: str = Field(default="en", pattern=LANGUAGE_PATTERN, description="BCP-47 tag, e.g. `en`.")
    tts_provider: str = Field(
        default="",
        pattern=PROVIDER_NAME_PATTERN,
        description="TTS provider; empty: the gateway's.",
    )
    tts_voice: Text = Field(default="", max_length=100, description="TTS voice; empty: the provider's.")
    tts_language: str = Field(default="en", pattern=LANGUAGE_PATTERN, description="BCP-47 tag, e.g. `en`.")
    end_of_turn_ms: int = Field(
        default=700, ge=100, le=5000, description="Caller silence that ends the caller's turn, in ms."
    )
    barge_in: bool = Field(default=True, description="Whether the caller may interrupt the agent.")
    barge_in_min_speech_ms: int = Field(
        default=300, ge=50, le=3000, description="Shorter speech (ms) never interrupts (coughs, 'uh-huh')."
    )
    reprompt_after_s: float = Field(
        default=8.0, ge=1, le=120, description="Caller silence before the reprompt, in s."
    )
    reprompt_text: Text = Field(default="Are you still there?", max_length=1000)
    max_reprompts: int = Field(
        default=2, ge=0, le=10, description="Reprompts before the goodbye and `AI_STATUS=NO_INPUT`."
    )
    goodbye_text: Text = Field(default="Goodbye.", max_length=1000)
    max_duration_s: int = Field(
        default=0, ge=0, le=14_400, description="Longest call, in s; 0: `VOICE_MAX_DURATION_SECONDS`."
    )
    dtmf_pause_ms: int = Field(
        default=1500, ge=100, le=10_000, description="Digits within this pause (ms) reach the agent together."
    )
    offer_end_call: bool = Field(default=True, description="Offer the agent the `end_call` tool.")
    offer_transfer_call: bool = Field(
        default=True, description="Offer `transfer_call` (when there are transfer targets)."
    )
    transfer_targets: list[PromptTransferTarget] = Field(default_factory=list, max_length=20)

    @field_validator("stt_provider", "tts_provider", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        """Provider names are case-insensitive; stored in lower case."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("transfer_targets")
    @classmethod
    def _unique_names(cls, targets: list[PromptTransferTarget]) -> list[PromptTransferTarget]:
        """Two targets may not share a name (the model could not tell them apart)."""
        seen: set[str] = set()
        for target in targets:
            if target.name in seen:
                raise _invalid(f"transfer target names must be unique: '{target.name}' appears twice")
            seen.add(target.name)
        return targets


_VOICE_PATCH = (
    "Voice settings. In a PATCH only the voice fields sent change (the others keep their "
    "stored values), `transfer_targets` is replaced as a whole, and `null` resets every "
    "voice setting to its default."
)


class PromptCreate(BaseModel):
    """A new prompt, or the full replacement of one (`PUT`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PROMPT_NAME_PATTERN, description="`AI_PROMPT_NAME` value.")
    content: Text = Field(min_length=1, max_length=100_000, description="System prompt text.")
    metadata: dict[str, Any] | None = Field(default=None, description="Free JSON object.")
    is_default: bool = False
    fallback_text: Text | None = Field(default=None, max_length=2000, description="Spoken when a turn fails.")
    tools: list[Text] = Field(default_factory=list, description="Names of the tools it may call.")
    voice: PromptVoice = Field(default_factory=PromptVoice, description="Voice settings.")


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
    voice: PromptVoice | None = Field(default=None, description=_VOICE_PATCH)


class PromptRead(BaseModel):
    """A stored prompt. `version` grows on every change."""

    id: int
    name: str
    content: str
    metadata: dict[str, Any] | None
    is_default: bool
    fallback_text: str | None
    tools: list[str]
    voice: PromptVoice = Field(default_factory=PromptVoice, description="Voice settings.")
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
    details: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A voice turn's timeline: `mode`, `interrupted`, `heard`, latencies in ms from the "
            "caller's end of speech (`stt_final_ms`, `llm_first_sentence_ms`, `tts_first_audio_ms`, "
            "`first_frame_sent_ms`) and, on the last turn, `end_reason`, `end_status`, `dtmf`. "
            "None for a text turn."
        ),
    )
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


class VoiceStatusRead(BaseModel):
    """Voice mode (``AI_MODE=voice``): the media WebSocket, the Asterisk version check, defaults."""

    connection_type: Literal["client", "server"] = Field(
        description="`client`: Asterisk connects to our media listener; `server`: we connect to Asterisk."
    )
    media: str = Field(description="The media side in a sentence, e.g. `listening on 0.0.0.0:8765 (/media)`.")
    media_ok: bool = Field(description="False when the media listener (client mode) is not running.")
    listen_port: int | None = Field(default=None, description="The media listener's TCP port (client mode).")
    asterisk_version: str = Field(description="As the connected Asterisk reports it; '' before the check.")
    supported: bool | None = Field(
        description="Whether that Asterisk has voice mode's media protocol (20.18, 22.8, 23.2 or newer); "
        "null when unknown."
    )
    detail: str = Field(description="The version check in a sentence.")
    codec: str = Field(description="`ulaw` (8 kHz) or `slin16` (16 kHz), `VOICE_CODEC`.")
    stt_provider: str = Field(description="Default speech-to-text provider (`VOICE_STT_PROVIDER`).")
    tts_provider: str = Field(description="Default text-to-speech provider (`VOICE_TTS_PROVIDER`).")


class StatusRead(BaseModel):
    """Everything an operator checks first."""

    version: str
    ari: AriStatusRead
    redis: ComponentStatus
    database: ComponentStatus
    providers: list[ProviderStatus]
    default_model: str
    fallback_model: str | None
    voice: VoiceStatusRead | None = Field(default=None, description="Null when voice mode is not running.")


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
