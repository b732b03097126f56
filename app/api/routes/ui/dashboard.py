"""Admin UI dashboard (`/ui`): status, counters and recent calls."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.api.auth import AdminUser
from app.api.deps import GatewayDep
from app.api.routes.common import CallServiceDep, PromptServiceDep, ToolServiceDep
from app.api.routes.ui.common import render
from app.services.admin.calls import CallFilter
from app.services.admin.status import gateway_status

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("", response_class=HTMLResponse, response_model=None)
async def dashboard(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    prompts: PromptServiceDep,
    tools: ToolServiceDep,
    calls_log: CallServiceDep,
) -> HTMLResponse:
    """Dashboard: status, a warning when no prompt is the default, and recent calls."""
    status_now = await gateway_status(gateway)
    calls, total_calls = await calls_log.list_calls(CallFilter(), limit=10)
    _prompts, prompt_count = await prompts.list_prompts(limit=1)
    _tools, tool_count = await tools.list_tools(limit=1)
    default_prompt = await prompts.default_prompt_name()
    return render(
        request,
        gateway,
        user,
        "dashboard.html",
        {
            "active": "dashboard",
            "status": status_now,
            "calls": calls,
            "total_calls": total_calls,
            "prompt_count": prompt_count,
            "tool_count": tool_count,
            "default_prompt": default_prompt,
        },
    )
