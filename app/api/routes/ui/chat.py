"""Admin UI "Try it" page: one agent turn with a chosen prompt and model."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.api.auth import AdminUser
from app.api.deps import GatewayDep
from app.api.routes.common import PromptServiceDep
from app.api.routes.ui.common import render
from app.services.providers.base import Capability, UnknownProvider
from app.services.providers.llm import ModelSpec

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/chat", response_class=HTMLResponse, response_model=None)
async def chat_page(
    request: Request, gateway: GatewayDep, user: AdminUser, service: PromptServiceDep
) -> HTMLResponse:
    """Try the agent with a chosen prompt and model."""
    prompts, _total = await service.list_prompts(limit=200)
    settings = gateway.settings
    models = [
        {"value": p.name, "label": f"{p.label} ({'ready' if p.configured else 'not configured'})"}
        for p in gateway.providers.statuses()
        if p.capability is Capability.LLM
    ]
    return render(
        request,
        gateway,
        user,
        "chat.html",
        {
            "active": "chat",
            "prompts": prompts,
            "models": models,
            "default_model": _provider_of(settings.default_ai_model),
        },
    )


def _provider_of(ai_model: str) -> str:
    """The provider part of an `AI_MODEL` value (``openai:gpt-4o`` → ``openai``), for the picker."""
    try:
        return ModelSpec.parse(ai_model).provider
    except UnknownProvider:
        return ""
