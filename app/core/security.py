"""Secret handling: encryption at rest for tool header secrets, masking, password checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from cryptography.fernet import Fernet, InvalidToken

MASK = "********"
ENCRYPTED_PREFIX = "enc:v1:"
_SECRET_HEADER_RE = re.compile(r"(^authorization$)|(-key$)|(token)|(secret)|(password)|(^cookie$)", re.I)


class SecretDecryptionError(ValueError):
    """A stored secret cannot be decrypted (SECRET_KEY changed?)."""


def is_secret_header(name: str) -> bool:
    """Whether a header name looks like a credential (`Authorization`, `*-Key`, `*Token*`...)."""
    return bool(_SECRET_HEADER_RE.search(name.strip()))


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) encryption with a key derived from `SECRET_KEY`.

    The Fernet key is SHA-256 of the secret key text, urlsafe-base64 encoded
    (cryptography's Fernet needs exactly 32 bytes).
    """

    def __init__(self, secret_key: str) -> None:
        """Derive the Fernet key from `secret_key` (any non-empty text)."""
        digest = hashlib.sha256(b"aigw-secret-headers:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        """Encrypt `plaintext`; the result starts with ``enc:v1:``."""
        return ENCRYPTED_PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """Decrypt a value from `encrypt`; plain values (no prefix) pass through.

        Raises:
            SecretDecryptionError: the token was made with another key or is corrupt.
        """
        if not stored.startswith(ENCRYPTED_PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored[len(ENCRYPTED_PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptionError("stored secret cannot be decrypted") from exc


def constant_time_equals(given: str, expected: str) -> bool:
    """Compare two strings in time independent of where they differ (hmac.compare_digest)."""
    return hmac.compare_digest(given.encode(), expected.encode())
