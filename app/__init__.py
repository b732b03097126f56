"""Asterisk AI Gateway: LLM agents on Asterisk calls through ARI."""

__version__ = "0.1.0"
