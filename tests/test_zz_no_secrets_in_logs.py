"""Runs last (file order): nothing the suite logged contains an API key, password or tool secret.

Every log record of the run, from every logger at DEBUG and up (the gateway, its libraries,
the stand-ins, and the output of gateway processes the tests started), is written to
test-artifacts/suite.log by tests/conftest.py.
"""

from __future__ import annotations

import logging

from tests.conftest import SECRETS, SUITE_LOG


def test_no_secret_in_anything_the_suite_logged() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = SUITE_LOG.read_text(encoding="utf-8", errors="replace")
    assert len(text) > 10_000, "the suite log should hold the whole run's logging"
    leaked = [s for s in SECRETS if s in text]
    assert leaked == [], f"secrets found in {SUITE_LOG}: {[s[:4] + '…' for s in leaked]}"
