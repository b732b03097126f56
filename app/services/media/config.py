"""Voice mode's configuration and shared collaborators (no pipecat import: start-up stays light)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.services.media.greetings import GreetingCache
from app.services.media.listener import MediaListener
from app.services.providers.registry import ProviderRegistry


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """How the gateway reaches Asterisk's media WebSocket (settings ``VOICE_*``).

    Attributes:
        app: our Stasis application (externalMedia ``app``).
        connection_type: ``client`` (Asterisk connects to our listener, via the
            ``websocket_client.conf`` entry `external_host`) or ``server`` (we connect to
            `server_url` ``/media/<connection id>``).
        external_host: the ``websocket_client.conf`` id (client mode).
        server_url: Asterisk's HTTP server as ``ws://host:8088`` (server mode).
        codec: ``ulaw`` or ``slin16``.
        timeout_s: longest wait for the media connection and the external `StasisStart`, in s.
        max_lead_ms: how far ahead of real time agent audio is sent, in ms.
    """

    app: str
    connection_type: str = "client"
    external_host: str = "media_connection1"
    server_url: str = "ws://127.0.0.1:8088"
    codec: str = "ulaw"
    timeout_s: float = 5.0
    max_lead_ms: int = 300


@dataclass(frozen=True, slots=True)
class VoiceConfig:
    """Gateway-wide voice settings (``VOICE_*``).

    Attributes:
        media: how to reach Asterisk's media WebSocket.
        stt_provider: default STT provider name. tts_provider: default TTS provider name.
        max_duration_s: default maximum call length, in s.
        fallback_sound: ARI media played when the gateway cannot speak (``sound:…``).
        smart_turn: use pipecat's smart-turn model for end of turn.
    """

    media: MediaConfig
    stt_provider: str = "pocketsphinx"
    tts_provider: str = "espeak"
    max_duration_s: float = 600.0
    fallback_sound: str = "sound:an-error-has-occured"
    smart_turn: bool = False


@dataclass(slots=True)
class VoiceDeps:
    """What every voice conversation shares (built once by the lifespan)."""

    config: VoiceConfig
    prompts: Any  # `Catalog`: `async get_prompt(name) -> PromptSpec`
    providers: ProviderRegistry
    listener: MediaListener | None
    greetings: GreetingCache = field(default_factory=GreetingCache)
