"""`/api/v1/chat`: one agent turn without a phone, through the code path a call uses."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from fastapi import APIRouter

from app.api.deps import GatewayDep
from app.api.routes.common import CallServiceDep, PromptServiceDep, errors
from app.schemas import ChatRequest, ChatResponse, ToolCallRead
from app.services.admin.errors import ValidationFailed
from app.services.domain import CallContext, TurnRequest
from app.services.providers.base import Capability, UnknownProvider
from app.services.providers.llm import ModelSpec

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])
CALL_LOG_WAIT_SECONDS = 3.0


@router.post("", response_model=ChatResponse, responses=errors(413, 422))
async def chat(
    body: ChatRequest, gateway: GatewayDep, prompts: PromptServiceDep, calls: CallServiceDep
) -> ChatResponse:
    """Run one turn (memory and tools included) and return the reply and the turn record."""
    if body.prompt_name and await prompts.get_prompt_by_name(body.prompt_name) is None:
        raise ValidationFailed("prompt_name", f"no prompt named {body.prompt_name!r}")
    if body.model:
        try:
            gateway.providers.get(Capability.LLM, ModelSpec.parse(body.model).provider)
        except UnknownProvider as exc:
            raise ValidationFailed("model", str(exc)) from exc
    conversation_id = body.conversation_id or f"chat-{uuid.uuid4().hex[:16]}"
    outcome = await gateway.turn_service.run_turn(
        TurnRequest(
            context=CallContext(uniqueid=conversation_id, caller_id_name="admin chat"),
            user_input=body.message,
            prompt_name=body.prompt_name or None,
            model=body.model or None,
            source="chat",
        )
    )
    # Wait briefly for the call log so the turn record can be returned; a slow or
    # down database must not hold the reply (the record is then None).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(gateway.call_log.flush(), CALL_LOG_WAIT_SECONDS)
    call = await calls.latest_call_for(conversation_id, source="chat")
    turn = call.turns[-1] if call is not None and call.turns else None
    return ChatResponse(
        conversation_id=conversation_id,
        reply=outcome.response,
        status=outcome.status.value,
        error=outcome.error,
        model=outcome.model,
        prompt_name=outcome.prompt_name,
        tool_calls=[ToolCallRead.model_validate(c) for c in outcome.tool_calls],
        call_id=call.id if call is not None else None,
        turn=turn,
    )
