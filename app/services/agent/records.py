"""Bookkeeping of one agent run: model time, tool-call records, token usage, final text."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import LLMResult


def args_key(name: str, args: Any) -> str:
    """A key matching an executed tool call to the model's tool call (name + args)."""
    return name + json.dumps(args, sort_keys=True, default=str)


class LLMTimer(AsyncCallbackHandler):
    """Sums wall time spent inside chat model calls (LangChain callbacks), in ms."""

    def __init__(self) -> None:
        self._starts: dict[UUID, float] = {}
        self.total_ms = 0.0

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Note when a model call started."""
        self._starts[run_id] = time.perf_counter()

    def _stop(self, run_id: UUID) -> None:
        start = self._starts.pop(run_id, None)
        if start is not None:
            self.total_ms += (time.perf_counter() - start) * 1000.0

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Add the finished call's time."""
        self._stop(run_id)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Add the failed call's time."""
        self._stop(run_id)


def final_text(messages: list[BaseMessage]) -> str:
    """The last AI message without tool calls, stripped ("" when there is none)."""
    for message in reversed(messages):
        if isinstance(message, AIMessage) and not message.tool_calls:
            return message.text.strip()
    return ""


def tool_call_records(messages: list[BaseMessage], executed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per tool call the model made, joined with what the executor measured.

    Returns:
        ``[{"id", "name", "args", "result", "outcome", "status_code", "latency_ms", "detail"}]``.
    """
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    pending = list(executed)
    records: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, AIMessage):
            continue
        for call in message.tool_calls:
            tool_message = results.get(call["id"] or "")
            record: dict[str, Any] = {
                "id": call["id"],
                "name": call["name"],
                "args": call["args"],
                "result": tool_message.text if tool_message is not None else None,
                "outcome": None,
                "status_code": None,
                "latency_ms": None,
                "detail": None,
            }
            key = args_key(call["name"], call["args"])
            for i, done in enumerate(pending):
                if done["key"] == key:
                    record.update({k: v for k, v in pending.pop(i).items() if k != "key"})
                    break
            if record["outcome"] is None and tool_message is not None:
                record["outcome"] = "error" if tool_message.status == "error" else "ok"
            records.append(record)
    return records


def usage_of(messages: list[BaseMessage]) -> dict[str, int] | None:
    """Summed ``input_tokens``/``output_tokens``/``total_tokens`` of the AI messages, or None."""
    total: dict[str, int] = {}
    for message in messages:
        usage = getattr(message, "usage_metadata", None)
        if isinstance(message, AIMessage) and usage:
            for name in ("input_tokens", "output_tokens", "total_tokens"):
                total[name] = total.get(name, 0) + int(usage.get(name, 0) or 0)
    return total or None
