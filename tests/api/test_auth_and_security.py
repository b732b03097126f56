"""Authentication (HTTP Basic, constant time), the 503 without a usable password,
one error shape, security headers and the request body cap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api import auth
from app.core.config import Settings
from tests.api.conftest import ADMIN, make_client
from tests.conftest import run_gateway

PROTECTED = [
    ("GET", "/api/v1/prompts"),
    ("POST", "/api/v1/prompts"),
    ("GET", "/api/v1/tools"),
    ("POST", "/api/v1/tools/1/test"),
    ("GET", "/api/v1/calls"),
    ("GET", "/api/v1/calls/1"),
    ("GET", "/api/v1/status"),
    ("POST", "/api/v1/chat"),
    ("GET", "/api/v1/audit"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/ui"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_admin_endpoint_needs_credentials(
    anon: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await anon.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.json() == {"error": {"code": "unauthorized", "message": "authentication required"}}


async def test_wrong_password_and_wrong_user_are_401(anon: httpx.AsyncClient) -> None:
    for user, password in [("admin", "wrong"), ("root", ADMIN[1]), ("", ""), ("admin", ADMIN[1] + "x")]:
        response = await anon.get("/api/v1/prompts", auth=(user, password))
        assert response.status_code == 401, (user, password)
        assert response.json()["error"]["message"] == "invalid credentials"


async def test_right_credentials_pass(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/prompts")).status_code == 200


async def test_user_and_password_are_both_compared_in_constant_time(
    anon: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong user name must not short-circuit the password check (no timing oracle)."""
    seen: list[tuple[str, str]] = []
    real = auth.constant_time_equals

    def spy(given: str, expected: str) -> bool:
        seen.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(auth, "constant_time_equals", spy)
    await anon.get("/api/v1/prompts", auth=("intruder", "guess"))
    assert seen == [("intruder", "admin"), ("guess", ADMIN[1])]


async def test_health_and_readiness_are_public(anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    ready = await anon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["database"]["ok"] is True
    assert ready.json()["redis"]["ok"] is True


async def test_weak_password_disables_admin_surface_with_503(api_settings: Callable[..., Settings]) -> None:
    async with (
        run_gateway(api_settings(web_ui_password="admin")) as app,
        make_client(app, ("admin", "admin")) as c,
    ):
        response = await c.get("/api/v1/prompts")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "admin_unavailable"
        assert "WEB_UI_PASSWORD is a well-known default" in response.json()["error"]["message"]
        assert (await c.get("/ui")).status_code == 503
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).status_code == 200


async def test_missing_password_in_dev_mode_uses_generated_one(
    api_settings: Callable[..., Settings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "admin-password"
    async with run_gateway(
        api_settings(web_ui_password=None, dev_mode=True, dev_admin_password_file=kept)
    ) as app:
        generated = app.state.gateway.admin_password
        assert generated
        assert f"password: {generated}" in capsys.readouterr().err
        assert kept.read_text().strip() == generated
        async with make_client(app, ("admin", generated)) as c:
            assert (await c.get("/api/v1/prompts")).status_code == 200
        async with make_client(app, ("admin", "")) as c:
            assert (await c.get("/api/v1/prompts")).status_code == 401


async def test_security_headers_on_every_answer(anon: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    for response in [await anon.get("/healthz"), await anon.get("/api/v1/prompts"), await client.get("/ui")]:
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "style-src 'self'" in csp
        assert "img-src 'self'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_large_body_is_413(client: httpx.AsyncClient) -> None:
    big = {"name": "huge", "content": "x" * (1024 * 1024 + 10)}
    response = await client.post("/api/v1/prompts", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_large_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 100_000

    response = await client.post(
        "/api/v1/prompts", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_unknown_route_uses_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_docs_are_served_without_cdn(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    redoc = await client.get("/redoc")
    assert "/docs-assets/redoc.standalone.js" in redoc.text
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/tools/{tool_id}/test" in schema["paths"]
    assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200


async def test_failed_logins_are_rate_limited_per_client_address(app: Any) -> None:
    def client_from(address: str, auth: tuple[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 40000)),
            base_url="http://gateway.test",
            auth=auth,
        )

    limit = app.state.gateway.settings.login_max_failures
    async with client_from("203.0.113.7", ("admin", "wrong-password")) as attacker:
        for _ in range(limit):
            assert (await attacker.get("/api/v1/prompts")).status_code == 401
        blocked = await attacker.get("/api/v1/prompts")
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["Retry-After"]) <= app.state.gateway.settings.login_window_seconds
        assert blocked.json()["error"]["code"] == "too_many_requests"
    # Even the right password is refused from that address until the window ends...
    async with client_from("203.0.113.7", ADMIN) as same_address:
        assert (await same_address.get("/api/v1/prompts")).status_code == 429
    # ...while the admin at another address is not affected.
    async with client_from("198.51.100.2", ADMIN) as admin:
        assert (await admin.get("/api/v1/prompts")).status_code == 200
