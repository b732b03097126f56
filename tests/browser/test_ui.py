"""The admin UI in a real browser (headless Chromium): the whole admin story, end to end.

Log in, create a tool with a JSON Schema (see a validation error, fix it), test it,
create a prompt and make it the default, talk to it on "Try it" through the OpenAI
stand-in so the tool gets called, then find the conversation in the call list with
its transcript. Screenshots of the main pages go to `test-artifacts/screenshots/`
(`make screenshots` writes them to `docs/screenshots/` for the README instead).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from app.testing.fake_ari import FakeAriServer
from app.testing.fake_llm import FakeLLMServer, LLMRequest, Reply, TextReply, ToolCallReply
from tests.browser.conftest import LiveGateway
from tests.conftest import TEST_ADMIN_PASSWORD
from tests.utils import ToolApi

pytestmark = pytest.mark.browser

BROKEN_SCHEMA = """{
  "type": "object",
  "properties": {
    "order_id": {"type": "text", "description": "Order number"}
  },
  "required": ["order_id"]
}"""
ORDER_SCHEMA = BROKEN_SCHEMA.replace('"text"', '"string"')


def order_agent(request: LLMRequest) -> Reply:
    """The OpenAI stand-in's behaviour: look the order up, then answer from the tool result."""
    last = request.messages[-1]
    if last.role == "tool":
        status = json.loads(last.content).get("status", "unknown")
        return TextReply(f"Your order 42 has {status} and should arrive in 2 days.")
    if "check_order" in request.tool_names and "order" in request.last_user_text.lower():
        return ToolCallReply([("check_order", {"order_id": "42"})])
    return TextReply("How can I help you today?")


def watch_console(page: Page) -> list[str]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # 4xx answers to failed form posts are expected; CSP violations and script errors are not
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


async def test_admin_story_in_a_browser(
    live_gateway: LiveGateway,
    admin_context: BrowserContext,
    fake_llm: FakeLLMServer,
    tool_api: ToolApi,
    fake_ari: FakeAriServer,
    screenshots: Path,
) -> None:
    fake_llm.set_responder(order_agent)
    page = await admin_context.new_page()
    console_errors = watch_console(page)
    base = live_gateway.url
    nav = page.get_by_role("navigation", name="Main")

    # --- log in: the dashboard shows the gateway's state
    await page.goto(base + "/ui")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await expect(page.get_by_text("Connected")).to_be_visible()

    # --- create a tool; a broken JSON Schema is refused next to the field, input kept
    await nav.get_by_role("link", name="Tools", exact=True).click()
    await page.get_by_role("link", name="New tool").click()
    await page.get_by_label("Name", exact=True).fill("check_order")
    await page.get_by_label("Description").fill("Look up an order's delivery status by order number.")
    await page.get_by_label("URL").fill(tool_api.url + "/orders/{order_id}")
    await page.get_by_label("Parameters (JSON Schema)").fill(BROKEN_SCHEMA)
    await page.get_by_label("Headers (JSON object, optional)").fill('{"X-Api-Key": "k-browser-1"}')
    await page.get_by_role("button", name="Create tool").click()
    error = page.locator("#parameters-error")
    await expect(error).to_contain_text("not a valid JSON Schema")
    await expect(page.get_by_label("Parameters (JSON Schema)")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Description")).to_have_value(
        "Look up an order's delivery status by order number."
    )
    await page.screenshot(path=str(screenshots / "tool-validation-error.png"), full_page=True)

    # ... a JSON syntax error names line and column
    await page.get_by_label("Parameters (JSON Schema)").fill('{\n  "type": "object",\n  "properties": {,}\n}')
    await page.get_by_role("button", name="Create tool").click()
    await expect(error).to_contain_text("line 3, column 18")

    await page.get_by_label("Parameters (JSON Schema)").fill(ORDER_SCHEMA)
    await page.get_by_role("button", name="Create tool").click()
    await expect(page.get_by_role("status").first).to_contain_text("Tool “check_order” created.")
    # the secret header is write-only
    await expect(page.get_by_label("Headers (JSON object, optional)")).to_contain_text("********")
    assert "k-browser-1" not in await page.content()

    # --- test this tool
    await page.get_by_label("Arguments (JSON object)").fill('{"order_id": "42"}')
    await page.get_by_role("button", name="Run test").click()
    result = page.locator(".test-result")
    await expect(result).to_contain_text("HTTP 200")
    await expect(result).to_contain_text("shipped")
    assert tool_api.requests[-1]["headers"]["x-api-key"] == "k-browser-1"
    await page.screenshot(path=str(screenshots / "tool-edit-and-test.png"), full_page=True)

    # --- create a prompt that may call the tool, and make it the default
    await nav.get_by_role("link", name="Prompts", exact=True).click()
    await page.get_by_role("link", name="New prompt").click()
    await page.get_by_label("Name", exact=True).fill("support")
    await page.get_by_label("System prompt").fill(
        "You are the phone assistant of Acme. Look orders up with check_order and answer in one sentence."
    )
    await page.get_by_label("Fallback text").fill("Sorry, let me transfer you to a colleague.")
    await page.get_by_label("check_order").check()
    await page.get_by_role("button", name="Create prompt").click()
    await expect(page.get_by_role("status").first).to_contain_text("Prompt “support” created.")
    await nav.get_by_role("link", name="Prompts", exact=True).click()
    await page.get_by_role("button", name="Make default support").click()
    await expect(page.get_by_role("status").first).to_contain_text("“support” is now the default prompt.")
    support_row = page.get_by_role("row").filter(has_text="support")
    await expect(support_row.get_by_text("default", exact=True)).to_be_visible()
    await page.screenshot(path=str(screenshots / "prompts.png"), full_page=True)

    # --- try it: the agent calls the tool through the OpenAI stand-in
    await nav.get_by_role("link", name="Try it").click()
    await expect(page.get_by_label("Prompt")).to_have_value("support")
    await page.get_by_label("Model").select_option("openai")
    await page.get_by_label("Message").fill("Hi, where is my order 42?")
    await page.get_by_role("button", name="Send").click()
    agent = page.locator(".bubble.agent")
    await expect(agent).to_contain_text("Your order 42 has shipped and should arrive in 2 days.")
    tool_call = page.locator(".chat-log details.tool-call")
    await expect(tool_call).to_contain_text("check_order")
    await tool_call.locator("summary").click()
    await expect(tool_call).to_contain_text('"order_id": "42"')
    await page.get_by_label("Message").fill("Thank you!")
    await page.get_by_role("button", name="Send").click()
    await expect(agent.nth(1)).to_contain_text("How can I help you today?")
    await page.screenshot(path=str(screenshots / "try-it-chat.png"), full_page=True)
    assert tool_api.requests[-1]["path"] == "/orders/42"
    assert fake_llm.requests[0].system is not None and "Acme" in fake_llm.requests[0].system

    # --- a phone call: the dialplan sends a caller into Stasis with no AI_PROMPT_NAME,
    # so the new default prompt answers, tool included
    chan = await fake_ari.place_call(
        "ai_ari_app,USER_INPUT=Where is my order 42?,UNIQUEID=phone-conv-1",
        caller_number="5551234",
        caller_name="Jane Caller",
    )
    await chan.wait_left_stasis(10)
    assert chan.get_variable("AI_STATUS") == "OK"
    assert "has shipped" in (chan.get_variable("AI_RESPONSE") or "")
    await live_gateway.app.state.gateway.call_log.flush()  # type: ignore[attr-defined]

    # --- the conversation is in the call list, with its transcript
    await nav.get_by_role("link", name="Calls", exact=True).click()
    phone_row = page.get_by_role("row").filter(has_text="5551234")
    await expect(phone_row).to_have_count(1)
    await expect(phone_row).to_contain_text("support")
    await expect(phone_row).to_contain_text("OK")
    row = page.get_by_role("row").filter(has_text="chat")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("support")
    await expect(row).to_contain_text("2")  # two turns
    await page.screenshot(path=str(screenshots / "calls.png"), full_page=True)
    await row.get_by_role("link").click()
    await expect(page.get_by_role("heading", name="Chat #")).to_be_visible()
    transcript = page.get_by_role("region", name="Transcript")
    await expect(transcript.locator(".bubble.caller").first).to_contain_text("Hi, where is my order 42?")
    await expect(transcript.locator(".bubble.agent").first).to_contain_text("has shipped")
    details = transcript.locator("details.tool-call")
    await details.locator("summary").click()
    await expect(details).to_contain_text('"status": "shipped"')
    await page.screenshot(path=str(screenshots / "call-detail.png"), full_page=True)

    # --- the dashboard and the audit log show what happened
    await nav.get_by_role("link", name="Dashboard").click()
    await expect(page.get_by_role("region", name="Status")).to_contain_text("Connected")
    await page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    await nav.get_by_role("link", name="Audit").click()
    await expect(page.get_by_role("table").first).to_contain_text("check_order")
    assert "k-browser-1" not in await page.content()
    await page.screenshot(path=str(screenshots / "audit.png"), full_page=True)

    assert console_errors == [], console_errors  # no CSP violations, no script errors


async def test_delete_asks_for_confirmation(live_gateway: LiveGateway, admin_context: BrowserContext) -> None:
    async with httpx.AsyncClient(base_url=live_gateway.url, auth=("admin", TEST_ADMIN_PASSWORD)) as api:
        assert (await api.post("/api/v1/prompts", json={"name": "sales", "content": "Sell."})).is_success
    page = await admin_context.new_page()
    await page.goto(live_gateway.url + "/ui/prompts")
    await page.get_by_role("link", name="Delete default").click()
    await expect(page.get_by_role("heading", name="“default” cannot be deleted")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("make another prompt the default first")
    await page.goto(live_gateway.url + "/ui/prompts")
    await page.get_by_role("link", name="Delete sales").click()
    await expect(page.get_by_role("heading", name="Delete prompt “sales”?")).to_be_visible()
    await page.get_by_role("link", name="Cancel").click()
    await expect(page.get_by_role("heading", name="Prompt “sales”")).to_be_visible()
    await page.get_by_role("link", name="Delete").click()
    await page.get_by_role("button", name="Yes, delete “sales”").click()
    await expect(page.get_by_role("status").first).to_contain_text("Prompt “sales” deleted.")
    await expect(page.get_by_role("link", name="Delete sales")).to_have_count(0)


async def test_wrong_password_is_refused(live_gateway: LiveGateway, browser: Browser) -> None:
    context = await browser.new_context(http_credentials={"username": "admin", "password": "nope"})
    page = await context.new_page()
    response = await page.goto(live_gateway.url + "/ui")
    assert response is not None and response.status == 401
    await context.close()
    context = await browser.new_context(
        http_credentials={"username": "admin", "password": TEST_ADMIN_PASSWORD}
    )
    page = await context.new_page()
    response = await page.goto(live_gateway.url + "/ui")
    assert response is not None and response.status == 200
    await context.close()


async def test_layout_is_responsive(live_gateway: LiveGateway, browser: Browser, screenshots: Path) -> None:
    context = await browser.new_context(
        http_credentials={"username": "admin", "password": TEST_ADMIN_PASSWORD},
        viewport={"width": 390, "height": 844},
        is_mobile=True,
    )
    page = await context.new_page()
    await page.goto(live_gateway.url + "/ui/tools/new")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"page scrolls sideways on a phone ({width}px)"
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    await page.screenshot(path=str(screenshots / "mobile-tool-form.png"), full_page=False)
    await context.close()


async def test_api_docs_render_from_local_assets(
    live_gateway: LiveGateway, admin_context: BrowserContext, screenshots: Path
) -> None:
    page = await admin_context.new_page()
    problems = watch_console(page)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(live_gateway.url) else None)
    await page.goto(live_gateway.url + "/docs")
    await expect(page.get_by_text("/api/v1/tools/{tool_id}/test")).to_be_visible(timeout=15_000)
    await page.screenshot(path=str(screenshots / "swagger-ui.png"))
    await page.goto(live_gateway.url + "/redoc")
    await expect(page.get_by_role("heading", name="Asterisk AI Gateway").first).to_be_visible(timeout=15_000)
    assert [u for u in outside if not u.startswith(("data:", "blob:"))] == []
    assert problems == [], problems
