"""Plain, immutable value types shared by the call path and the admin surface.

They are snapshots, detached from any database session, so they can be cached and
passed between tasks freely.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class TurnStatus(enum.StrEnum):
    """Values of the `AI_STATUS` channel variable the dialplan branches on."""

    OK = "OK"
    NO_INPUT = "NO_INPUT"
    TIMEOUT = "TIMEOUT"
    ERROR = "ERROR"
    BUSY = "BUSY"
    #: The caller hung up during the turn (call log only: the channel is gone, so the
    #: dialplan never sees it).
    HANGUP = "HANGUP"


#: `CancelledError` message a session uses when the caller's hang-up cancels a turn, so
#: the turn service can tell it from a shutdown (see `CallSession.hang_up`).
HANGUP_CANCEL_MSG = "caller_hung_up"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A snapshot of a `Tool` row, with secret header values already decrypted.

    Attributes:
        headers: header name -> template; secret ones are in `secret_headers` too.
        timeout_seconds: the tool's own HTTP timeout, in seconds.
    """

    id: int
    name: str
    description: str
    parameters: dict[str, Any]
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    secret_headers: frozenset[str] = frozenset()
    args_location: str = "auto"
    body_template: Any = None
    timeout_seconds: float = 5.0
    version: int = 1


@dataclass(frozen=True, slots=True)
class TransferTarget:
    """A place the agent may send the caller (`transfer_call`), defined by the admin per prompt.

    Exactly one of (`context`, `extension`) or `endpoint` is used: a dialplan location for
    ARI ``continueInDialplan`` (channels.json), or an endpoint such as ``PJSIP/200`` that the
    dialplan dials (``AI_TRANSFER_TARGET``).

    Attributes:
        name: what the model names (``^[a-z0-9_]{1,40}$``).
        description: what the model reads to choose it.
        context: dialplan context. extension: dialplan extension. priority: dialplan priority.
        endpoint: a channel technology/resource to dial instead of a dialplan location.
    """

    name: str
    description: str
    context: str = ""
    extension: str = ""
    priority: int = 1
    endpoint: str = ""


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """A prompt's voice-conversation settings (`AI_MODE=voice`).

    Attributes:
        default_mode: ``text`` or ``voice``: the mode used when the Stasis args name none.
        greeting: spoken first ('' = none).
        stt_provider, stt_model, stt_language: speech-to-text ('' = the provider's default).
        tts_provider, tts_voice, tts_language: text-to-speech.
        end_of_turn_ms: caller silence that ends the caller's turn, in ms.
        barge_in: whether the caller may interrupt the agent.
        barge_in_min_speech_ms: speech shorter than this (ms) never interrupts (coughs, "uh-huh").
        reprompt_after_s: caller silence (s) before the reprompt is said.
        reprompt_text: said after `reprompt_after_s` of silence.
        max_reprompts: reprompts before the goodbye and ``AI_STATUS=NO_INPUT``.
        goodbye_text: said before ending for silence or for the maximum duration.
        max_duration_s: longest voice call, in s (0 = the gateway's `VOICE_MAX_DURATION_SECONDS`).
        dtmf_pause_ms: digits pressed within this pause (ms) are sent to the agent together.
        offer_end_call: offer the agent the ``end_call`` tool.
        offer_transfer_call: offer the agent ``transfer_call`` (when `transfer_targets` is not empty).
        transfer_targets: where ``transfer_call`` may send the caller.
    """

    default_mode: str = "text"
    greeting: str = ""
    stt_provider: str = ""
    stt_model: str = ""
    stt_language: str = "en"
    tts_provider: str = ""
    tts_voice: str = ""
    tts_language: str = "en"
    end_of_turn_ms: int = 700
    barge_in: bool = True
    barge_in_min_speech_ms: int = 300
    reprompt_after_s: float = 8.0
    reprompt_text: str = "Are you still there?"
    max_reprompts: int = 2
    goodbye_text: str = "Goodbye."
    max_duration_s: int = 0
    dtmf_pause_ms: int = 1500
    offer_end_call: bool = True
    offer_transfer_call: bool = True
    transfer_targets: tuple[TransferTarget, ...] = ()


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """A snapshot of a `Prompt` row with its tools."""

    id: int
    name: str
    content: str
    fallback_text: str | None
    version: int
    tools: tuple[ToolSpec, ...] = ()
    metadata: dict[str, Any] | None = None
    is_default: bool = False
    voice: VoiceSettings = field(default_factory=VoiceSettings)

    @property
    def cache_key(self) -> tuple[Any, ...]:
        """Identity of the agent built from this prompt: prompt and tool versions."""
        return (self.id, self.version, tuple((t.id, t.version) for t in self.tools))


@dataclass(frozen=True, slots=True)
class CallContext:
    """Facts about the call that tools may use and the model can never override.

    Attributes:
        uniqueid: conversation key (UNIQUEID Stasis arg, else the channel id).
        channel_id: ARI channel id; None for an admin chat.
        stasis_args: every KEY=VALUE Stasis arg, after comma rejoining.
    """

    uniqueid: str
    channel_id: str | None = None
    caller_id_number: str | None = None
    caller_id_name: str | None = None
    stasis_args: dict[str, str] = field(default_factory=dict)

    def placeholders(self) -> dict[str, str]:
        """Values for `{placeholders}` in tool URL, headers and body.

        Stasis args come first so the fixed names below always win over them.
        """
        values = dict(self.stasis_args)
        values.update(
            {
                "uniqueid": self.uniqueid,
                "channel_id": self.channel_id or "",
                "caller_id_number": self.caller_id_number or "",
                "caller_id_name": self.caller_id_name or "",
            }
        )
        return values


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call returned, as shown to the model and kept in the call log.

    Attributes:
        ok: True for a 2xx answer.
        status_code: HTTP status, or None when no response arrived.
        content: text given to the model (body, or a short error), capped in size.
        latency_ms: wall time of the HTTP exchange, in ms.
        outcome: ``ok``, ``invalid_args``, ``http_error``, ``timeout``,
            ``connection_error``, ``blocked``.
        detail: why it failed, for admins only (log, call log, tool test); never
            shown to the model. None when there is nothing to add.
    """

    ok: bool
    content: str
    outcome: str
    status_code: int | None = None
    latency_ms: float = 0.0
    truncated: bool = False
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class CallTool:
    """A per-call tool offered to the model for one turn (e.g. voice's `end_call`).

    Unlike a `ToolSpec` it is not an HTTP request: `handler` runs in the gateway.
    The runner wraps it as a LangChain `StructuredTool` and validates the model's
    arguments against `parameters` (jsonschema) before calling `handler`.

    Attributes:
        name: tool name the model sees (``^[a-zA-Z0-9_-]{1,64}$``, the vendors' rule).
        description: what the model reads to decide when to call it.
        parameters: a JSON Schema object for the arguments.
        handler: ``async (args: dict) -> str``; the text is the tool result the model sees.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    handler: Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(slots=True)
class TurnRequest:
    """One turn to run: what the caller said and how to answer.

    Attributes:
        user_input: the caller's words (already transcribed by the dialplan).
        prompt_name: `AI_PROMPT_NAME`; None for the default prompt.
        model: `AI_MODEL` (``openai``, ``gemini`` or ``provider:model``); None for default.
        source: ``call`` or ``chat``.
        deadline_seconds: overrides `AI_TURN_TIMEOUT_SECONDS` when set.
        extra_tools: per-call tools offered besides the prompt's HTTP tools.
        defer_log: the caller files the turn in the call log itself (voice mode does, once
            it knows what the caller heard and each turn's latencies).
    """

    context: CallContext
    user_input: str
    prompt_name: str | None = None
    model: str | None = None
    source: str = "call"
    deadline_seconds: float | None = None
    extra_tools: tuple[CallTool, ...] = ()
    defer_log: bool = False


@dataclass(slots=True)
class TurnOutcome:
    """Result of a turn: what the caller hears and what the dialplan sees.

    Attributes:
        response: `AI_RESPONSE`, the text to speak (the fallback text on failure).
        status: `AI_STATUS`.
        error: `AI_ERROR`, a short reason without secrets; None when OK.
        tool_calls: ``[{"name", "args", "result", "outcome", "status_code", "latency_ms"}]``.
        token_usage: ``{"input_tokens", "output_tokens", "total_tokens"}`` when reported.
        latency_ms: whole turn, in ms. llm_latency_ms: time inside model calls, in ms.
        degraded: True when memory (Redis) or the call log was unavailable.
        details: a voice turn's timeline for the call log (``turns.details``): ``mode``,
            ``interrupted``, ``heard``, latencies in ms from the caller's end of speech
            (``stt_final_ms``, ``llm_first_sentence_ms``, ``tts_first_audio_ms``,
            ``first_frame_sent_ms``) and, on the call's last turn, ``end_reason``,
            ``end_status`` and ``dtmf`` (a list of digit strings). None for a text turn.
    """

    response: str
    status: TurnStatus
    error: str | None = None
    model: str | None = None
    prompt_name: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    token_usage: dict[str, int] | None = None
    latency_ms: float = 0.0
    llm_latency_ms: float = 0.0
    degraded: bool = False
    details: dict[str, Any] | None = None

    def channel_variables(self) -> dict[str, str]:
        """The channel variables the dialplan gets: AI_RESPONSE, AI_STATUS, AI_ERROR."""
        return {
            "AI_RESPONSE": self.response,
            "AI_STATUS": self.status.value,
            "AI_ERROR": self.error or "",
        }


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer as the model produced it (a token or a few).

    Raw model output, for display: not yet checked for leaks (sentences are).
    """

    text: str


@dataclass(frozen=True, slots=True)
class SentenceReady:
    """A whole sentence of the answer, ready for text-to-speech (leak-checked)."""

    text: str


@dataclass(frozen=True, slots=True)
class TurnFinished:
    """The last event of a streamed turn: the outcome (also filed in the call log)."""

    outcome: TurnOutcome


#: What `TurnRunner.stream_turn` yields: deltas and sentences in order, then one `TurnFinished`.
TurnEvent = TextDelta | SentenceReady | TurnFinished


class TurnRunner(Protocol):
    """The turn interface: all that telephony knows of the agent.

    `app.services.agent.turns.TurnService` implements it; the call path in
    `app.services.telephony` depends only on this protocol (checked by import-linter).
    """

    async def run_turn(self, request: TurnRequest) -> TurnOutcome:
        """Run one turn; never raises except on cancellation."""
        ...

    def stream_turn(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run one turn, yielding text as the model produces it, then `TurnFinished`.

        Never raises except on cancellation; a failure ends with a `TurnFinished`
        holding the fallback outcome.
        """
        ...

    async def record_interruption(self, request: TurnRequest, heard: list[str]) -> None:
        """After a barge-in, keep in memory only the sentences of the answer the caller heard."""
        ...

    def log_turn(
        self,
        source: str,
        context: CallContext,
        user_input: str,
        outcome: TurnOutcome,
        started_at: datetime | None = None,
    ) -> None:
        """File a turn (or a channel answered without one) in the call log."""
        ...
