"""Admin web UI at `/ui`: server-rendered Jinja2 pages over the same admin service as the API.

Forms are validated on the server with the API's own schemas and service rules;
on error the page is shown again with the message next to the field and what the
user typed. JSON fields (schema, metadata, headers, body template) are textareas
whose parse errors give line and column. Every state-changing form carries a CSRF
token (HTTP Basic credentials are sent by the browser automatically, so a token is
what proves the form came from this UI).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.api.auth import AdminUser, csrf_token_valid, make_csrf_token
from app.api.deps import GatewayDep
from app.api.errors import field_from_loc
from app.api.routes.common import AdminServiceDep
from app.core.security import MASK
from app.schemas import PromptCreate, ToolCreate, ToolRead
from app.services.admin.service import AdminError, CallFilter, NotFound, gateway_status
from app.services.domain import CallContext
from app.services.providers.llm.factory import PROVIDERS

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
PAGE_SIZE = 25

router = APIRouter(prefix="/ui", include_in_schema=False)

FieldErrors = dict[str, str]


# --- Template helpers -------------------------------------------------------------------


def _pretty_json(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            decoded: Any = json.loads(value)
        except ValueError:
            return value
        value = decoded
    return json.dumps(value, indent=2, ensure_ascii=False)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["pretty_json"] = _pretty_json
templates.env.filters["when"] = _when
templates.env.globals["MASK"] = MASK


def _render(
    request: Request,
    gateway: GatewayDep,
    user: str,
    template: str,
    context: Mapping[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    values = {
        "user": user,
        "csrf_token": make_csrf_token(gateway, user),
        "notice": request.query_params.get("notice"),
        **context,
    }
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def _redirect(path: str, notice: str | None = None) -> RedirectResponse:
    target = f"{path}?{urlencode({'notice': notice})}" if notice else path
    return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)


async def _form(request: Request, gateway: GatewayDep, user: str) -> FormData:
    form = await request.form()
    token = form.get("csrf_token")
    if not csrf_token_valid(gateway, user, token if isinstance(token, str) else None):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid or expired form token; reload the page")
    return form


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _not_found(request: Request, gateway: GatewayDep, user: str, exc: NotFound) -> HTMLResponse:
    return _render(request, gateway, user, "error.html", {"title": "Not found", "message": exc.message}, 404)


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


def _pydantic_errors(exc: ValidationError) -> FieldErrors:
    errors: FieldErrors = {}
    for error in exc.errors():
        path = field_from_loc(error.get("loc", ())) or "form"
        top, _, rest = path.partition(".")
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "string_pattern_mismatch" and top == "name":
            message = "use letters, digits, '-' and '_' only (no spaces)"
        if top == "headers" and error.get("type") == "string_type":
            message = "header value must be a string"
        errors.setdefault(top, f"{rest}: {message}" if rest else message)
    return errors


def _admin_error(exc: AdminError) -> FieldErrors:
    field = exc.field or "form"
    top, _, rest = field.partition(".")
    return {top: f"{rest}: {exc.message}" if rest else exc.message}


# --- Dashboard --------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse, response_model=None)
async def dashboard(
    request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """Dashboard: status and recent calls."""
    status_now = await gateway_status(gateway)
    calls, total_calls = await service.list_calls(CallFilter(), limit=10)
    _prompts, prompt_count = await service.list_prompts(limit=1)
    _tools, tool_count = await service.list_tools(limit=1)
    return _render(
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
        },
    )


# --- Prompts ----------------------------------------------------------------------------


@router.get("/prompts", response_class=HTMLResponse, response_model=None)
async def prompts_list(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: AdminServiceDep,
    name: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Prompt list."""
    items, total = await service.list_prompts(
        name=name or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return _render(
        request,
        gateway,
        user,
        "prompts.html",
        {"active": "prompts", "prompts": items, "total": total, "name": name, **_paging(page, total)},
    )


def _paging(page: int, total: int) -> dict[str, Any]:
    pages = max(1, -(-total // PAGE_SIZE))
    return {"page": page, "pages": pages}


def _prompt_values(form: FormData | None = None, prompt: Any = None) -> dict[str, Any]:
    if form is not None:
        return {
            "name": _text(form, "name"),
            "content": form.get("content") or "",
            "fallback_text": _text(form, "fallback_text"),
            "metadata": form.get("metadata") or "",
            "tools": [t for t in form.getlist("tools") if isinstance(t, str)],
            "is_default": form.get("is_default") == "on",
        }
    if prompt is not None:
        return {
            "name": prompt.name,
            "content": prompt.content,
            "fallback_text": prompt.fallback_text or "",
            "metadata": _pretty_json(prompt.metadata),
            "tools": list(prompt.tools),
            "is_default": prompt.is_default,
        }
    return {"name": "", "content": "", "fallback_text": "", "metadata": "", "tools": [], "is_default": False}


def _prompt_from_values(values: Mapping[str, Any]) -> tuple[PromptCreate | None, FieldErrors]:
    errors: FieldErrors = {}
    metadata: Any = None
    try:
        metadata = parse_json_field(str(values["metadata"]), expect_object=True)
    except JsonFieldError as exc:
        errors["metadata"] = str(exc)
    try:
        data = PromptCreate(
            name=values["name"],
            content=str(values["content"]),
            fallback_text=values["fallback_text"] or None,
            metadata=metadata,
            tools=values["tools"],
            is_default=bool(values["is_default"]),
        )
    except ValidationError as exc:
        return None, {**_pydantic_errors(exc), **errors}
    return (None, errors) if errors else (data, errors)


async def _prompt_form_page(
    request: Request,
    gateway: GatewayDep,
    user: str,
    service: AdminServiceDep,
    *,
    values: dict[str, Any],
    errors: FieldErrors,
    prompt: Any = None,
    status_code: int = 200,
) -> HTMLResponse:
    return _render(
        request,
        gateway,
        user,
        "prompt_form.html",
        {
            "active": "prompts",
            "prompt": prompt,
            "values": values,
            "errors": errors,
            "all_tools": await service.all_tool_names(),
        },
        status_code,
    )


@router.get("/prompts/new", response_class=HTMLResponse, response_model=None)
async def prompt_new(
    request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """New prompt form."""
    return await _prompt_form_page(request, gateway, user, service, values=_prompt_values(), errors={})


@router.post("/prompts/new", response_class=HTMLResponse, response_model=None)
async def prompt_create(
    request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Create a prompt from the form."""
    form = await _form(request, gateway, user)
    values = _prompt_values(form)
    data, errors = _prompt_from_values(values)
    if data is not None:
        try:
            created = await service.create_prompt(data)
        except AdminError as exc:
            errors = _admin_error(exc)
        else:
            return _redirect(f"/ui/prompts/{created.id}", f"Prompt “{created.name}” created.")
    return await _prompt_form_page(
        request, gateway, user, service, values=values, errors=errors, status_code=422
    )


@router.get("/prompts/{prompt_id}", response_class=HTMLResponse, response_model=None)
async def prompt_edit(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """Edit prompt form."""
    try:
        prompt = await service.get_prompt(prompt_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return await _prompt_form_page(
        request, gateway, user, service, values=_prompt_values(prompt=prompt), errors={}, prompt=prompt
    )


@router.post("/prompts/{prompt_id}", response_class=HTMLResponse, response_model=None)
async def prompt_update(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Save the prompt form."""
    form = await _form(request, gateway, user)
    try:
        prompt = await service.get_prompt(prompt_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    values = _prompt_values(form)
    data, errors = _prompt_from_values(values)
    if data is not None:
        try:
            saved = await service.update_prompt(prompt_id, data)
        except AdminError as exc:
            errors = _admin_error(exc)
        else:
            return _redirect(
                f"/ui/prompts/{saved.id}", f"Prompt “{saved.name}” saved (version {saved.version})."
            )
    return await _prompt_form_page(
        request, gateway, user, service, values=values, errors=errors, prompt=prompt, status_code=422
    )


@router.post("/prompts/{prompt_id}/default", response_class=HTMLResponse, response_model=None)
async def prompt_make_default(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Make a prompt the default."""
    await _form(request, gateway, user)
    try:
        prompt = await service.set_default_prompt(prompt_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return _redirect("/ui/prompts", f"“{prompt.name}” is now the default prompt.")


@router.get("/prompts/{prompt_id}/delete", response_class=HTMLResponse, response_model=None)
async def prompt_delete_confirm(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """Ask before deleting a prompt."""
    try:
        prompt = await service.get_prompt(prompt_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return _render(
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
            "warning": "Calls that name this prompt in AI_PROMPT_NAME will fail until it exists again."
            + (" It is the default prompt." if prompt.is_default else ""),
        },
    )


@router.post("/prompts/{prompt_id}/delete", response_class=HTMLResponse, response_model=None)
async def prompt_delete(
    prompt_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Delete a prompt."""
    await _form(request, gateway, user)
    try:
        prompt = await service.get_prompt(prompt_id)
        await service.delete_prompt(prompt_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return _redirect("/ui/prompts", f"Prompt “{prompt.name}” deleted.")


# --- Tools ------------------------------------------------------------------------------

_DEFAULT_PARAMETERS = '{\n  "type": "object",\n  "properties": {},\n  "required": []\n}'


def _tool_values(form: FormData | None = None, tool: ToolRead | None = None) -> dict[str, Any]:
    if form is not None:
        return {
            "name": _text(form, "name"),
            "description": form.get("description") or "",
            "url": _text(form, "url"),
            "method": _text(form, "method") or "GET",
            "args_location": _text(form, "args_location") or "auto",
            "timeout_seconds": _text(form, "timeout_seconds") or "5",
            "enabled": form.get("enabled") == "on",
            "parameters": form.get("parameters") or "",
            "headers": form.get("headers") or "",
            "secret_headers": _text(form, "secret_headers"),
            "body_template": form.get("body_template") or "",
        }
    if tool is not None:
        return {
            "name": tool.name,
            "description": tool.description,
            "url": tool.url,
            "method": tool.method,
            "args_location": tool.args_location,
            "timeout_seconds": f"{tool.timeout_seconds:g}",
            "enabled": tool.enabled,
            "parameters": _pretty_json(tool.parameters),
            "headers": _pretty_json(tool.headers) if tool.headers else "",
            "secret_headers": ", ".join(tool.secret_headers),
            "body_template": _pretty_json(tool.body_template),
        }
    return {
        "name": "",
        "description": "",
        "url": "https://",
        "method": "GET",
        "args_location": "auto",
        "timeout_seconds": "5",
        "enabled": True,
        "parameters": _DEFAULT_PARAMETERS,
        "headers": "",
        "secret_headers": "",
        "body_template": "",
    }


def _tool_from_values(values: Mapping[str, Any]) -> tuple[ToolCreate | None, FieldErrors]:
    errors: FieldErrors = {}
    parsed: dict[str, Any] = {}
    for name, expect_object, required in (
        ("parameters", True, True),
        ("headers", True, False),
        ("body_template", False, False),
    ):
        try:
            parsed[name] = parse_json_field(str(values[name]), expect_object=expect_object, required=required)
        except JsonFieldError as exc:
            errors[name] = str(exc)
    try:
        data = ToolCreate(
            name=values["name"],
            description=str(values["description"]),
            url=values["url"],
            method=values["method"],
            args_location=values["args_location"],
            timeout_seconds=values["timeout_seconds"],
            enabled=bool(values["enabled"]),
            parameters=parsed.get("parameters") or {"type": "object", "properties": {}},
            headers=parsed.get("headers") or {},
            secret_headers=[h.strip() for h in str(values["secret_headers"]).split(",") if h.strip()],
            body_template=parsed.get("body_template"),
        )
    except ValidationError as exc:
        return None, {**_pydantic_errors(exc), **errors}
    return (None, errors) if errors else (data, errors)


def _tool_page(
    request: Request,
    gateway: GatewayDep,
    user: str,
    *,
    values: dict[str, Any],
    errors: FieldErrors,
    tool: ToolRead | None = None,
    test: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return _render(
        request,
        gateway,
        user,
        "tool_form.html",
        {
            "active": "tools",
            "tool": tool,
            "values": values,
            "errors": errors,
            "test": test
            or {"args": _example_args(tool), "caller_id_number": "", "result": None, "error": None},
            "methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
            "locations": ["auto", "query", "json"],
        },
        status_code,
    )


def _example_args(tool: ToolRead | None) -> str:
    if tool is None:
        return "{}"
    properties = (tool.parameters or {}).get("properties") or {}
    example = dict.fromkeys(properties, "") if isinstance(properties, dict) else {}
    return json.dumps(example, indent=2)


@router.get("/tools", response_class=HTMLResponse, response_model=None)
async def tools_list(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: AdminServiceDep,
    name: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Tool list."""
    items, total = await service.list_tools(name=name or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return _render(
        request,
        gateway,
        user,
        "tools.html",
        {"active": "tools", "tools": items, "total": total, "name": name, **_paging(page, total)},
    )


@router.get("/tools/new", response_class=HTMLResponse, response_model=None)
async def tool_new(request: Request, gateway: GatewayDep, user: AdminUser) -> HTMLResponse:
    """New tool form."""
    return _tool_page(request, gateway, user, values=_tool_values(), errors={})


@router.post("/tools/new", response_class=HTMLResponse, response_model=None)
async def tool_create(
    request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Create a tool from the form."""
    form = await _form(request, gateway, user)
    values = _tool_values(form)
    data, errors = _tool_from_values(values)
    if data is not None:
        try:
            created = await service.create_tool(data)
        except AdminError as exc:
            errors = _admin_error(exc)
        else:
            return _redirect(f"/ui/tools/{created.id}", f"Tool “{created.name}” created.")
    return _tool_page(request, gateway, user, values=values, errors=errors, status_code=422)


@router.get("/tools/{tool_id}", response_class=HTMLResponse, response_model=None)
async def tool_edit(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """Edit tool form with the test form."""
    try:
        tool = await service.get_tool(tool_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return _tool_page(request, gateway, user, values=_tool_values(tool=tool), errors={}, tool=tool)


@router.post("/tools/{tool_id}", response_class=HTMLResponse, response_model=None)
async def tool_update(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Save the tool form (secret values left masked are kept)."""
    form = await _form(request, gateway, user)
    try:
        tool = await service.get_tool(tool_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    values = _tool_values(form)
    data, errors = _tool_from_values(values)
    if data is not None:
        try:
            saved = await service.update_tool(tool_id, data)
        except AdminError as exc:
            errors = _admin_error(exc)
        else:
            return _redirect(f"/ui/tools/{saved.id}", f"Tool “{saved.name}” saved (version {saved.version}).")
    return _tool_page(request, gateway, user, values=values, errors=errors, tool=tool, status_code=422)


@router.post("/tools/{tool_id}/test", response_class=HTMLResponse, response_model=None)
async def tool_test(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Run the tool with the arguments from the test form."""
    form = await _form(request, gateway, user)
    try:
        tool = await service.get_tool(tool_id)
        spec = await service.tool_spec(tool_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    args_text = str(form.get("args") or "")
    caller = _text(form, "caller_id_number")
    test: dict[str, Any] = {"args": args_text, "caller_id_number": caller, "result": None, "error": None}
    try:
        args = parse_json_field(args_text, expect_object=True) or {}
    except JsonFieldError as exc:
        test["error"] = str(exc)
    else:
        context = CallContext(uniqueid=f"tool-test-{uuid.uuid4().hex[:12]}", caller_id_number=caller or None)
        result = await gateway.tool_executor.execute(spec, args, context)
        test["result"] = result
    return _tool_page(
        request,
        gateway,
        user,
        values=_tool_values(tool=tool),
        errors={},
        tool=tool,
        test=test,
        status_code=422 if test["error"] else 200,
    )


@router.get("/tools/{tool_id}/delete", response_class=HTMLResponse, response_model=None)
async def tool_delete_confirm(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """Ask before deleting a tool."""
    try:
        tool = await service.get_tool(tool_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return _render(
        request,
        gateway,
        user,
        "confirm_delete.html",
        {
            "active": "tools",
            "kind": "tool",
            "name": tool.name,
            "action": f"/ui/tools/{tool.id}/delete",
            "back": f"/ui/tools/{tool.id}",
            "warning": "Prompts that use this tool lose it; their agents can no longer call it.",
        },
    )


@router.post("/tools/{tool_id}/delete", response_class=HTMLResponse, response_model=None)
async def tool_delete(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> Response:
    """Delete a tool."""
    await _form(request, gateway, user)
    try:
        tool = await service.get_tool(tool_id)
        await service.delete_tool(tool_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return _redirect("/ui/tools", f"Tool “{tool.name}” deleted.")


# --- Calls, chat, audit -----------------------------------------------------------------


def _parse_date(text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@router.get("/calls", response_class=HTMLResponse, response_model=None)
async def calls_list(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: AdminServiceDep,
    status_filter: Annotated[str, Query(alias="status", max_length=20)] = "",
    caller_id: Annotated[str, Query(max_length=80)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    source: Annotated[Literal["", "call", "chat"], Query()] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Call list with filters."""
    filters = CallFilter(
        status=status_filter or None,
        caller_id=caller_id or None,
        since=_parse_date(since),
        until=_parse_date(until),
        source=source or None,
    )
    items, total = await service.list_calls(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    query = {
        "status": status_filter,
        "caller_id": caller_id,
        "since": since,
        "until": until,
        "source": source,
    }
    return _render(
        request,
        gateway,
        user,
        "calls.html",
        {
            "active": "calls",
            "calls": items,
            "total": total,
            "filters": query,
            "query": urlencode({k: v for k, v in query.items() if v}),
            "statuses": ["OK", "NO_INPUT", "TIMEOUT", "ERROR", "BUSY", "HANGUP"],
            **_paging(page, total),
        },
    )


@router.get("/calls/{call_id}", response_class=HTMLResponse, response_model=None)
async def call_detail(
    call_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """One call as a conversation."""
    try:
        call = await service.get_call(call_id)
    except NotFound as exc:
        return _not_found(request, gateway, user, exc)
    return _render(request, gateway, user, "call_detail.html", {"active": "calls", "call": call})


@router.get("/chat", response_class=HTMLResponse, response_model=None)
async def chat_page(
    request: Request, gateway: GatewayDep, user: AdminUser, service: AdminServiceDep
) -> HTMLResponse:
    """Try the agent with a chosen prompt and model."""
    prompts, _total = await service.list_prompts(limit=200)
    settings = gateway.settings
    models = [
        {"value": name, "label": f"{name} ({'key set' if settings.provider_key(name) else 'no key'})"}
        for name in sorted(PROVIDERS)
    ]
    return _render(
        request,
        gateway,
        user,
        "chat.html",
        {"active": "chat", "prompts": prompts, "models": models, "default_model": settings.default_ai_model},
    )


@router.get("/audit", response_class=HTMLResponse, response_model=None)
async def audit_list(
    request: Request,
    gateway: GatewayDep,
    user: AdminUser,
    service: AdminServiceDep,
    entity_type: Annotated[Literal["", "prompt", "tool"], Query()] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Audit log of admin writes."""
    items, total = await service.list_audit(
        entity_type=entity_type or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return _render(
        request,
        gateway,
        user,
        "audit.html",
        {
            "active": "audit",
            "entries": items,
            "total": total,
            "entity_type": entity_type,
            **_paging(page, total),
        },
    )
