"""The floor: a minimal Stasis handler (websockets + httpx, no LangChain, no DB, no Redis)."""

import asyncio
import base64
import os

import httpx
import orjson
import websockets

E = os.environ
ARI, APP, LLM, TOOL_URL = (
    E["BASELINE_ARI_URL"],
    E["BASELINE_APP"],
    E["BASELINE_LLM_URL"],
    E["BASELINE_TOOL_URL"],
)
AUTH = (E["BASELINE_ARI_USER"], E["BASELINE_ARI_PASSWORD"])
TOOL = {
    "type": "function",
    "function": {
        "name": "check_order",
        "description": "Order status by number.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


async def turn(ari: httpx.AsyncClient, llm: httpx.AsyncClient, event: dict) -> None:
    cid = event["channel"]["id"]
    args = dict(a.split("=", 1) for a in event["args"] if "=" in a)
    messages = [
        {"role": "system", "content": "You are a phone assistant."},
        {"role": "user", "content": args.get("USER_INPUT", "")},
    ]
    tools = {"tools": [TOOL]} if args.get("AI_PROMPT_NAME") == E["BASELINE_TOOL_PROMPT"] else {}
    status, text = "OK", ""
    try:
        for _ in range(4):
            reply = await llm.post(
                LLM + "/chat/completions", json={"model": "gpt-4o-mini", "messages": messages, **tools}
            )
            message = reply.raise_for_status().json()["choices"][0]["message"]
            text = message.get("content") or ""
            if not message.get("tool_calls"):
                break
            messages.append(message)
            for call in message["tool_calls"]:
                url = TOOL_URL.format(**orjson.loads(call["function"]["arguments"]))
                result = await llm.get(url, headers={"X-Bench-Call": args.get("UNIQUEID", cid)})
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result.text})
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        status, text = "ERROR", type(exc).__name__
    variables = {"AI_RESPONSE": text, "AI_STATUS": status, "AI_ERROR": "" if status == "OK" else text}
    await ari.post(f"/channels/{cid}/variables", json={"variables": variables})
    await ari.post(f"/channels/{cid}/continue")


async def main() -> None:
    tasks: set[asyncio.Task[None]] = set()
    token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    url = ARI.replace("http", "ws", 1) + f"/events?app={APP}&subscribeAll=false"
    async with (
        httpx.AsyncClient(base_url=ARI, auth=AUTH, limits=httpx.Limits(max_connections=20)) as ari,
        httpx.AsyncClient(
            headers={"Authorization": "Bearer bench"},
            timeout=60,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        ) as llm,
        websockets.connect(url, additional_headers={"Authorization": f"Basic {token}"}, max_size=None) as ws,
    ):
        async for frame in ws:
            event = orjson.loads(frame)
            if event["type"] == "StasisStart":
                task = asyncio.create_task(turn(ari, llm, event))
                tasks.add(task)
                task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        uvloop = None
    (uvloop.run if uvloop and E.get("BASELINE_LOOP", "auto") != "asyncio" else asyncio.run)(main())
