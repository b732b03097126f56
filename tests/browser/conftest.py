"""Fixtures of the browser tests: the real gateway on a loopback port and headless Chromium.

Browsers cannot be downloaded here, so Playwright drives Debian's `chromium`
(`/usr/bin/chromium`, or `CHROMIUM_PATH`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from app.core.config import Settings
from app.testing.fake_ari import FakeAriServer
from tests.conftest import TEST_ADMIN_PASSWORD, run_gateway
from tests.utils import LoopbackServer

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
#: The README's pictures (tracked): refreshed only by `make screenshots` (UPDATE_SCREENSHOTS=1).
README_SCREENSHOTS = REPO / "docs" / "screenshots"
#: Where an ordinary test run puts its screenshots (git-ignored), so `make test` leaves the tree clean.
TEST_SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def screenshot_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """`docs/screenshots` when `UPDATE_SCREENSHOTS=1` (`make screenshots`), else `test-artifacts/screenshots`."""
    return README_SCREENSHOTS if environ.get("UPDATE_SCREENSHOTS") == "1" else TEST_SCREENSHOTS


pytestmark = pytest.mark.browser


@dataclass
class LiveGateway:
    """The gateway served over real HTTP."""

    url: str
    app: object


@pytest.fixture
async def live_gateway(
    make_settings: Callable[..., Settings], fake_ari: FakeAriServer
) -> AsyncIterator[LiveGateway]:
    """The real app (lifespan, fake ARI connected) served by uvicorn on 127.0.0.1."""
    async with run_gateway(make_settings(), fake_ari) as app:
        server = LoopbackServer(app)
        await server.start()
        try:
            yield LiveGateway(server.url, app)
        finally:
            await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium (Debian's build)."""
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        message = f"chromium not found at {CHROMIUM}; apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser is a broken CI, not a skip
        pytest.skip(message)
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless"]
        )
        yield instance
        await instance.close()


@pytest.fixture
async def admin_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A browser session logged in with the admin's HTTP Basic credentials."""
    context = await browser.new_context(
        http_credentials={"username": "admin", "password": TEST_ADMIN_PASSWORD},
        viewport={"width": 1280, "height": 860},
        color_scheme="light",
        reduced_motion="reduce",
    )
    yield context
    await context.close()


@pytest.fixture
def screenshots() -> Path:
    """Where this run's screenshots go (see `screenshot_dir`)."""
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
