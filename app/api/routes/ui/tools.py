"""Admin UI tool pages: list, create, edit, test run, delete."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.api.auth import AdminUser
from app.api.deps import GatewayDep
from app.api.routes.common import ToolServiceDep
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
from app.schemas import TOOL_NAME_RULE, ToolCreate, ToolRead
from app.services.admin.errors import AdminError, NotFound
from app.services.agent.host_policy import internal_url_host
from app.services.domain import CallContext

router = APIRouter(prefix="/ui", include_in_schema=False)

#: The tool form's labels (see `tool_form.html`), used in its error messages.
LABELS = {
    "name": "Name",
    "enabled": "Enabled",
    "description": "Description",
    "method": "Method",
    "url": "URL",
    "parameters": "Parameters",
    "headers": "Headers",
    "secret_headers": "More secret headers",
    "args_location": "Arguments go in",
    "timeout_seconds": "Timeout",
    "body_template": "Body template",
}

_DEFAULT_PARAMETERS = '{\n  "type": "object",\n  "properties": {},\n  "required": []\n}'


def _tool_values(form: FormData | None = None, tool: ToolRead | None = None) -> dict[str, Any]:
    if form is not None:
        return {
            "name": form_text(form, "name"),
            "description": form.get("description") or "",
            "url": form_text(form, "url"),
            "method": form_text(form, "method") or "GET",
            "args_location": form_text(form, "args_location") or "auto",
            "timeout_seconds": form_text(form, "timeout_seconds") or "5",
            "enabled": form.get("enabled") == "on",
            "parameters": form.get("parameters") or "",
            "headers": form.get("headers") or "",
            "secret_headers": form_text(form, "secret_headers"),
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
            "parameters": pretty_json(tool.parameters),
            "headers": pretty_json(tool.headers) if tool.headers else "",
            "secret_headers": ", ".join(tool.secret_headers),
            "body_template": pretty_json(tool.body_template),
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
            errors[name] = json_error(LABELS[name], str(exc))
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
        return None, {**pydantic_errors(exc, LABELS, {"name": TOOL_NAME_RULE}), **errors}
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
    return render(
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
            "name_rule": TOOL_NAME_RULE,
            "locations": ["auto", "query", "json"],
            "internal_host": internal_url_host(str(values.get("url") or "")),
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
    service: ToolServiceDep,
    name: Annotated[str, Query(max_length=100)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Tool list."""
    items, total = await service.list_tools(name=name or None, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        gateway,
        user,
        "tools.html",
        {"active": "tools", "tools": items, "total": total, "name": name, **paging(page, total)},
    )


@router.get("/tools/new", response_class=HTMLResponse, response_model=None)
async def tool_new(request: Request, gateway: GatewayDep, user: AdminUser) -> HTMLResponse:
    """New tool form."""
    return _tool_page(request, gateway, user, values=_tool_values(), errors={})


@router.post("/tools/new", response_class=HTMLResponse, response_model=None)
async def tool_create(
    request: Request, gateway: GatewayDep, user: AdminUser, service: ToolServiceDep
) -> Response:
    """Create a tool from the form."""
    form = await read_form(request, gateway, user)
    values = _tool_values(form)
    data, errors = _tool_from_values(values)
    if data is not None:
        try:
            created = await service.create_tool(data)
        except AdminError as exc:
            errors = admin_errors(exc, LABELS)
        else:
            return redirect(f"/ui/tools/{created.id}", f"Tool “{created.name}” created.")
    return _tool_page(request, gateway, user, values=values, errors=errors, status_code=422)


@router.get("/tools/{tool_id}", response_class=HTMLResponse, response_model=None)
async def tool_edit(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: ToolServiceDep
) -> HTMLResponse:
    """Edit tool form with the test form."""
    try:
        tool = await service.get_tool(tool_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    return _tool_page(request, gateway, user, values=_tool_values(tool=tool), errors={}, tool=tool)


@router.post("/tools/{tool_id}", response_class=HTMLResponse, response_model=None)
async def tool_update(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: ToolServiceDep
) -> Response:
    """Save the tool form (secret values left masked are kept)."""
    form = await read_form(request, gateway, user)
    try:
        tool = await service.get_tool(tool_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    values = _tool_values(form)
    data, errors = _tool_from_values(values)
    if data is not None:
        try:
            saved = await service.update_tool(tool_id, data)
        except AdminError as exc:
            errors = admin_errors(exc, LABELS)
        else:
            done = "saved" if saved.version != tool.version else "unchanged"
            return redirect(f"/ui/tools/{saved.id}", f"Tool “{saved.name}” {done} (version {saved.version}).")
    return _tool_page(request, gateway, user, values=values, errors=errors, tool=tool, status_code=422)


@router.post("/tools/{tool_id}/test", response_class=HTMLResponse, response_model=None)
async def tool_test(
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: ToolServiceDep
) -> Response:
    """Run the tool with the arguments from the test form."""
    form = await read_form(request, gateway, user)
    try:
        tool = await service.get_tool(tool_id)
        spec = await service.tool_spec(tool_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    args_text = str(form.get("args") or "")
    caller = form_text(form, "caller_id_number")
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
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: ToolServiceDep
) -> HTMLResponse:
    """Ask before deleting a tool."""
    try:
        tool = await service.get_tool(tool_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    return render(
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
    tool_id: int, request: Request, gateway: GatewayDep, user: AdminUser, service: ToolServiceDep
) -> Response:
    """Delete a tool."""
    await read_form(request, gateway, user)
    try:
        tool = await service.get_tool(tool_id)
        await service.delete_tool(tool_id)
    except NotFound as exc:
        return not_found(request, gateway, user, exc)
    return redirect("/ui/tools", f"Tool “{tool.name}” deleted.")
