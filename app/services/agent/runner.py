"""The LangChain 1.x agent: database prompt + database HTTP tools + a chat model, streamed.

One compiled agent (`langchain.agents.create_agent`) is built per
(prompt version, tool versions, per-call tool names, model) and reused for every turn.
Per-call facts and per-call tool handlers reach the tools through a context variable
set for the duration of a turn, never through model-supplied arguments.

`AiService.stream` yields the answer's text as the model produces it
(`agent.astream(..., stream_mode=["messages", "values"])`: the model node's token
chunks, then the final graph state), and finally an `AgentResult`. Cancelling the
consumer closes the model's HTTP request (the SDK's stream is closed), and no tool
call starts afterwards.

A prompt without tools is exactly one chat-model call (system prompt, history, the
caller's words), so it skips the agent graph and streams the chat model directly
(`model.astream`) with the same messages and callbacks: the graph's bookkeeping
measured ~1-1.8 ms of CPU per turn on this project's benchmark VM
(`benchmarks/README.md`), a fifth of the gateway's whole per-turn cost at the time.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool

from app.services.agent.guard import WITHHELD_TEXT, build_system_prompt, find_leak
from app.services.agent.records import LLMTimer, args_key, final_text, tool_call_records, usage_of
from app.services.agent.tools import ToolExecutor
from app.services.domain import CallContext, CallTool, PromptSpec, ToolSpec
from app.services.providers.llm import ModelFactory, ModelSpec

logger = logging.getLogger(__name__)

_current_turn: contextvars.ContextVar[_TurnScope] = contextvars.ContextVar("aigw_turn")


@dataclass(slots=True)
class _TurnScope:
    context: CallContext
    deadline: float  # time.monotonic() seconds
    extra: dict[str, CallTool] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class AgentResult:
    """What one agent run produced.

    Attributes:
        text: the final answer, as plain text.
        new_messages: this turn's messages (human, AI tool calls, tool results,
            final AI), to append to memory.
        tool_calls: ``[{"id", "name", "args", "result", "outcome", "status_code", "latency_ms",
            "detail"}]`` (``detail``: admin-only reason for a failure, see `ToolResult`).
        token_usage: summed ``input_tokens``/``output_tokens``/``total_tokens``, or None.
        llm_latency_ms: time spent inside chat model calls, in ms.
        withheld: True when the answer was replaced by `WITHHELD_TEXT` (a leak).
    """

    text: str
    new_messages: list[BaseMessage]
    tool_calls: list[dict[str, Any]]
    token_usage: dict[str, int] | None
    llm_latency_ms: float
    withheld: bool = False


def scope_tools(scope: _TurnScope) -> tuple[CallTool, ...]:
    """The per-call tools of a turn, in the order the request gave them."""
    return tuple(scope.extra.values())


def _agent_name(prompt: PromptSpec) -> str:
    return f"prompt-{prompt.name}"


def _chunk_text(chunk: Any) -> str:
    """Text of a streamed AI message chunk (content may be a string or content blocks)."""
    if isinstance(chunk, AIMessageChunk):
        return chunk.text
    return ""


class AiService:
    """Runs agent turns and caches compiled agents.

    Args:
        models: the chat model factory.
        executor: runs HTTP tool calls.
        max_agents: compiled agents kept (least recently used dropped first).
        recursion_limit: LangGraph step cap per turn (bounds tool-call loops).
    """

    def __init__(
        self,
        models: ModelFactory,
        executor: ToolExecutor,
        *,
        max_agents: int = 256,
        recursion_limit: int = 16,
    ) -> None:
        """Keep collaborators; agents are built lazily."""
        self.models = models
        self._executor = executor
        self._agents: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._max_agents = max_agents
        self._recursion_limit = recursion_limit

    def _make_tool(self, spec: ToolSpec) -> StructuredTool:
        executor = self._executor

        async def call_tool(**kwargs: Any) -> str:
            scope = _current_turn.get()
            remaining = scope.deadline - time.monotonic()
            result = await executor.execute(
                spec, kwargs, scope.context, timeout_seconds=max(0.05, remaining - 0.5)
            )
            scope.records.append(
                {
                    "key": args_key(spec.name, kwargs),
                    "outcome": result.outcome,
                    "status_code": result.status_code,
                    "latency_ms": result.latency_ms,
                    "detail": result.detail,
                }
            )
            return result.content

        return StructuredTool.from_function(
            coroutine=call_tool,
            name=spec.name,
            description=spec.description or spec.name,
            args_schema=spec.parameters or {"type": "object", "properties": {}},
        )

    @staticmethod
    def _make_call_tool(spec: CallTool) -> StructuredTool:
        """Wrap a per-call tool; the handler is looked up in the running turn's scope."""
        schema = spec.parameters or {"type": "object", "properties": {}}
        validator = Draft202012Validator(schema)

        async def call_tool(**kwargs: Any) -> str:
            scope = _current_turn.get()
            error = best_match(validator.iter_errors(kwargs))
            started = time.perf_counter()
            if error is not None:
                where = ".".join(str(p) for p in error.absolute_path)
                content, outcome = (
                    f"invalid arguments: {where + ': ' if where else ''}{error.message}",
                    "invalid_args",
                )
            else:
                content, outcome = await scope.extra[spec.name].handler(dict(kwargs)), "ok"
            scope.records.append(
                {
                    "key": args_key(spec.name, kwargs),
                    "outcome": outcome,
                    "status_code": None,
                    "latency_ms": round((time.perf_counter() - started) * 1000.0, 1),
                    "detail": None,
                }
            )
            return content

        return StructuredTool.from_function(
            coroutine=call_tool, name=spec.name, description=spec.description, args_schema=schema
        )

    def agent_for(self, prompt: PromptSpec, model: ModelSpec, extra: tuple[CallTool, ...] = ()) -> Any:
        """The compiled agent for this prompt version, per-call tool set and model (cached).

        Raises:
            UnknownProvider, ProviderNotConfigured: the model cannot be built.
        """
        extra_key = tuple((t.name, t.description, json.dumps(t.parameters, sort_keys=True)) for t in extra)
        key = (prompt.cache_key, extra_key, model)
        agent = self._agents.get(key)
        if agent is not None:
            self._agents.move_to_end(key)
            return agent
        # LangGraph is kept off start-up; see `preload_agent_machinery`.
        from langchain.agents import create_agent

        agent = create_agent(
            self.models.get(model),
            tools=[*(self._make_tool(t) for t in prompt.tools), *(self._make_call_tool(t) for t in extra)],
            system_prompt=build_system_prompt(prompt),
            name=_agent_name(prompt),
        )
        self._agents[key] = agent
        while len(self._agents) > self._max_agents:
            self._agents.popitem(last=False)
        return agent

    async def run(
        self,
        prompt: PromptSpec,
        model: ModelSpec,
        history: list[BaseMessage],
        user_input: str,
        context: CallContext,
        *,
        deadline: float,
        extra_tools: tuple[CallTool, ...] = (),
    ) -> AgentResult:
        """Run one turn of the agent to its end, without token streaming; see `stream`."""
        async for item in self.stream(
            prompt,
            model,
            history,
            user_input,
            context,
            deadline=deadline,
            extra_tools=extra_tools,
            token_stream=False,
        ):
            if isinstance(item, AgentResult):
                return item
        raise RuntimeError("agent stream ended without a result")  # pragma: no cover

    async def stream(
        self,
        prompt: PromptSpec,
        model: ModelSpec,
        history: list[BaseMessage],
        user_input: str,
        context: CallContext,
        *,
        deadline: float,
        extra_tools: tuple[CallTool, ...] = (),
        token_stream: bool = True,
    ) -> AsyncIterator[str | AgentResult]:
        """Run one turn, yielding text deltas (str) as the model produces them, then the result.

        Args:
            prompt: the prompt (and tools) to run with.
            model: resolved model spec.
            history: earlier messages of this conversation, oldest first.
            user_input: what the caller said this turn.
            context: call facts for tool placeholders.
            deadline: `time.monotonic()` value (s) by which the turn must end;
                tool timeouts are cut to fit inside it.
            extra_tools: per-call tools offered besides the prompt's.
            token_stream: False when nobody needs the text before the end (text mode,
                the admin chat): the model answers in one HTTP response instead of
                server-sent events, which costs less CPU per turn; only the result
                is yielded.

        Yields:
            str deltas of the model's text (of every model step: text said before a
            tool call too), then exactly one `AgentResult` (its `text` is the final
            answer only, leak-checked).

        Raises:
            Exception: whatever the chat model's SDK raises (HTTP errors, timeouts);
                the turn service turns it into `AI_STATUS`.
        """
        await self.models.prepare(model)
        scope = _TurnScope(context=context, deadline=deadline, extra={t.name: t for t in extra_tools})
        timer = LLMTimer()
        inputs = [*history, HumanMessage(user_input)]
        new_messages: list[BaseMessage] = []
        config: Any = {"callbacks": [timer]}
        if not prompt.tools and not extra_tools:
            steps = self._direct(prompt, model, inputs, config, token_stream, new_messages)
        else:
            steps = self._agent(
                prompt, model, inputs, len(history), scope, config, token_stream, new_messages
            )
        async with aclosing(steps):
            async for text in steps:
                yield text
        yield self._result(prompt, context, new_messages, scope, timer)

    async def _direct(
        self,
        prompt: PromptSpec,
        model: ModelSpec,
        inputs: list[BaseMessage],
        config: Any,
        token_stream: bool,
        out: list[BaseMessage],
    ) -> AsyncGenerator[str, None]:
        """One chat-model call (no tools); yields text deltas, appends the turn's messages to `out`."""
        messages = [SystemMessage(build_system_prompt(prompt)), *inputs]
        chat = self.models.get(model)
        full: AIMessageChunk | AIMessage | None = None
        if not token_stream:
            full = await chat.ainvoke(messages, config=config)
        else:
            streamed: AIMessageChunk | None = None
            async for chunk in chat.astream(messages, config=config):
                streamed = chunk if streamed is None else streamed + chunk
                if text := _chunk_text(chunk):
                    yield text
            full = streamed
        out.extend([inputs[-1], _as_message(full, _agent_name(prompt))])  # named as the agent would

    async def _agent(
        self,
        prompt: PromptSpec,
        model: ModelSpec,
        inputs: list[BaseMessage],
        history_len: int,
        scope: _TurnScope,
        config: Any,
        token_stream: bool,
        out: list[BaseMessage],
    ) -> AsyncGenerator[str, None]:
        """The agent graph; yields the model node's text deltas, appends the turn's messages to `out`."""
        agent = self.agent_for(prompt, model, scope_tools(scope))
        token = _current_turn.set(scope)
        config["recursion_limit"] = self._recursion_limit
        final: dict[str, Any] = {}
        try:
            async for mode, payload in agent.astream(
                {"messages": inputs},
                config=config,
                stream_mode=["messages", "values"] if token_stream else ["values"],
            ):
                if mode == "values":
                    final = payload
                elif payload[1].get("langgraph_node") == "model" and (text := _chunk_text(payload[0])):
                    yield text
        finally:
            _current_turn.reset(token)
        out.extend(final["messages"][history_len:])

    @staticmethod
    def _result(
        prompt: PromptSpec,
        context: CallContext,
        new_messages: list[BaseMessage],
        scope: _TurnScope,
        timer: LLMTimer,
    ) -> AgentResult:
        text = final_text(new_messages)
        leak = find_leak(text, prompt)
        if leak is not None:
            logger.warning("uniqueid=%s answer withheld: it would reveal a %s", context.uniqueid, leak)
            text = WITHHELD_TEXT
            new_messages = [*new_messages[:-1], AIMessage(text)]
        return AgentResult(
            text=text,
            new_messages=new_messages,
            tool_calls=tool_call_records(new_messages, scope.records),
            token_usage=usage_of(new_messages),
            llm_latency_ms=round(timer.total_ms, 1),
            withheld=leak is not None,
        )


def _as_message(chunk: AIMessageChunk | AIMessage | None, name: str) -> AIMessage:
    """The whole (streamed) reply as a plain, named `AIMessage` (what memory stores)."""
    if chunk is None:
        return AIMessage("", name=name)
    if not isinstance(chunk, AIMessageChunk):
        chunk.name = name
        return chunk
    return AIMessage(
        content=chunk.content,
        id=chunk.id,
        name=name,
        response_metadata=chunk.response_metadata,
        usage_metadata=chunk.usage_metadata,
    )


async def preload_agent_machinery() -> None:
    """Import `langchain.agents` (and LangGraph) in a worker thread.

    Start-up does not import them, to reach the Stasis application sooner (they cost
    0.3-0.8 s here); the lifespan calls this once the gateway is connected, so the first
    turn with tools does not pay for the import.
    """
    await asyncio.to_thread(importlib.import_module, "langchain.agents")
