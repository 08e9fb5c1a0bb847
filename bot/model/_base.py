"""The one model interface: a request in, a response with one decision out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from bot.events import CallTool, Reply, Usage

__all__ = ["Model", "ModelRequest", "ModelResponse", "ToolSpec"]


class ToolSpec(BaseModel):
    """A tool as the model sees it."""

    model_config = ConfigDict(frozen=True)

    name: str
    """The tool's name."""
    description: str
    """What the tool does and when to use it."""
    parameters: dict[str, JsonValue]
    """JSON Schema of the tool's arguments."""


class ModelRequest(BaseModel):
    """Everything one model call needs, built by the runtime from the thread."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    agent: str
    """The agent asking."""
    system: str
    """The rendered system prompt (stable across a thread: it is the cached prefix)."""
    context: str
    """The thread rendered as compact tagged blocks: the one user turn."""
    tools: tuple[ToolSpec, ...] = ()
    """The tools the model may call (stable across a thread: part of the cached prefix)."""
    max_tokens: int = 1024
    """The most output tokens to produce."""
    events: Sequence[Any] = Field(default=(), exclude=True, repr=False)
    """The thread's events themselves, for models written as code (offline, function)."""


class ModelResponse(BaseModel):
    """One decision and what it cost."""

    model_config = ConfigDict(frozen=True)

    decision: CallTool | Reply | None
    """The decision; ``None`` when the model gave neither a reply nor a tool call."""
    provider: str
    """Which provider answered (after any fallback)."""
    model: str
    """The provider's model name."""
    usage: Usage = Usage()
    """Tokens used."""


class Model(ABC):
    """A language model behind one async method.

    Implementations translate :class:`ModelRequest` into their provider's wire format and
    the provider's answer into one :class:`ModelResponse`. They raise
    :class:`~bot.errors.ModelUnavailableError` for transient failures (timeouts, 429, 5xx),
    carrying any ``Retry-After`` the provider sent.
    """

    provider: str = "unknown"
    """The provider's short name, recorded on every call."""
    model_name: str = "unknown"
    """The model's name at the provider, recorded on every call."""

    @abstractmethod
    async def request(self, request: ModelRequest) -> ModelResponse:
        """Ask the model for one decision."""

    async def aclose(self) -> None:  # noqa: B027 - most models hold nothing to close
        """Release network clients; the default holds none."""
