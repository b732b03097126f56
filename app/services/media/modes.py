"""Voice mode in the session's mode table, and the prompt's own default mode.

`voice_modes` returns the entries `app.main` adds to telephony's mode table:

* ``"voice"``: `VoiceConversation` (``AI_MODE=voice``);
* ``""`` (no ``AI_MODE`` arg): looks up the prompt and runs its ``default_mode``, so a
  prompt can make voice its own default while text stays the gateway's default.

The media WebSocket's JSON control messages exist from Asterisk 20.18.0, 22.8.0 and
23.2.0 (``chan_websocket.conf`` ``control_message_format``; see
``../shared/ari-samples/media/README.md``). `VoiceSupport` records what the connected
Asterisk reports (``GET /asterisk/info``) for `/api/v1/status`; a voice call on an older
Asterisk plays the recorded fallback and continues with ``AI_ERROR=voice_unsupported``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from app.services.agent.catalog import CatalogUnavailable, PromptNotFound
from app.services.media.config import VoiceDeps
from app.services.telephony.ari_client import AriClient, AriError
from app.services.telephony.delivery import ConversationResult
from app.services.telephony.modes import TextConversation
from app.services.telephony.session import CallSession, Conversation, ConversationFactory

logger = logging.getLogger(__name__)

#: (major, minor) from which each Asterisk branch has chan_websocket's JSON control messages.
MINIMUM_VERSIONS = {20: (20, 18), 22: (22, 8), 23: (23, 2)}
MINIMUM_TEXT = "Asterisk 20.18, 22.8 or 23.2 (or newer)"


def voice_supported(version: str) -> bool | None:
    """Whether an Asterisk `version` (``22.8.0``, ``GIT-master-…``) has voice mode's media protocol.

    Returns:
        True or False for a release number; None when the version says nothing (a build
        from git: assume a current one).
    """
    match = re.match(r"^(\d+)\.(\d+)", version.strip())
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    if major > max(MINIMUM_VERSIONS):
        return True
    floor = MINIMUM_VERSIONS.get(major)
    return floor is not None and (major, minor) >= floor


@dataclass(slots=True)
class VoiceSupport:
    """What the connected Asterisk says about voice mode (shown in `/api/v1/status`).

    Attributes:
        asterisk_version: as reported by ``GET /asterisk/info`` ('' before the first check).
        supported: True, False, or None when unknown.
    """

    asterisk_version: str = ""
    supported: bool | None = None

    @property
    def detail(self) -> str:
        """A sentence for the status page."""
        if not self.asterisk_version:
            return f"not checked yet (needs {MINIMUM_TEXT})"
        if self.supported is False:
            return f"Asterisk {self.asterisk_version} is too old: voice mode needs {MINIMUM_TEXT}"
        return f"Asterisk {self.asterisk_version}: voice mode available"

    async def check(self, ari: AriClient) -> None:
        """Ask Asterisk its version (``GET /asterisk/info``); logs a warning when too old."""
        try:
            info = await ari.get_asterisk_info()
        except AriError as exc:
            logger.info("could not read the Asterisk version: %s", exc)
            return
        self.asterisk_version = str(info.get("system", {}).get("version", ""))
        self.supported = voice_supported(self.asterisk_version)
        if self.supported is False:
            logger.warning("voice mode unavailable: %s", self.detail)


class _PromptDefault:
    """No ``AI_MODE``: run the prompt's ``default_mode`` (text unless the prompt says voice)."""

    def __init__(self, session: CallSession, deps: VoiceDeps, support: VoiceSupport) -> None:
        self._session, self._deps, self._support = session, deps, support

    async def run(self) -> ConversationResult:
        request = self._session.request
        mode = "text"
        if request is not None:
            try:
                prompt = await self._deps.prompts.get_prompt(request.prompt_name)
                mode = prompt.voice.default_mode
            except (PromptNotFound, CatalogUnavailable):
                mode = "text"  # the text turn reports the unknown prompt itself
        conversation: Conversation
        if mode == "voice":
            self._session.mode = "voice"
            conversation = _voice(self._session, self._deps, self._support)
        else:
            conversation = TextConversation(self._session)
        return await conversation.run()


def _voice(session: CallSession, deps: VoiceDeps, support: VoiceSupport) -> Conversation:
    # pipecat is imported with the first voice call (or by the preload after start-up).
    from app.services.media.conversation import VoiceConversation

    return VoiceConversation(session, deps, unsupported=support.supported is False)


def voice_modes(deps: VoiceDeps, support: VoiceSupport) -> dict[str, ConversationFactory]:
    """The mode-table entries for voice: ``voice`` and the prompt default ``""``."""
    return {
        "voice": lambda session: _voice(session, deps, support),
        "": lambda session: _PromptDefault(session, deps, support),
    }
