"""Admin UI prompt pages: list, create, edit, make default, delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.api.auth import AdminUser
from app.api.deps import GatewayDep, ProvidersDep
from app.api.routes.common import PromptServiceDep, ToolServiceDep
from app.api.routes.ui.common import (
    PAGE_SIZE,
    JsonFieldError,
    form_text,
    not_found,
    paging,
    parse_json_field,
    pretty_json,
    read_form,
    redirect,
    render,
)
from app.api.routes.ui.messages import FieldErrors, admin_errors, json_error, pydantic_errors
from app.api.routes.ui.voice import voice_admin_error, voice_form_context, voice_from_values, voice_values
from app.schemas import PROMPT_NAME_RULE, PromptCreate, PromptRead, PromptVoice
from app.services.admin.errors import AdminError, DefaultPromptRequired, NotFound
from app.services.admin.tools import ToolService
from app.services.providers.registry import ProviderRegistry

router = APIRouter(prefix="/ui", include_in_schema=False)

#: The prompt form's labels (see `prompt_form.html`), used in its error messages.
LABELS = {
    "name": "Name",
    "content": "System prompt",
    "fallback_text": "Fallback text",
    "tools": "Tools",
    "metadata": "Metadata",
    "is_default": "Default prompt",
}


@router.get("/prompts", response_class=HTMLResponse, response_model=None)
async def prompts_list(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: PromptServiceDep,
    name: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Prompt list."""
    items, total = await service.list_prompts(
        name=name or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        gateway,
        user,
        "prompts.html",
        {"active": "prompts", "prompts": items, "total": total, "name": name, **paging(page, total)},
    )


def _prompt_values(form: FormData | None = None, prompt: Any = None) -> dict[str, Any]:
    if form is not None:
        return {
            "name": form_text(form, "name"),
            "content": form.get("content") or "",
            "fallback_text": form_text(form, "fallback_text"),
            "metadata": form.get("metadata") or "",
            "tools": [t for t in form.getlist("tools") if isinstance(t, str)],
            "is_default": form.get("is_default") == "on",
            "voice": voice_values(form),
        }
    if prompt is not None:
        return {
            "name": prompt.name,
            "content": prompt.content,
            "fallback_text": prompt.fallback_text or "",
            "metadata": pretty_json(prompt.metadata),
            "tools": list(prompt.tools),
            "is_default": prompt.is_default,
            "voice": voice_values(voice=prompt.voice),
        }
    empty = {"name": "", "content": "", "fallback_text": "", "metadata": "", "tools": [], "is_default": False}
    return {**empty, "voice": voice_values()}


def _prompt_from_values(values: Mapping[str, Any]) -> tuple[PromptCreate | None, FieldErrors]:
    errors: FieldErrors = {}
    metadata: Any = None
    try:
        metadata = parse_json_field(str(values["metadata"]), expect_object=True)
    except JsonFieldError as exc:
        errors["metadata"] = json_error(LABELS["metadata"], str(exc))
    voice, voice_errors = voice_from_values(values["voice"])
    errors.update(voice_errors)
    try:
        data = PromptCreate(
            name=values["name"],
            content=str(values["content"]),
            fallback_text=values["fallback_text"] or None,
            metadata=metadata,
            tools=values["tools"],
            is_default=bool(values["is_default"]),
            voice=voice or PromptVoice(),
        )
    except ValidationError as exc:
        return None, {**pydantic_errors(exc, LABELS, {"name": PROMPT_NAME_RULE}), **errors}
    return (None, errors) if errors else (data, errors)


async def _prompt_form_page(
    request: Request,
    gateway: GatewayDep,
    user: str,
    tools: ToolService,
    providers: ProviderRegistry,
    *,
    values: dict[str, Any],
    errors: FieldErrors,
    prompt: Any = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        gateway,
        user,
        "prompt_form.html",
        {
            "active": "prompts",
            "prompt": prompt,
            "values": values,
            "errors": errors,
            "all_tools": await tools.all_tool_names(),
            "name_rule": PROMPT_NAME_RULE,
            **voice_form_context(providers),
        },
        status_code,
    )


@router.get("/prompts/new", response_class=HTMLResponse, response_model=None)
async def prompt_new(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: PromptServiceDep,
    tools: ToolServiceDep,
    providers: ProvidersDep,
) -> HTMLResponse:
    """New prompt form."""
    return await _prompt_form_page(
        request, gateway, user, tools, providers, values=_prompt_values(), errors={}
    )


@router.post("/prompts/new", response_class=HTMLResponse, response_model=None)
async def prompt_create(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: PromptServiceDep,
    tools: ToolServiceDep,
    providers: ProvidersDep,
) -> Response:
    """Create a prompt from the form."""
    form = await read_form(request, gateway, user)
    values = _prompt_values(form)
    data, errors = _prompt_from_values(values)
    if data is not None:
        try:
            created = await service.create_prompt(data)
        except AdminError as exc:
            errors = voice_admin_error(exc.field, exc.message) or admin_errors(exc, LABELS)
        else:
            return redirect(f"/ui/prompts/{created.id}", f"Prompt “{created.name}” created.")
    return await _prompt_form_page(
        request, gateway, user, tools, providers, values=values, errors=errors, status_code=422
    )


@router.get("/prompts/{prompt_id}", response_class=HTMLResponse, response_model=None)
async def prompt_edit(
    prompt_id: int,
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: PromptServiceDep,
    tools: ToolServiceDep,
    providers: ProvidersDep,
) -> HTMLResponse:
    """Edit prompt form."""
    try:
        prompt = await service.get_prompt(prompt_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    return await _prompt_form_page(
        request,
        gateway,
        user,
        tools,
        providers,
        values=_prompt_values(prompt=prompt),
        errors={},
        prompt=prompt,
    )


@router.post("/prompts/{prompt_id}", response_class=HTMLResponse, response_model=None)
async def prompt_update(
    prompt_id: int,
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: PromptServiceDep,
    tools: ToolServiceDep,
    providers: ProvidersDep,
) -> Response:
    """Save the prompt form."""
    form = await read_form(request, gateway, user)
    try:
        prompt = await service.get_prompt(prompt_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    values = _prompt_values(form)
    data, errors = _prompt_from_values(values)
    if data is not None:
        try:
            saved = await service.update_prompt(prompt_id, data)
        except AdminError as exc:
            errors = voice_admin_error(exc.field, exc.message) or admin_errors(exc, LABELS)
        else:
            done = "saved" if saved.version != prompt.version else "unchanged"
            notice = f"Prompt “{saved.name}” {done} (version {saved.version})."
            return redirect(f"/ui/prompts/{saved.id}", notice)
    return await _prompt_form_page(
        request, gateway, user, tools, providers, values=values, errors=errors, prompt=prompt, status_code=422
    )


@router.post("/prompts/{prompt_id}/default", response_class=HTMLResponse, response_model=None)
async def prompt_make_default(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: PromptServiceDep
) -> Response:
    """Make a prompt the default."""
    await read_form(request, gateway, user)
    try:
        prompt = await service.set_default_prompt(prompt_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    return redirect("/ui/prompts", f"“{prompt.name}” is now the default prompt.")


def _delete_page(
    request: Request, gateway: GatewayDep, user: str, prompt: PromptRead, status_code: int = 200
) -> HTMLResponse:
    """The confirmation page; for the default prompt it says why it cannot go instead."""
    blocked = DefaultPromptRequired(prompt.name).message if prompt.is_default else None
    return render(
        request,
        gateway,
        user,
        "confirm_delete.html",
        {
            "active": "prompts",
            "kind": "prompt",
            "name": prompt.name,
            "action": f"/ui/prompts/{prompt.id}/delete",
            "back": f"/ui/prompts/{prompt.id}",
            "warning": "Calls that name this prompt in AI_PROMPT_NAME will fail until it exists again.",
            "blocked": blocked,
        },
        status_code,
    )


@router.get("/prompts/{prompt_id}/delete", response_class=HTMLResponse, response_model=None)
async def prompt_delete_confirm(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: PromptServiceDep
) -> HTMLResponse:
    """Ask before deleting a prompt."""
    try:
        prompt = await service.get_prompt(prompt_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    return _delete_page(request, gateway, user, prompt)


@router.post("/prompts/{prompt_id}/delete", response_class=HTMLResponse, response_model=None)
async def prompt_delete(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: PromptServiceDep
) -> Response:
    """Delete a prompt (not the default one)."""
    await read_form(request, gateway, user)
    try:
        prompt = await service.get_prompt(prompt_id)
        await service.delete_prompt(prompt_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    except DefaultPromptRequired:
        return _delete_page(request, gateway, user, prompt, status.HTTP_409_CONFLICT)
    return redirect("/ui/prompts", f"Prompt “{prompt.name}” deleted.")
