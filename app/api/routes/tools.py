"""`/api/v1/tools`: HTTP tools the agent may call, and test runs of them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.api.deps import GatewayDep
from app.api.routes.common import Limit, Offset, ToolId, ToolServiceDep, errors
from app.schemas import Page, ToolCreate, ToolRead, ToolTestRequest, ToolTestResult, ToolUpdate
from app.services.domain import CallContext

router = APIRouter(prefix="/api/v1/tools", tags=["tools"])

#: Longest body shown by a test run, in characters (the executor caps bytes too).
TEST_BODY_MAX_CHARS = 4000


@router.get("", response_model=Page[ToolRead], responses=errors(422))
async def list_tools(
    service: ToolServiceDep, name: str | None = None, limit: Limit = 50, offset: Offset = 0
) -> Page[ToolRead]:
    """List tools by name; `name` filters by substring."""
    items, total = await service.list_tools(name=name, limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "",
    response_model=ToolRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 413, 422),
)
async def create_tool(body: ToolCreate, service: ToolServiceDep) -> ToolRead:
    """Create a tool."""
    return await service.create_tool(body)


@router.get("/{tool_id}", response_model=ToolRead, responses=errors(404, 422))
async def get_tool(tool_id: ToolId, service: ToolServiceDep) -> ToolRead:
    """Get one tool (secret header values masked)."""
    return await service.get_tool(tool_id)


@router.put("/{tool_id}", response_model=ToolRead, responses=errors(404, 409, 413, 422))
async def replace_tool(tool_id: ToolId, body: ToolCreate, service: ToolServiceDep) -> ToolRead:
    """Replace a tool (full update; secret headers not re-sent are kept)."""
    return await service.update_tool(tool_id, body)


@router.patch("/{tool_id}", response_model=ToolRead, responses=errors(404, 409, 413, 422))
async def update_tool(tool_id: ToolId, body: ToolUpdate, service: ToolServiceDep) -> ToolRead:
    """Change some fields of a tool (partial update)."""
    return await service.update_tool(tool_id, body)


@router.delete(
    "/{tool_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    responses=errors(404, 422),
)
async def delete_tool(tool_id: ToolId, service: ToolServiceDep) -> Response:
    """Delete a tool."""
    await service.delete_tool(tool_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{tool_id}/test", response_model=ToolTestResult, responses=errors(404, 413, 422))
async def test_tool(
    tool_id: ToolId, body: ToolTestRequest, service: ToolServiceDep, gateway: GatewayDep
) -> ToolTestResult:
    """Run the tool with these arguments through the real tool executor."""
    spec = await service.tool_spec(tool_id)
    context = CallContext(
        uniqueid=body.uniqueid or f"tool-test-{uuid.uuid4().hex[:12]}",
        caller_id_number=body.caller_id_number,
    )
    result = await gateway.tool_executor.execute(spec, body.args, context)
    text = result.content
    truncated = result.truncated or len(text) > TEST_BODY_MAX_CHARS
    return ToolTestResult(
        ok=result.ok,
        outcome=result.outcome,
        status_code=result.status_code,
        latency_ms=round(result.latency_ms, 1),
        body=text[:TEST_BODY_MAX_CHARS],
        truncated=truncated,
        detail=result.detail,
    )
