"""Test helpers: in-process stand-ins for external services."""
