"""Condense a pyinstrument call tree into "where the time goes" of the gateway's hot path.

Sampling covers the main thread only (the event loop): SQLite work done in aiosqlite's
thread is not in it, but the CPU ms per turn of the harness (psutil) includes it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

#: (label, path fragment) - first match wins; checked against the frame's file path.
PACKAGES: list[tuple[str, str]] = [
    ("app (gateway code)", "/app/"),
    ("langgraph", "/langgraph/"),
    ("langchain_openai", "/langchain_openai/"),
    ("langchain_core", "/langchain_core/"),
    ("langchain", "/langchain/"),
    ("openai SDK", "/openai/"),
    ("pydantic", "/pydantic"),
    ("httpx/httpcore", "/httpx/"),
    ("httpx/httpcore", "/httpcore/"),
    ("httpx/httpcore", "/h11/"),
    ("anyio", "/anyio/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("aiosqlite/asyncpg", "/aiosqlite/"),
    ("aiosqlite/asyncpg", "/asyncpg/"),
    ("redis", "/redis/"),
    ("tenacity", "/tenacity/"),
    ("websockets", "/websockets/"),
    ("uvicorn/starlette/fastapi", "/uvicorn/"),
    ("uvicorn/starlette/fastapi", "/starlette/"),
    ("uvicorn/starlette/fastapi", "/fastapi/"),
    ("prometheus_client", "/prometheus_client/"),
    ("jsonschema", "/jsonschema"),
    ("tiktoken/regex", "/tiktoken/"),
    ("asyncio", "/asyncio/"),
    ("uuid/json/logging (stdlib)", "/uuid.py"),
    ("uuid/json/logging (stdlib)", "/json/"),
    ("uuid/json/logging (stdlib)", "/logging/"),
    ("copy/typing/dataclasses (stdlib)", "/copy.py"),
    ("copy/typing/dataclasses (stdlib)", "/typing.py"),
    ("copy/typing/dataclasses (stdlib)", "/dataclasses.py"),
    ("copy/typing/dataclasses (stdlib)", "/inspect.py"),
    ("copy/typing/dataclasses (stdlib)", "/contextvars"),
]

#: Inclusive time of these functions = the stages of one turn.
STAGES: list[tuple[str, str, str]] = [
    ("ARI event read + parse (AriEventStream.run)", "event_source.py", "run"),
    ("StasisStart -> TurnRequest (build_request)", "telephony/session.py", "build_request"),
    ("turn total (TurnService.run_turn)", "turn_service.py", "run_turn"),
    ("  prompt lookup (Catalog.get_prompt)", "catalog.py", "get_prompt"),
    ("  Redis lock (acquire_lock)", "redis_service.py", "acquire_lock"),
    ("  Redis unlock (release_lock)", "redis_service.py", "release_lock"),
    ("  Redis history load", "redis_service.py", "load"),
    ("  Redis history append", "redis_service.py", "append_turn"),
    ("  agent turn (AiService.stream)", "agent/runner.py", "stream"),
    ("    chat model call (ChatOpenAI._agenerate)", "langchain_openai", "_agenerate"),
    ("    openai SDK request (AsyncAPIClient.request)", "openai/_base_client.py", "request"),
    ("    tool call (ToolExecutor.execute)", "tool_executor.py", "execute"),
    ("  call-log submit", "call_log.py", "submit"),
    ("deliver: set vars + continue (Delivery.deliver)", "delivery.py", "deliver"),
    ("call-log writer (CallLogWriter._write)", "call_log.py", "_write"),
    ("admin/HTTP app (uvicorn request handling)", "uvicorn/protocols/http", "run_asgi"),
]

IDLE_FUNCTIONS = {"select", "poll", "run_forever", "run_until_complete", "_run_once", "run"}


def _walk(frame: Any, stack: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    yield frame, stack
    for child in frame.children:
        yield from _walk(child, (*stack, frame))


def _package(path: str) -> str:
    for label, fragment in PACKAGES:
        if fragment in path:
            return label
    return "other"


def summarise(root: Any) -> dict[str, Any]:
    """Totals, idle share, self time by package, inclusive time per stage, top functions."""
    total = float(root.time)
    by_package: defaultdict[str, float] = defaultdict(float)
    by_function: defaultdict[str, float] = defaultdict(float)
    stage_time: defaultdict[str, float] = defaultdict(float)
    idle = 0.0
    for frame, stack in _walk(root):
        path = frame.file_path or ""
        if not frame.is_synthetic:
            for label, fragment, function in STAGES:
                # Inclusive: count a stage frame only when no ancestor is the same stage (recursion).
                if frame.function == function and fragment in path:
                    same = any(a.function == function and fragment in (a.file_path or "") for a in stack)
                    if not same:
                        stage_time[label] += float(frame.time)
        self_time = float(frame.time) - sum(float(c.time) for c in frame.children)
        if self_time <= 0:
            continue
        owner = frame
        if frame.is_synthetic and stack:
            owner = stack[-1]
        owner_path = owner.file_path or ""
        if owner.function in IDLE_FUNCTIONS and (
            "asyncio/" in owner_path
            or "selectors" in owner_path
            or "uvloop" in owner_path
            or "runners.py" in owner_path
            or "uvicorn/server.py" in owner_path
            or "uvicorn/main.py" in owner_path
        ):
            idle += self_time
            continue
        by_package[_package(owner_path)] += self_time
        by_function[f"{owner.function} ({owner.file_path_short or owner_path}:{owner.line_no})"] += self_time
    busy = max(total - idle, 1e-9)
    return {
        "sampled_s": round(total, 3),
        "idle_s": round(idle, 3),
        "busy_s": round(busy, 3),
        "self_by_package": sorted(
            (
                {"package": k, "s": round(v, 3), "pct_of_busy": round(100 * v / busy, 1)}
                for k, v in by_package.items()
            ),
            key=lambda r: -r["s"],
        ),
        "stages": [
            {
                "stage": label,
                "s": round(stage_time[label], 3),
                "pct_of_busy": round(100 * stage_time[label] / busy, 1),
            }
            for label, _, _ in STAGES
        ],
        "top_functions": sorted(
            (
                {"function": k, "s": round(v, 3), "pct_of_busy": round(100 * v / busy, 1)}
                for k, v in by_function.items()
            ),
            key=lambda r: -r["s"],
        )[:20],
    }


def render(summary: dict[str, Any], turns: int | None = None) -> str:
    lines = [
        f"sampled {summary['sampled_s']} s on the event-loop thread: busy {summary['busy_s']} s, "
        f"idle {summary['idle_s']} s" + (f", {turns} turns" if turns else ""),
        "",
        "Stages (inclusive, % of busy time):",
    ]
    for row in summary["stages"]:
        per_turn = f"  {1000 * row['s'] / turns:6.2f} ms/turn" if turns else ""
        lines.append(f"  {row['stage']:<55} {row['pct_of_busy']:5.1f}%{per_turn}")
    lines += ["", "Self time by package (% of busy time):"]
    for row in summary["self_by_package"][:16]:
        lines.append(f"  {row['package']:<40} {row['pct_of_busy']:5.1f}%")
    lines += ["", "Top functions by self time:"]
    for row in summary["top_functions"][:15]:
        lines.append(f"  {row['pct_of_busy']:5.1f}%  {row['function']}")
    return "\n".join(lines) + "\n"
