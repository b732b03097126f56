"""`/api/v1/prompts`: system prompts the phone agent runs with."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.routes.common import Limit, Offset, PromptId, PromptServiceDep, errors
from app.schemas import Page, PromptCreate, PromptRead, PromptUpdate

router = APIRouter(prefix="/api/v1/prompts", tags=["prompts"])


@router.get("", response_model=Page[PromptRead], responses=errors(422))
async def list_prompts(
    service: PromptServiceDep, name: str | None = None, limit: Limit = 50, offset: Offset = 0
) -> Page[PromptRead]:
    """List prompts by name; `name` filters by substring."""
    items, total = await service.list_prompts(name=name, limit=limit, offset=offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "",
    response_model=PromptRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 413, 422),
)
async def create_prompt(body: PromptCreate, service: PromptServiceDep) -> PromptRead:
    """Create a prompt."""
    return await service.create_prompt(body)


@router.get("/{prompt_id}", response_model=PromptRead, responses=errors(404, 422))
async def get_prompt(prompt_id: PromptId, service: PromptServiceDep) -> PromptRead:
    """Get one prompt."""
    return await service.get_prompt(prompt_id)


@router.put("/{prompt_id}", response_model=PromptRead, responses=errors(404, 409, 413, 422))
async def replace_prompt(prompt_id: PromptId, body: PromptCreate, service: PromptServiceDep) -> PromptRead:
    """Replace a prompt (full update)."""
    return await service.update_prompt(prompt_id, body)


@router.patch("/{prompt_id}", response_model=PromptRead, responses=errors(404, 409, 413, 422))
async def update_prompt(prompt_id: PromptId, body: PromptUpdate, service: PromptServiceDep) -> PromptRead:
    """Change some fields of a prompt (partial update)."""
    return await service.update_prompt(prompt_id, body)


@router.delete(
    "/{prompt_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    responses=errors(404, 409, 422),
)
async def delete_prompt(prompt_id: PromptId, service: PromptServiceDep) -> Response:
    """Delete a prompt (not the default one: make another prompt the default first)."""
    await service.delete_prompt(prompt_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{prompt_id}/default", response_model=PromptRead, responses=errors(404, 422))
async def set_default_prompt(prompt_id: PromptId, service: PromptServiceDep) -> PromptRead:
    """Make this prompt the default (used when a call names none)."""
    return await service.set_default_prompt(prompt_id)


@router.post(
    "/{prompt_id}/voice-sample",
    response_class=Response,
    response_model=None,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "A WAV file (16-bit mono, 8 kHz)."},
        **errors(404, 422, 503),
    },
)
async def voice_sample(prompt_id: PromptId, service: PromptServiceDep) -> Response:
    """A short sample of the prompt's saved voice saying its greeting, as `audio/wav`."""
    audio = await service.voice_sample(prompt_id)
    return Response(audio, media_type="audio/wav", headers={"Cache-Control": "no-store"})
