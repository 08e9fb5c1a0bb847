"""Approve with changes, as the forms of chat channels need it.

A form shows each recorded argument as text (:func:`shown`) and gives back text; these
helpers turn what a person typed into argument overrides (:func:`changes_from_texts`) and
say, per argument, what the tool's model would refuse (:func:`problems`), so a modal can
show the error beside the field before anything is stored. The decision itself is checked
again, with policy, when it is applied (:func:`bot.human.edit_of`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import JsonValue, ValidationError

from bot.agent import AgentRegistry
from bot.tools import Tool

__all__ = ["changes_from_texts", "problems", "shown", "tool_named", "typed"]


def shown(value: JsonValue) -> str:
    """A recorded argument as form text: text as it is, nothing as "", else JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def typed(text: str, recorded: JsonValue) -> JsonValue:
    """What ``text`` means for an argument recorded as ``recorded``.

    An argument recorded as text stays text (``1.5`` is the version "1.5", not a number);
    any other is read as JSON when it parses, else kept as typed for validation to judge.
    """
    if isinstance(recorded, str):
        return text
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        return text
    return value


def changes_from_texts(
    recorded: Mapping[str, JsonValue], texts: Mapping[str, str | None]
) -> dict[str, JsonValue]:
    """Only the arguments whose text differs from the recorded value, typed."""
    changes: dict[str, JsonValue] = {}
    for key, text in texts.items():
        before = recorded.get(key)
        if (text or "") != shown(before):
            changes[key] = typed(text or "", before)
    return changes


def tool_named(agents: AgentRegistry, name: str) -> Tool | None:
    """The tool called ``name`` in any agent (tools are shared by name)."""
    for agent in agents.agents:
        found = agent.tool(name)
        if found is not None:
            return found
    return None


def problems(
    tool: Tool, recorded: Mapping[str, JsonValue], changes: Mapping[str, JsonValue]
) -> dict[str, str]:
    """What the tool's model refuses in the edited call, by argument; empty when valid."""
    found: dict[str, str] = {}
    for key in changes:
        if key not in tool.args.model_fields:
            found[key] = f"not an argument of {tool.name}"
    try:
        tool.validate({**recorded, **changes})
    except ValidationError as exc:
        for item in exc.errors(include_url=False, include_input=False):
            key = str(item["loc"][0]) if item["loc"] else next(iter(changes), "")
            found.setdefault(key, item["msg"])
    return found
