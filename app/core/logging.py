"""Logging set-up: one format, call context in messages, known secrets redacted."""

from __future__ import annotations

import logging

from app.core.config import Settings


class RedactSecrets(logging.Filter):
    """Replaces any configured secret value that appears in a log record with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        """`secrets`: values to hide (empty and very short ones are ignored)."""
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def add(self, secret: str) -> None:
        """Hide one more value (e.g. a decrypted tool header)."""
        if secret and len(secret) >= 6 and secret not in self.secrets:
            self.secrets.append(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets masked; always keep the record."""
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(settings: Settings, extra_secrets: list[str] | None = None) -> RedactSecrets:
    """Set the root log level and format, and install the redaction filter on its handlers.

    Args:
        settings: the gateway's settings (their own secrets are masked).
        extra_secrets: more values to mask, e.g. the providers' API keys
            (`ProviderRegistry.secrets()`); core does not know provider settings.
    """
    level = "DEBUG" if settings.debug_mode else settings.log_level
    root = logging.getLogger()
    if not root.handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stream)
    root.setLevel(level)
    secrets = [
        s.get_secret_value()
        for s in (
            settings.redis_password,
            settings.web_ui_password,
            settings.secret_key,
            settings.asterisk_ari_password,
        )
        if s is not None
    ]
    redact = RedactSecrets(secrets + list(extra_secrets or ()))
    for handler in root.handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(redact)
    noisy_loggers = (
        "httpx",
        "httpx2",
        "httpcore",
        "websockets",
        "aiosqlite",
        "openai",
        "google_genai",
        "anthropic",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redact
