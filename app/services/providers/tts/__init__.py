"""Text-to-speech providers: one base (`TTSProvider`) and one module per vendor.

Each module registers itself with `app.services.providers.registry`; pipecat and the
vendor SDK are imported only when a provider builds its first pipecat service.
"""

from app.services.providers.tts.base import TTSProvider

__all__ = ["TTSProvider"]
