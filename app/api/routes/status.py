"""Status for operators (`/api/v1/status`), probes (`/healthz`, `/readyz`) and `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.auth import AdminUser
from app.api.deps import GatewayDep
from app.api.routes.common import errors
from app.schemas import HealthRead, ReadinessRead, StatusRead
from app.services.admin.status import gateway_status, readiness

router = APIRouter(tags=["status"])


@router.get("/api/v1/status", response_model=StatusRead, responses=errors())
async def get_status(gateway: GatewayDep, _user: AdminUser) -> StatusRead:
    """Report ARI, Redis, database, LLM providers and version."""
    return await gateway_status(gateway)


@router.get("/healthz", response_model=HealthRead)
async def healthz() -> HealthRead:
    """Liveness: the process answers (public, no checks)."""
    return HealthRead()


@router.get(
    "/readyz",
    response_model=ReadinessRead,
    responses={
        503: {
            "model": ReadinessRead,
            "description": "Database or Redis unreachable, or the Stasis application not connected.",
        }
    },
)
async def readyz(gateway: GatewayDep) -> JSONResponse:
    """Readiness: database and Redis reachable, Stasis application connected (public)."""
    result = await readiness(gateway)
    code = status.HTTP_200_OK if result.status == "ready" else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(result.model_dump(mode="json"), status_code=code)


@router.get(
    "/metrics",
    response_class=Response,
    response_model=None,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format.",
        },
        **errors(),
    },
)
async def metrics(gateway: GatewayDep, _user: AdminUser) -> Response:
    """Prometheus metrics: turns, latencies, tool calls, active calls, ARI state."""
    return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)
