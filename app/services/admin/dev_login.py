"""The generated admin login of a `DEV_MODE` run, shown to the person who started the process.

The password goes to the console (stderr, written directly, never through `logging`)
and to a file readable only by its owner (mode 0600). Log records only say where to
find it, and the redaction filter masks it should it ever reach one.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import TextIO

#: Where the generated password is kept, relative to the working directory (git-ignored).
DEV_PASSWORD_FILE = Path(".gateway-admin-password")


def generate_dev_password() -> str:
    """A fresh random password: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def write_password_file(path: Path, password: str) -> Path:
    """Write `password` (plus a newline) to `path` with mode 0600 and return its absolute path.

    The file is created with mode 0600 from the start (`os.open`), and an existing
    file is truncated and set to 0600 too, so no other user can read it at any point.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (password + "\n").encode())
    finally:
        os.close(fd)
    return path.resolve()


def announce_dev_login(
    username: str,
    password: str,
    reason: str,
    *,
    path: Path = DEV_PASSWORD_FILE,
    stream: TextIO | None = None,
) -> Path:
    """Show the generated login once on the console and keep it in a 0600 file.

    Args:
        username: `WEB_UI_USERNAME`.
        password: the generated password for this run.
        reason: the heading: why it was generated, e.g. "DEV_MODE: WEB_UI_PASSWORD is not set".
        path: the password file (default `./.gateway-admin-password`).
        stream: where to write the notice; default `sys.stderr` (the console, not a log).

    Returns:
        The absolute path of the password file.
    """
    where = write_password_file(path, password)
    out = stream if stream is not None else sys.stderr
    out.write(
        f"\n{reason}. Admin login for this run (/ui, /docs, /api/v1):\n"
        f"    user:     {username}\n"
        f"    password: {password}\n"
        f"  (also in {where}, mode 0600; set WEB_UI_PASSWORD to choose your own)\n\n"
    )
    out.flush()
    return where
