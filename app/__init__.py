"""Asterisk AI Gateway: LLM agents on Asterisk calls through ARI."""

import sys

__version__ = "0.1.0"

# When click, rich and pygments are installed, `import httpx` also imports httpx's command-line
# client (httpx/_main.py, ~0.15 s of start-up). The gateway never runs it; a None entry makes
# that optional import fail, and httpx falls back to its stub `main` (httpx/__init__.py).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
