"""Speech-to-text providers: one base (`STTProvider`) and one module per vendor.

Each module registers itself with `app.services.providers.registry`; pipecat and the
vendor SDK are imported only when a provider builds its first pipecat service.
"""

from app.services.providers.stt.base import STTProvider

__all__ = ["STTProvider"]
