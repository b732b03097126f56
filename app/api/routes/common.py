"""Dependencies shared by the admin routers: the admin services, pagination, error docs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query

from app.api.auth import AdminUser
from app.api.deps import GatewayDep, ProvidersDep, SessionDep
from app.schemas import ErrorResponse
from app.services.admin.audit import AuditService
from app.services.admin.calls import CallService
from app.services.admin.prompts import PromptService
from app.services.admin.tools import ToolService


def get_prompt_service(
    gateway: GatewayDep, session: SessionDep, user: AdminUser, providers: ProvidersDep
) -> PromptService:
    """The prompt service for this request, acting as the authenticated admin."""
    return PromptService(
        session,
        actor=user,
        on_change=gateway.catalog.invalidate,
        providers=providers,
        default_tts_provider=gateway.settings.voice_tts_provider,
    )


def get_tool_service(gateway: GatewayDep, session: SessionDep, user: AdminUser) -> ToolService:
    """The tool service for this request, acting as the authenticated admin."""
    catalog = gateway.catalog
    return ToolService(session, secret_box=catalog.secret_box, actor=user, on_change=catalog.invalidate)


def get_call_service(session: SessionDep, _user: AdminUser) -> CallService:
    """The call-log reader for this request (admins only)."""
    return CallService(session)


def get_audit_service(session: SessionDep, _user: AdminUser) -> AuditService:
    """The audit-log reader for this request (admins only)."""
    return AuditService(session)


PromptServiceDep = Annotated[PromptService, Depends(get_prompt_service)]
ToolServiceDep = Annotated[ToolService, Depends(get_tool_service)]
CallServiceDep = Annotated[CallService, Depends(get_call_service)]
AuditServiceDep = Annotated[AuditService, Depends(get_audit_service)]
#: Database ids are 32-bit integers (PostgreSQL `integer`).
MAX_ID = 2_147_483_647
PromptId = Annotated[int, Path(ge=1, le=MAX_ID, description="Prompt id.")]
ToolId = Annotated[int, Path(ge=1, le=MAX_ID, description="Tool id.")]
CallId = Annotated[int, Path(ge=1, le=MAX_ID, description="Call id.")]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given codes plus 400 (unreadable body) and 401/503 (auth)."""
    text = {
        400: "The body could not be read.",
        401: "Missing or wrong credentials.",
        404: "No such entity.",
        409: "The name is taken, or the write would break stored state (e.g. deleting the default prompt).",
        413: "Request body too large.",
        422: "Invalid input; `field` names it.",
        503: "No usable admin password configured.",
    }
    return {
        code: {"model": ErrorResponse, "description": text.get(code, "Error.")}
        for code in sorted({400, 401, 503, *codes})
    }
