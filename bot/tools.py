"""Tools are structured outputs: a pydantic arguments model plus a plain async function.

Bad arguments never reach the function: :meth:`Tool.validate` turns them into a short
message the model sees next turn. Whether a call needs a human is not the tool's business:
policy decides from the tool's risk tier, outside the tool (see :mod:`bot.policy`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from bot.events import Identity
from bot.model import ToolSpec
from bot.policy import RiskTier

__all__ = [
    "ASK_HUMAN",
    "AskHumanArgs",
    "Tool",
    "ToolContext",
    "format_validation_error",
    "tool",
]

R = TypeVar("R")


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may know about the call."""

    thread_id: str
    """The thread the call belongs to."""
    idempotency_key: str
    """``thread:step``: a side-effecting tool must not repeat an effect under one key."""
    requested_by: Identity | None
    """Whose request led to the call."""
    approved_by: str | None
    """The principal who approved it, for approved calls."""
    resources: Mapping[str, object] = field(default_factory=dict)
    """Shared services (``inventory``…), set up by the application."""

    def resource(self, name: str, kind: type[R]) -> R:
        """The shared service ``name``, checked to be a ``kind``."""
        value = self.resources.get(name)
        if not isinstance(value, kind):
            raise LookupError(f"resource {name!r} is not configured")
        return value


ToolFunction = Callable[[ToolContext, Any], Awaitable[JsonValue]]


@dataclass(frozen=True)
class Tool:
    """A tool the model can call."""

    name: str
    """The name the model uses."""
    description: str
    """What it does and when to use it, for the model."""
    args: type[BaseModel]
    """The arguments' model; validated before the function runs."""
    fn: ToolFunction
    """The function: ``async fn(ctx, args) -> JSON``."""
    tier: RiskTier = "read"
    """``read`` looks only; ``write`` changes something (policy may require approval)."""

    @cached_property
    def spec(self) -> ToolSpec:
        """The tool as the model sees it (built once: the schema never changes)."""
        return ToolSpec(
            name=self.name, description=self.description, parameters=self.args.model_json_schema()
        )

    def validate(self, arguments: Mapping[str, Any]) -> BaseModel:
        """Validate ``arguments``; raises pydantic's ``ValidationError``."""
        return self.args.model_validate(arguments)

    async def run(self, ctx: ToolContext, args: BaseModel) -> JsonValue:
        """Run the tool with validated ``args``."""
        return await self.fn(ctx, args)


def tool(*, tier: RiskTier = "read", name: str | None = None) -> Callable[[ToolFunction], Tool]:
    """Make a :class:`Tool` from ``async def fn(ctx: ToolContext, args: SomeArgs) -> JSON``.

    The description is the function's docstring; the arguments model is the annotation of
    its second parameter.
    """

    def wrap(fn: ToolFunction) -> Tool:
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        args_model = hints.get(params[1]) if len(params) == 2 else None
        if not (isinstance(args_model, type) and issubclass(args_model, BaseModel)):
            raise TypeError(f"{fn.__name__}: second parameter must be a pydantic model")
        return Tool(
            name=name or fn.__name__,
            description=inspect.cleandoc(fn.__doc__ or fn.__name__),
            args=args_model,
            fn=fn,
            tier=tier,
        )

    return wrap


class AskHumanArgs(BaseModel):
    """Arguments of ``ask_human``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    """The question, self-contained: the person may not have read the thread."""
    options: list[str] = Field(default_factory=list, max_length=5)
    """Up to five suggested answers, shown as buttons."""


async def _never_runs(ctx: ToolContext, args: BaseModel) -> JsonValue:  # pragma: no cover
    raise RuntimeError("ask_human is handled by the runtime, not run")


ASK_HUMAN = Tool(
    name="ask_human",
    description=(
        "Ask a person a clarifying question when the request is ambiguous or you need a "
        "decision only a human can make. The thread pauses until they answer."
    ),
    args=AskHumanArgs,
    fn=_never_runs,
)
"""Contacting a human is a tool call like any other; the runtime pauses on it."""


def format_validation_error(tool_name: str, error: ValidationError) -> str:
    """A compact, model-readable summary of bad arguments."""
    problems = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "arguments"
        problems.append(f"{where}: {item['msg']}")
    return f"invalid arguments for {tool_name}: " + "; ".join(problems)
