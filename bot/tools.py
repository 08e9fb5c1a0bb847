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
from typing import Any, Generic, Literal, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from bot.events import Identity
from bot.model import ToolSpec
from bot.policy import RiskTier

__all__ = [
    "ASK_HUMAN",
    "AskHumanArgs",
    "Resource",
    "Tool",
    "ToolContext",
    "ToolSource",
    "format_validation_error",
    "tool",
]

R = TypeVar("R")

ToolSource = Literal["built-in", "plugin", "runbook", "mcp"]
"""Where a tool came from, for listings and audit."""


@dataclass(frozen=True)
class Resource(Generic[R]):
    """The typed key of a shared service a tool depends on (a deploy backend, a client).

    Declared once next to the type it stands for (``INVENTORY: Resource[Inventory] =
    Resource("inventory")``); a tool asks for it with ``ctx.get(INVENTORY)`` and gets an
    ``Inventory`` back, checked by mypy, with no name typed at the call site.
    """

    name: str
    """The service's name, for messages and ``opsloop tools list``."""


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
    resources: Mapping[Resource[Any], object] = field(default_factory=dict)
    """Shared services, set up by the application and its plugins."""

    def get(self, key: Resource[R]) -> R:
        """The shared service ``key`` stands for.

        Raises:
            LookupError: no plugin provides it in this process.
        """
        try:
            value = self.resources[key]
        except KeyError:
            raise LookupError(f"resource {key.name!r} is not configured") from None
        return value  # type: ignore[return-value]


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
    """``read`` looks only; ``write`` changes something (policy decides who approves it)."""
    risk: Callable[[Any], Mapping[str, str]] | None = None
    """What a call touches, from its validated arguments: ``{"environment": "production",
    "service": "checkout"}``. Policy rules match on these attributes (``where``)."""
    declares: tuple[str, ...] = ()
    """The attribute names :attr:`risk` returns, known without a call (for policy checks)."""
    source: ToolSource = "built-in"
    """Where the tool came from."""
    origin: str = ""
    """Which plugin, runbook file or MCP server it came from."""
    repeatable: bool = True
    """Safe to run again under the same idempotency key, as a call cut short by a crash is:
    it only reads, or honours the key (the built-in changes do). ``False`` (an MCP server's or
    a runbook's change) means a call is started at most once: one found started before is
    reported as interrupted, never repeated."""
    untrusted_output: bool = False
    """Its results are data from outside (a web page, an MCP server): the context marks them
    as untrusted, so the model reads them and never obeys them."""
    parameters: Mapping[str, Any] | None = None
    """The JSON schema the model is shown, when it is not :attr:`args`'s own (an MCP
    server's ``inputSchema``, which ``args`` checks calls against)."""

    @cached_property
    def spec(self) -> ToolSpec:
        """The tool as the model sees it (built once: the schema never changes)."""
        schema = (
            dict(self.parameters) if self.parameters is not None else self.args.model_json_schema()
        )
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    def validate(self, arguments: Mapping[str, Any]) -> BaseModel:
        """Validate ``arguments``; raises pydantic's ``ValidationError``."""
        return self.args.model_validate(arguments)

    async def run(self, ctx: ToolContext, args: BaseModel) -> JsonValue:
        """Run the tool with validated ``args``."""
        return await self.fn(ctx, args)

    def attributes(self, args: BaseModel) -> dict[str, str]:
        """What a call with validated ``args`` touches, as policy rules see it."""
        if self.risk is None:
            return {}
        return {str(k): str(v) for k, v in self.risk(args).items() if v is not None}


def _touching(model: type[BaseModel], fields: tuple[str, ...]) -> Callable[[Any], dict[str, str]]:
    unknown = [name for name in fields if name not in model.model_fields]
    if unknown:
        raise TypeError(f"touches names fields {model.__name__} does not have: {unknown}")

    def risk(args: Any) -> dict[str, str]:
        return {name: str(v) for name in fields if (v := getattr(args, name)) is not None}

    return risk


def tool(
    *,
    tier: RiskTier = "read",
    name: str | None = None,
    touches: tuple[str, ...] = (),
    risk: Callable[[Any], Mapping[str, str]] | None = None,
    declares: tuple[str, ...] = (),
    repeatable: bool = True,
) -> Callable[[ToolFunction], Tool]:
    """Make a :class:`Tool` from ``async def fn(ctx: ToolContext, args: SomeArgs) -> JSON``.

    The description is the function's docstring; the arguments model is the annotation of
    its second parameter. What a call touches (for policy ``where`` rules) is either
    ``touches``, argument names whose values are the attributes (``touches=("environment",)``),
    or ``risk``, a function of the validated arguments returning the attributes it
    ``declares``. ``repeatable=False`` says a call cannot honour its idempotency key, so
    one cut short by a crash is reported, never run again.
    """
    if touches and risk is not None:
        raise TypeError("give touches or risk, not both")

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
            risk=_touching(args_model, touches) if touches else risk,
            declares=touches or declares,
            repeatable=repeatable,
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
