"""An MCP server's tools as opsloop tools: checked by their own schema, tiered, capped.

What a listed tool becomes:

- its arguments are checked against the server's ``inputSchema`` (JSON Schema) before any
  call, and the model is shown that schema;
- its tier is ``read`` only when the server says ``readOnlyHint`` (and not
  ``destructiveHint``); anything else is ``write`` and goes through approval (fail closed).
  The declaration's ``tier`` (server-wide, or the tool's own) wins over the hints;
- its result is the text the server returned (or its structured content), cut to
  ``max_result_bytes`` with the cut said, and marked untrusted: the model reads it, never
  obeys it. A result the server flags ``isError`` is a tool error the model sees.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.catalogue import tool_name_problem
from bot.declared._secrets import Lookups, secret_names, secret_variable
from bot.errors import ConfigError, ToolError
from bot.mcp._config import McpServer
from bot.policy import RiskTier
from bot.tools import Tool, ToolContext

if TYPE_CHECKING:
    import mcp_types

    from bot.mcp._hub import McpHub

__all__ = ["McpToolError", "mcp_tools", "render_result", "tier_of"]

log = logging.getLogger(__name__)


class McpToolError(ToolError):
    """An MCP tool call failed: the server said so, or it did not answer in time."""


def tier_of(server: McpServer, tool: mcp_types.Tool) -> RiskTier:
    """The tool's risk tier: configuration first, then the server's hints, else ``write``."""
    configured = server.override(tool.name).tier or server.tier
    if configured is not None:
        return configured
    hints = tool.annotations
    if hints is not None and hints.read_only_hint is True and hints.destructive_hint is not True:
        return "read"
    return "write"


def repeatable(tool: mcp_types.Tool) -> bool:
    """Whether a call cut short may be made again.

    That is when the server says the tool changes nothing, or that the same call twice has
    no more effect (``idempotentHint``).

    The declaration's ``tier`` decides approval, not this: a change declared ``read`` still
    runs at most once.
    """
    hints = tool.annotations
    if hints is None:
        return False
    reads = hints.read_only_hint is True and hints.destructive_hint is not True
    return reads or hints.idempotent_hint is True


def offered(server: McpServer, name: str) -> bool:
    """Whether the declaration lets agents use the server's tool ``name``."""
    allowed = any(fnmatchcase(name, pattern) for pattern in server.allow)
    return allowed and not any(fnmatchcase(name, pattern) for pattern in server.deny)


@lru_cache(maxsize=512)
def _validator(schema_text: str) -> Validator:
    schema = json.loads(schema_text)
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def _schema_problems(schema: Mapping[str, Any], data: Any) -> list[InitErrorDetails]:
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [
        InitErrorDetails(
            type=PydanticCustomError("json_schema", "{reason}", {"reason": error.message[:300]}),
            loc=tuple(error.absolute_path),
            input=error.instance,
        )
        for error in errors[:5]
    ]


def arguments_model(name: str, schema: Callable[[], Mapping[str, Any]]) -> type[BaseModel]:
    """A model whose validation is the JSON schema ``schema()`` returns (the server's latest).

    The validated model dumps back to exactly the arguments given, so what is approved is
    what is sent.
    """

    class McpArguments(BaseModel):
        model_config = ConfigDict(extra="allow", frozen=True)

        @model_validator(mode="before")
        @classmethod
        def _against_schema(cls, data: Any) -> Any:
            problems = _schema_problems(schema(), data)
            if problems:
                raise ValidationError.from_exception_data(name, problems)
            return data

    McpArguments.__name__ = McpArguments.__qualname__ = f"{name}_arguments"
    return McpArguments


def _cut(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")
    return f"{kept}\n…[result cut: {limit} of {len(data)} bytes shown]"


def _content_text(block: Any) -> str:
    kind = getattr(block, "type", "?")
    if kind == "text":
        return str(block.text)
    if kind == "resource_link":
        return f"[resource link: {block.uri}]"
    if kind == "resource":
        text = getattr(block.resource, "text", None)
        return str(text) if text is not None else f"[binary resource {block.resource.uri} omitted]"
    return f"[{kind} content omitted]"


def render_result(result: mcp_types.CallToolResult, *, limit: int) -> JsonValue:
    """What the model gets from a tool result: text, or structured content, capped.

    Raises:
        McpToolError: the server flagged the result as an error (its text is the message).
    """
    text = "\n".join(_content_text(block) for block in result.content)
    if result.is_error:
        raise McpToolError(_cut(text or "the tool reported an error", min(limit, 2000)))
    if result.structured_content is not None:
        encoded = json.dumps(result.structured_content, ensure_ascii=False)
        if len(encoded.encode("utf-8")) <= limit:
            return result.structured_content  # type: ignore[no-any-return]
        return _cut(encoded, limit)
    return _cut(text, limit)


def _risk(touches: tuple[str, ...]) -> Callable[[Any], dict[str, str]]:
    def risk(args: Any) -> dict[str, str]:
        values = args.model_dump(mode="json")
        return {
            name: value if isinstance(value, str) else json.dumps(value)
            for name in touches
            if (value := values.get(name)) is not None
        }

    return risk


def _tool(hub: McpHub, server: McpServer, listed: mcp_types.Tool) -> Tool | None:
    name = server.prefix + listed.name
    if (problem := tool_name_problem(name)) is not None:
        log.warning("MCP server %s: tool %r skipped: %s", server.name, name, problem)
        return None
    try:
        _validator(json.dumps(listed.input_schema, sort_keys=True))
    except SchemaError as exc:
        log.warning(
            "MCP server %s: tool %s has an invalid schema (%s); skipped",
            server.name,
            name,
            exc.message,
        )
        return None
    touches = server.override(listed.name).touches
    unknown = [t for t in touches if t not in (listed.input_schema.get("properties") or {})]
    if unknown:
        raise ConfigError(
            f"MCP server {server.name}: tools.{listed.name}.touches names arguments the tool "
            f"does not take: {', '.join(unknown)}"
        )

    def schema() -> Mapping[str, Any]:
        return hub.input_schema(server.name, listed.name) or listed.input_schema

    secrets = secret_names([*server.env.values(), *server.headers.values()])

    async def call(ctx: ToolContext, args: BaseModel) -> JsonValue:
        # What the server sends back may echo a secret it was given: hide it, as runbooks do.
        values = {n: v for n in secrets if (v := os.environ.get(secret_variable(n)))}
        hide = Lookups(values, {})
        try:
            result = await hub.call(server.name, listed.name, args.model_dump(mode="json"))
            shown = render_result(result, limit=server.max_result_bytes)
            return hide.scrub_json(shown)  # type: ignore[no-any-return]
        except ToolError as exc:  # the same kind of error, told without the secret
            raise type(exc)(hide.scrub(str(exc))) from None

    tier = tier_of(server, listed)
    return Tool(
        name=name,
        description=(listed.description or listed.title or listed.name).strip()[:2000],
        args=arguments_model(name, schema),
        fn=call,
        tier=tier,
        repeatable=repeatable(listed),
        risk=_risk(touches) if touches else None,
        declares=touches,
        source="mcp",
        origin=server.name,
        untrusted_output=True,
        parameters=listed.input_schema,
    )


def mcp_tools(hub: McpHub) -> tuple[tuple[Tool, ...], dict[str, tuple[str, ...]]]:
    """The tools of every connected server the declarations offer, and the agents they join.

    Servers that are down are left out (the hub has logged why).

    Returns:
        The tools, and tool name -> agents to add it to (the server's and the tool's own
        ``agents``), for :func:`bot.catalogue.build_catalogue`'s ``scopes``.

    Raises:
        ConfigError: a tool's ``touches`` names an argument the tool does not take.
    """
    tools: list[Tool] = []
    scopes: dict[str, tuple[str, ...]] = {}
    for server in hub.servers:
        listed = hub.listed(server.name)
        for name in server.tools:
            if listed is not None and name not in {t.name for t in listed}:
                log.warning(
                    "MCP server %s: [tools.%s] names a tool it does not offer", server.name, name
                )
        for item in listed or ():
            if not offered(server, item.name):
                continue
            made = _tool(hub, server, item)
            if made is None:
                continue
            tools.append(made)
            agents = tuple(dict.fromkeys((*server.agents, *server.override(item.name).agents)))
            if agents:
                scopes[made.name] = agents
    return tuple(tools), scopes
