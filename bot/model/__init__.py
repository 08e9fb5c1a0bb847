"""The model layer: one interface, one file per provider, fakes shipped alongside.

The provider classes are loaded on first use: importing ``anthropic`` alone takes seconds,
and most processes (the CLI, the API, tests) never need both SDKs.
"""

from typing import TYPE_CHECKING

from bot.model._base import Model, ModelRequest, ModelResponse, ToolSpec
from bot.model._factory import build_model
from bot.model._resilience import BreakerModel, CircuitBreaker, FallbackModel, RetryingModel
from bot.model.pricing import cost_usd
from bot.model.testing import FunctionModel, ScriptedModel

if TYPE_CHECKING:
    from bot.model._anthropic import AnthropicModel
    from bot.model._openai import OpenAIModel

__all__ = [
    "AnthropicModel",
    "BreakerModel",
    "CircuitBreaker",
    "FallbackModel",
    "FunctionModel",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "OpenAIModel",
    "RetryingModel",
    "ScriptedModel",
    "ToolSpec",
    "build_model",
    "cost_usd",
]


def __getattr__(name: str) -> object:
    """Import a provider class when it is first asked for."""
    if name == "AnthropicModel":
        from bot.model._anthropic import AnthropicModel

        return AnthropicModel
    if name == "OpenAIModel":
        from bot.model._openai import OpenAIModel

        return OpenAIModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
