"""Chat model providers behind one base class and a factory (one provider per module)."""

from app.services.providers.llm.base import LLMProvider, ModelSpec, ProviderNotConfigured, UnknownProvider
from app.services.providers.llm.factory import ModelFactory

__all__ = ["LLMProvider", "ModelFactory", "ModelSpec", "ProviderNotConfigured", "UnknownProvider"]
