"""Mounts every router of the admin surface and the OpenAPI docs.

The OpenAPI schema (`/openapi.json`), Swagger UI (`/docs`) and ReDoc (`/redoc`) are
served here behind the admin login, with their JavaScript from the `fastapi-offline`
package, mounted at `/docs-assets` (no CDN, nothing vendored).
"""

from __future__ import annotations

import functools
import importlib.resources

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse

from app.api.auth import AdminUser
from app.api.routes import audit, calls, chat, prompts, status, tools, ui

#: The docs pages need inline styles (Swagger UI, ReDoc) and ReDoc a blob: worker;
#: scripts still come only from our origin.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)

_SWAGGER_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/img/logo.svg" type="image/svg+xml">
<link rel="stylesheet" href="/docs-assets/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/static/js/swagger-init.js"></script></body></html>"""

_REDOC_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/img/logo.svg" type="image/svg+xml"></head>
<body><div id="redoc" data-openapi-url="/openapi.json"></div>
<script src="/docs-assets/redoc.standalone.js"></script>
<script src="/static/js/redoc-init.js"></script></body></html>"""


REDOC_CREDIT_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.cache
def _redoc_bundle() -> bytes:
    """ReDoc from the fastapi-offline package, its one CDN image pointed at our own logo."""
    source = importlib.resources.files("fastapi_offline") / "static" / "redoc.standalone.js"
    return source.read_bytes().replace(REDOC_CREDIT_LOGO.encode(), b"/static/img/logo.svg")


def _docs_routes(app: FastAPI) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    title = app.title

    @router.get("/docs-assets/redoc.standalone.js", response_model=None)
    async def redoc_bundle() -> Response:
        """ReDoc's script, served so that it loads nothing from outside."""
        return Response(
            _redoc_bundle(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
        )

    @router.get("/openapi.json", response_model=None)
    async def openapi_json(_user: AdminUser) -> JSONResponse:
        """OpenAPI schema of the admin API."""
        return JSONResponse(app.openapi())

    @router.get("/docs", response_class=HTMLResponse, response_model=None)
    async def swagger_ui(_user: AdminUser) -> HTMLResponse:
        """Swagger UI."""
        return HTMLResponse(_SWAGGER_HTML.format(title=title), headers={"Content-Security-Policy": DOCS_CSP})

    @router.get("/redoc", response_class=HTMLResponse, response_model=None)
    async def redoc(_user: AdminUser) -> HTMLResponse:
        """ReDoc."""
        return HTMLResponse(_REDOC_HTML.format(title=title), headers={"Content-Security-Policy": DOCS_CSP})

    return router


def include_routers(app: FastAPI) -> None:
    """Add the API, UI, status and (authenticated) docs routes to `app`.

    `app` must be created with ``docs_url=None, redoc_url=None, openapi_url=None`` so that
    FastAPI's public versions of the docs do not exist.
    """
    for module in (prompts, tools, calls, chat, audit, status, ui):
        app.include_router(module.router)
    app.include_router(_docs_routes(app))
