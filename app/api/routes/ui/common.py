"""What the admin UI pages share: templates, rendering, forms with CSRF, field errors, paging.

Forms are validated on the server with the API's own schemas and service rules;
on error the page is shown again with the message next to the field and what the
user typed. JSON fields (schema, metadata, headers, body template) are textareas
whose parse errors give line and column. Every state-changing form carries a CSRF
token (HTTP Basic credentials are sent by the browser automatically, so a token is
what proves the form came from this UI).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from app.api.auth import csrf_token_valid, make_csrf_token
from app.api.deps import GatewayDep
from app.core.security import MASK
from app.services.admin.errors import NotFound

TEMPLATES_DIR = Path(__file__).resolve().parents[3] / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
#: Rows per page of the UI's lists.
PAGE_SIZE = 25


def pretty_json(value: Any) -> str:
    """JSON (a value or a JSON string) indented for a textarea; None is empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            decoded: Any = json.loads(value)
        except ValueError:
            return value
        value = decoded
    return json.dumps(value, indent=2, ensure_ascii=False)


def when(value: datetime | str | None) -> str:
    """A timestamp with its time zone (stored times without one are UTC): ``2026-11-30 21:40:18 UTC``."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z")


templates.env.filters["pretty_json"] = pretty_json
templates.env.filters["when"] = when
templates.env.globals["MASK"] = MASK


def render(
    request: Request,
    gateway: GatewayDep,
    user: str,
    template: str,
    context: Mapping[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    """Render `template` with the user, a fresh CSRF token and the `?notice=` banner."""
    values = {
        "user": user,
        "csrf_token": make_csrf_token(gateway, user),
        "notice": request.query_params.get("notice"),
        **context,
    }
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def redirect(path: str, notice: str | None = None) -> RedirectResponse:
    """303 to `path`, with `notice` shown as a banner on the next page."""
    target = f"{path}?{urlencode({'notice': notice})}" if notice else path
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


async def read_form(request: Request, gateway: GatewayDep, user: str) -> FormData:
    """The posted form, once its CSRF token is checked.

    Raises:
        HTTPException: 403 when the token is missing, wrong or expired.
    """
    form = await request.form()
    token = form.get("csrf_token")
    if not csrf_token_valid(gateway, user, token if isinstance(token, str) else None):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or expired form token; reload the page")
    return form


def form_text(form: FormData, name: str) -> str:
    """A text field of the form, stripped (empty when absent)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def not_found(request: Request, gateway: GatewayDep, user: str, exc: NotFound) -> HTMLResponse:
    """The 404 page for a missing prompt, tool or call."""
    return render(request, gateway, user, "error.html", {"title": "Not found", "message": exc.message}, 404)


class JsonFieldError(ValueError):
    """A JSON textarea that does not parse (message has line and column)."""


def parse_json_field(text: str, *, expect_object: bool = False, required: bool = False) -> Any:
    """Parse a JSON textarea; empty means None.

    Raises:
        JsonFieldError: invalid JSON (with line and column), or not an object when one is expected.
    """
    if not text.strip():
        if required:
            raise JsonFieldError("required")
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonFieldError(f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if expect_object and not isinstance(value, dict):
        raise JsonFieldError("must be a JSON object ({ ... })")
    return value


def paging(page: int, total: int) -> dict[str, Any]:
    """Template values for the pager: this page and the page count."""
    pages = max(1, -(-total // PAGE_SIZE))
    return {"page": page, "pages": pages}
