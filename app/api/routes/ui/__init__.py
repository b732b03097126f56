"""Admin web UI at `/ui`: server-rendered Jinja2 pages over the same admin services as the API.

One module per resource; `common` holds what the pages share (templates, forms
with CSRF, field errors, paging).
"""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes.ui import audit, calls, chat, dashboard, prompts, tools

router = APIRouter()
for _module in (dashboard, prompts, tools, calls, chat, audit):
    router.include_router(_module.router)
