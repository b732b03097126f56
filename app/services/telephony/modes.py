"""The conversations the gateway ships with telephony: text mode.

Text mode (the default, ``AI_MODE=text`` or no `AI_MODE`) is one exchange: the
dialplan already holds the caller's words in `USER_INPUT`; one turn runs, and the
channel continues with `AI_RESPONSE` (the full answer), `AI_STATUS` and `AI_ERROR`.

Voice mode lives in `app.services.media` (which may import telephony, never the
reverse) and is added to the mode table in `app.main`.
"""

from __future__ import annotations

from app.services.telephony.delivery import ConversationResult
from app.services.telephony.session import CallSession, ConversationFactory


class TextConversation:
    """One turn on the Stasis args, then the answer in channel variables.

    The turn runs through `TurnRunner.run_turn`, the streamed turn consumed in the
    session's task: nobody hears text mode's answer before it is whole, so the model
    is asked for one HTTP response rather than a token stream (less CPU per turn).
    A hang-up cancels it like any other session task.

    Args:
        session: the call session (its `request` is built before the mode runs).
    """

    def __init__(self, session: CallSession) -> None:
        """Keep the session."""
        self._session = session

    async def run(self) -> ConversationResult:
        """Run the turn; its outcome's `AI_RESPONSE`/`AI_STATUS`/`AI_ERROR`."""
        session = self._session
        assert session.request is not None, "the session builds the request before the mode runs"
        outcome = await session.turns.run_turn(session.request)
        return ConversationResult.from_outcome(outcome)


def default_modes() -> dict[str, ConversationFactory]:
    """The mode table telephony alone provides: ``{"text": TextConversation}``."""
    return {"text": TextConversation}
