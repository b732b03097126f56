"""The Anthropic Messages API side of the LLM stand-in (`app.testing.fake_llm.FakeLLMServer`).

Follows https://docs.anthropic.com/en/api/messages and .../api/messages-streaming:
``POST /v1/messages`` with an ``x-api-key`` header (anthropic SDK 2.x sends
``Authorization: Bearer <key>`` instead); the body has ``system`` (text or
text blocks), ``messages`` (``user``/``assistant`` turns whose ``content`` is text or
``text``/``tool_use``/``tool_result`` blocks) and ``tools`` (``name``, ``description``,
``input_schema``). The answer is one ``message`` object, or with ``"stream": true`` the
server-sent events ``message_start``, ``content_block_start``/``content_block_delta``
(``text_delta``, ``input_json_delta``)/``content_block_stop`` per block, ``message_delta``
(``stop_reason``, output ``usage``) and ``message_stop``. Errors are
``{"type": "error", "error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import JSONResponse, StreamingResponse

from app.testing.fake_llm import (
    LLMRequest,
    NeutralMessage,
    TextReply,
    ToolCallReply,
    chunk_text,
    count_tokens,
    prompt_text,
    reply_text,
)

__all__ = ["anthropic_error", "anthropic_response", "parse_anthropic"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> JSONResponse:
    """An error answer shaped as the Messages API sends it (``api_error`` for other 5xx)."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}}, status_code=status)


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text"]
    return "\n".join(parts)


def _user_turn(content: Any, call_names: dict[str, str]) -> list[NeutralMessage]:
    """A user turn: its tool results (one neutral ``tool`` message each), then its text."""
    if isinstance(content, str):
        return [NeutralMessage(role="user", content=content)]
    out: list[NeutralMessage] = []
    texts: list[str] = []
    for block in content or []:
        if block.get("type") == "tool_result":
            call_id = block.get("tool_use_id")
            out.append(
                NeutralMessage(
                    role="tool",
                    content=_block_text(block.get("content")),
                    tool_name=call_names.get(call_id or ""),
                    tool_call_id=call_id,
                )
            )
        elif block.get("type") == "text":
            texts.append(str(block.get("text", "")))
    if texts:
        out.append(NeutralMessage(role="user", content="\n".join(texts)))
    return out


def _assistant_turn(content: Any, call_names: dict[str, str]) -> NeutralMessage:
    if isinstance(content, str):
        return NeutralMessage(role="assistant", content=content)
    calls = []
    for block in content or []:
        if block.get("type") == "tool_use":
            call_names[str(block.get("id"))] = str(block.get("name", ""))
            calls.append(
                {"name": block.get("name", ""), "args": block.get("input") or {}, "id": block.get("id")}
            )
    return NeutralMessage(role="assistant", content=_block_text(content), tool_calls=calls)


def parse_anthropic(body: dict[str, Any]) -> LLMRequest:
    """Normalise a Messages API request body (``POST /v1/messages``).

    Returns:
        The neutral view (``vendor="anthropic"``).
    """
    messages: list[NeutralMessage] = []
    call_names: dict[str, str] = {}
    for msg in body.get("messages") or []:
        if msg.get("role") == "assistant":
            messages.append(_assistant_turn(msg.get("content"), call_names))
        else:
            messages.extend(_user_turn(msg.get("content"), call_names))
    tools = [
        {
            "name": t.get("name", ""),
            "description": t.get("description", ""),
            "parameters": t.get("input_schema") or {},
        }
        for t in body.get("tools") or []
    ]
    system = body.get("system")
    return LLMRequest(
        vendor="anthropic",
        model=str(body.get("model", "")),
        system=_block_text(system) if system else None,
        messages=messages,
        tools=tools,
        raw=body,
        stream=bool(body.get("stream")),
    )


def _blocks(reply: TextReply | ToolCallReply) -> list[dict[str, Any]]:
    if isinstance(reply, TextReply):
        return [{"type": "text", "text": reply.text}]
    return [
        {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": name, "input": args}
        for name, args in reply.calls
    ]


def anthropic_response(
    request: LLMRequest, reply: TextReply | ToolCallReply
) -> JSONResponse | StreamingResponse:
    """The Messages API answer to `request`: one ``message`` object, or its SSE stream."""
    usage = {
        "input_tokens": count_tokens(prompt_text(request)),
        "output_tokens": count_tokens(reply_text(reply)),
    }
    message = {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": request.model,
        "content": _blocks(reply),
        "stop_reason": "tool_use" if isinstance(reply, ToolCallReply) else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    if not request.stream:
        return JSONResponse(message)
    return StreamingResponse(_events(message), media_type="text/event-stream")


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **payload}) + b"\n\n"


async def _events(message: dict[str, Any]) -> AsyncIterator[bytes]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _event("message_start", {"message": start})
    yield _event("ping", {})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield _event(
                "content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}
            )
            for piece in chunk_text(block["text"]):
                yield _event(
                    "content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}}
                )
        else:
            opening = {**block, "input": {}}
            yield _event("content_block_start", {"index": index, "content_block": opening})
            for piece in chunk_text(orjson.dumps(block["input"]).decode()):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield _event("content_block_delta", {"index": index, "delta": delta})
        yield _event("content_block_stop", {"index": index})
    yield _event(
        "message_delta",
        {
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield _event("message_stop", {})
