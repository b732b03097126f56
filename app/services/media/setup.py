"""Voice mode's long-lived parts, built once by the lifespan: media listener, config, modes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.core.config import Settings
from app.services.media.config import MediaConfig, VoiceConfig, VoiceDeps
from app.services.media.listener import MediaListener
from app.services.media.modes import VoiceSupport, voice_modes
from app.services.providers.registry import ProviderRegistry
from app.services.telephony.session import ConversationFactory

logger = logging.getLogger(__name__)


def voice_config(settings: Settings) -> VoiceConfig:
    """`VoiceConfig` from the ``VOICE_*`` settings."""
    return VoiceConfig(
        media=MediaConfig(
            app=settings.asterisk_app_name,
            connection_type=settings.voice_media_connection_type,
            external_host=settings.voice_websocket_client_id,
            server_url=settings.voice_media_url,
            codec=settings.voice_codec,
            max_lead_ms=settings.voice_max_lead_ms,
        ),
        stt_provider=settings.voice_stt_provider,
        tts_provider=settings.voice_tts_provider,
        max_duration_s=settings.voice_max_duration_seconds,
        fallback_sound=settings.voice_fallback_sound,
        smart_turn=settings.voice_smart_turn,
    )


@dataclass(slots=True)
class Voice:
    """What the lifespan keeps for voice mode.

    Attributes:
        modes: entries for the session's mode table (``voice`` and the prompt default).
        support: the connected Asterisk's version check (for `/api/v1/status`).
        listener: the media listener (client mode), or None.
    """

    modes: dict[str, ConversationFactory]
    support: VoiceSupport = field(default_factory=VoiceSupport)
    listener: MediaListener | None = None

    async def aclose(self) -> None:
        """Stop the media listener."""
        if self.listener is not None:
            await self.listener.stop()


async def start_voice(settings: Settings, prompts: object, providers: ProviderRegistry) -> Voice:
    """Start the media listener (client mode) and build voice mode's entries.

    A listener that cannot bind its port is logged, and voice calls then fail over to the
    recorded fallback; text calls are not affected.

    Args:
        settings: the gateway's settings (``VOICE_*``).
        prompts: the `Catalog` (``get_prompt``).
        providers: the provider registry (STT and TTS).
    """
    config = voice_config(settings)
    listener: MediaListener | None = None
    if config.media.connection_type == "client":
        listener = MediaListener(
            settings.voice_media_listen_host,
            settings.voice_media_listen_port,
            max_lead_ms=settings.voice_max_lead_ms,
        )
        try:
            await listener.start()
        except OSError as exc:
            logger.error(
                "voice: media listener could not bind %s:%d (%s); voice calls will fail over",
                settings.voice_media_listen_host,
                settings.voice_media_listen_port,
                exc,
            )
            listener = None
    support = VoiceSupport()
    deps = VoiceDeps(config=config, prompts=prompts, providers=providers, listener=listener)
    return Voice(voice_modes(deps, support), support, listener)
