"""The call-control tools a voice agent gets: ``end_call`` and ``transfer_call``.

They are per-call `CallTool`s (run in the gateway, not HTTP tools). A tool only records
what the agent asked for; the voice conversation acts on it once the agent's closing
sentence has been spoken. ``transfer_call`` accepts only the admin's targets for the
prompt: any other name is refused back to the model, listing the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.services.domain import CallTool, TransferTarget


@dataclass(slots=True)
class CallControlRequest:
    """What the agent asked for, if anything.

    Attributes:
        action: ``""`` (nothing), ``"end"`` or ``"transfer"``.
        target: the transfer target, for ``"transfer"``.
        reason: the model's stated reason (logged, never sent to Asterisk).
    """

    action: str = ""
    target: TransferTarget | None = None
    reason: str = ""

    def take(self) -> str:
        """The action asked for in the turn just finished, once (`action` is reset to ``""``).

        `target` stays: it names where a ``TRANSFER`` end sends the caller.
        """
        action, self.action = self.action, ""
        return action


def build_call_tools(
    request: CallControlRequest,
    *,
    offer_end_call: bool,
    offer_transfer_call: bool,
    targets: tuple[TransferTarget, ...],
) -> tuple[CallTool, ...]:
    """The call-control tools for one voice call.

    Args:
        request: filled in by the tools when the model calls them.
        offer_end_call: offer ``end_call``.
        offer_transfer_call: offer ``transfer_call`` (only when `targets` is not empty).
        targets: the admin's transfer targets for the prompt.

    Returns:
        Zero, one or two `CallTool`s.
    """
    tools: list[CallTool] = []
    if offer_end_call:
        tools.append(_end_call_tool(request))
    if offer_transfer_call and targets:
        tools.append(_transfer_call_tool(request, targets))
    return tuple(tools)


def _end_call_tool(request: CallControlRequest) -> CallTool:
    async def end_call(args: dict[str, Any]) -> str:
        request.action = "end"
        request.reason = str(args.get("reason", ""))[:200]
        return "The call will end after your closing sentence. Say goodbye now."

    return CallTool(
        name="end_call",
        description=(
            "End the phone call. Call it when the caller's request is complete or the "
            "caller says goodbye, then say one short closing sentence."
        ),
        parameters={
            "type": "object",
            "properties": {"reason": {"type": "string", "maxLength": 200}},
            "additionalProperties": False,
        },
        handler=end_call,
    )


def _transfer_call_tool(request: CallControlRequest, targets: tuple[TransferTarget, ...]) -> CallTool:
    by_name = {t.name: t for t in targets}

    async def transfer_call(args: dict[str, Any]) -> str:
        name = str(args.get("target", ""))
        target = by_name.get(name)
        if target is None:
            valid = ", ".join(sorted(by_name))
            return f"error: '{name}' is not a transfer target. Valid targets: {valid}."
        request.action, request.target = "transfer", target
        request.reason = str(args.get("reason", ""))[:200]
        return f"Transferring to {name} after your next sentence. Tell the caller briefly."

    listing = "; ".join(f"{t.name}: {t.description}" for t in targets)
    return CallTool(
        name="transfer_call",
        description=f"Transfer the caller (blind transfer). Targets: {listing}",
        parameters={
            "type": "object",
            "properties": {
                "target": {"type": "string", "enum": sorted(by_name)},
                "reason": {"type": "string", "maxLength": 200},
            },
            "required": ["target"],
            "additionalProperties": False,
        },
        handler=transfer_call,
    )
