"""The provider registry as a user meets it: lazy SDKs, the offline model, truthful labels."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx

from app.cli import _offline_settings
from app.core.config import Settings
from app.services.providers.base import Capability
from app.testing.fake_llm import FakeLLMServer
from tests.api.conftest import make_client, tool_body
from tests.conftest import REDIS_URL, TEST_ADMIN_PASSWORD, llm_provider_overrides, run_gateway
from tests.redis_proc import free_port
from tests.utils import ToolApi

ROOT = Path(__file__).resolve().parent.parent
UNUSED_SDKS = (
    "anthropic",
    "langchain_anthropic",
    "google.genai",
    "langchain_google_genai",
    # Voice: pipecat, its ONNX runtime and the STT SDKs load with the first voice call.
    "pipecat",
    "onnxruntime",
    "pocketsphinx",
    "deepgram",
)
ALL_REAL = ("openai", "gemini", "anthropic", "openai_compatible")

STARTUP_SCRIPT = """
import asyncio, json, sys
from app.core.config import Settings
from app.services.providers.base import Capability
from app.main import create_app

settings = Settings(
    _env_file=None, database_url=sys.argv[1], redis_url=sys.argv[2], redis_key_prefix=sys.argv[3],
    ari_enabled=False, web_ui_password="correct-horse-battery-staple", secret_key="k" * 32,
    provider_overrides={"llm:openai": {"api_key": "sk-startup-test", "base_url": "http://127.0.0.1:9/v1"}},
)

async def main():
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.2)
        statuses = {f"{p.capability}:{p.name}": p.configured for p in app.state.gateway.providers.statuses()}
    return statuses

statuses = asyncio.run(main())
sys.stdout.write(json.dumps({"statuses": statuses, "modules": sorted(sys.modules)}))
"""


def test_env_example_documents_every_provider_variable() -> None:
    from app.services.providers.registry import ProviderRegistry

    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    registry = ProviderRegistry.builtin()
    needed = {name for provider in registry.all(Capability.LLM) for name in provider.env_names()}
    assert "ANTHROPIC_API_KEY" in needed and "OPENAI_COMPATIBLE_BASE_URL" in needed
    assert sorted(needed - documented) == []


async def test_startup_imports_no_sdk_of_an_unused_provider(
    tmp_path: Path, redis_prefix: str, database_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "GEMINI", "ANTHROPIC"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        STARTUP_SCRIPT,
        database_url,
        REDIS_URL,
        redis_prefix,
        cwd=str(tmp_path),  # no .env here
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    result = json.loads(out)
    # Every provider module is registered (anthropic and gemini are listed, as not configured)...
    assert result["statuses"]["llm:openai"] is True
    assert result["statuses"]["llm:anthropic"] is False and result["statuses"]["llm:gemini"] is False
    assert "app.services.providers.llm.anthropic" in result["modules"]
    # ...but the SDKs of providers the settings do not use were never imported.
    loaded = [m for m in UNUSED_SDKS if m in result["modules"]]
    assert loaded == [], f"start-up imported unused provider SDKs: {loaded}"


def _offline_app_settings(make_settings: Any, fake_llm: FakeLLMServer, offline: FakeLLMServer) -> Settings:
    """What `ai-gateway serve` builds when no key is set: no real provider, the offline one default."""
    base = make_settings(provider_overrides=llm_provider_overrides(fake_llm, *ALL_REAL))
    return make_settings(ari_enabled=False, **_offline_settings(base, offline.openai_base_url))


async def test_try_it_without_a_key_uses_the_labelled_offline_model(
    make_settings: Any, fake_llm: FakeLLMServer, tool_api: ToolApi
) -> None:
    async with FakeLLMServer() as offline:
        settings = _offline_app_settings(make_settings, fake_llm, offline)
        async with run_gateway(settings) as app, make_client(app) as c:
            tool = await c.post("/api/v1/tools", json=tool_body(tool_api.url + "/orders/{order_id}"))
            assert tool.status_code == 201, tool.text
            prompt = {"name": "shop", "content": "You answer order questions.", "tools": ["check_order"]}
            assert (await c.post("/api/v1/prompts", json=prompt)).status_code == 201

            reply = (
                await c.post("/api/v1/chat", json={"message": "check order 42", "prompt_name": "shop"})
            ).json()
            plain = (await c.post("/api/v1/chat", json={"message": "good morning"})).json()
            picker = (await c.get("/ui/chat")).text
            dashboard = (await c.get("/ui")).text
            calls = (await c.get("/ui/calls")).text
    # The tool ran, and the answer says where it came from.
    assert reply["status"] == "OK", reply
    assert [t["name"] for t in reply["tool_calls"]] == ["check_order"]
    assert tool_api.requests[0]["path"] == "/orders/42"
    assert reply["reply"].startswith("[offline model] The tool check_order returned:")
    assert plain["reply"] == "[offline model] You said: good morning"
    # The call log records the offline stand-in, never a real vendor's model.
    assert reply["model"] == plain["model"] == "offline:offline-stand-in"
    assert reply["turn"]["model"] == "offline:offline-stand-in"
    assert fake_llm.requests == [] and len(offline.requests) == 3
    # The model picker tells the truth and selects the offline model.
    options = dict(re.findall(r'<option value="([a-z_]+)"[^>]*>([^<]*)</option>', picker))
    assert options["offline"] == "Offline stand-in (canned answers, not a real model) (ready)"
    assert options["openai"] == "OpenAI (not configured)"
    assert "key set" not in picker
    assert re.search(r'<option value="offline" selected>', picker)
    # The dashboard says how to add a key; timestamps carry their time zone.
    assert "Answers come from the offline stand-in, not a real model." in dashboard
    assert "<code>OPENAI_API_KEY</code>" in dashboard and ".env.example" in dashboard
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", calls)


async def test_serve_without_a_key_offers_the_offline_model(tmp_path: Path, redis_prefix: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "GEMINI", "ANTHROPIC"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=f"sqlite:///{tmp_path}/gateway.db",
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=redis_prefix,
        ARI_ENABLED="false",
        WEB_UI_PASSWORD=TEST_ADMIN_PASSWORD,
        SECRET_KEY="serve-test-secret-key-0123456789",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--port",
        str(port),
        cwd=str(tmp_path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", auth=("admin", TEST_ADMIN_PASSWORD)
        ) as c:
            for _ in range(600):
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            reply = (await c.post("/api/v1/chat", json={"message": "hello there"}, timeout=30)).json()
    finally:
        proc.terminate()
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert "No LLM key is set: using the OFFLINE STAND-IN model" in output, output[-2000:]
    assert reply["reply"] == "[offline model] You said: hello there", reply
    assert reply["model"] == "offline:offline-stand-in"
