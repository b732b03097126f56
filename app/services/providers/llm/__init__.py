"""Chat model providers: one module per vendor, each registered with the provider registry."""

from app.services.providers.base import ProviderNotConfigured, UnknownProvider
from app.services.providers.llm.base import LLMProvider, ModelSpec
from app.services.providers.llm.factory import ModelFactory

__all__ = ["LLMProvider", "ModelFactory", "ModelSpec", "ProviderNotConfigured", "UnknownProvider"]
