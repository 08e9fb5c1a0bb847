"""The offline model: a small pattern matcher used when no provider is configured.

It understands a handful of chat-ops phrasings well enough to show opsloop working end to
end on a fresh install, and ``call TOOL key=value …`` for any tool the agent has (see
:mod:`bot.model._call_syntax`), so a new tool can be tried without an API key. It says in
every reply that it is the offline model and how to configure a real one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import JsonValue

from bot.events import (
    AgentReply,
    CallTool,
    ErrorRaised,
    HumanResponded,
    Reply,
    ToolReturned,
    UserMessage,
)
from bot.model._base import Model, ModelRequest, ModelResponse, ToolSpec
from bot.model._call_syntax import CALL, parse_arguments

__all__ = ["OFFLINE_NOTICE", "OfflineModel"]

OFFLINE_NOTICE = (
    "(offline model: set ANTHROPIC_API_KEY or OPENAI_API_KEY, or OPSLOOP_MODELS, "
    "to use a real language model)"
)

_W = r"([a-z0-9][a-z0-9._-]*)"
_V = r"(v?\d[0-9a-z.+_-]*)"

Matcher = Callable[[re.Match[str]], tuple[str, dict[str, JsonValue]]]

_PATTERNS: list[tuple[re.Pattern[str], Matcher]] = [
    (
        re.compile(rf"\bdeploy\s+{_W}\s+{_V}\s+(?:to|in|on|into)\s+{_W}"),
        lambda m: ("deploy", {"service": m[1], "version": m[2], "environment": m[3]}),
    ),
    (
        re.compile(rf"\brestart\s+{_W}\s+(?:in|on)\s+{_W}"),
        lambda m: ("restart", {"service": m[1], "environment": m[2]}),
    ),
    (
        re.compile(rf"\broll\s*-?back\s+{_W}\s+(?:in|on)\s+{_W}"),
        lambda m: ("rollback", {"service": m[1], "environment": m[2]}),
    ),
    (
        re.compile(rf"\b(?:deploys|deployments|history)\s+(?:of|for)\s+{_W}"),
        lambda m: ("recent_deploys", {"service": m[1]}),
    ),
    (
        re.compile(rf"\b(?:status|health)\s+of\s+{_W}\s+(?:in|on)\s+{_W}"),
        lambda m: ("service_status", {"service": m[1], "environment": m[2]}),
    ),
    (
        re.compile(rf"\bhow\s+is\s+{_W}\s+(?:in|on)\s+{_W}"),
        lambda m: ("service_status", {"service": m[1], "environment": m[2]}),
    ),
    (
        re.compile(rf"\b(?:running|deployed|services)\s+(?:in|on)\s+{_W}"),
        lambda m: ("list_services", {"environment": m[1]}),
    ),
    (
        re.compile(r"\b(?:recent\s+deploys|deploy\s+history)\b"),
        lambda m: ("recent_deploys", {}),
    ),
    (
        re.compile(r"\b(?:list|all)\s+services\b|\bwhat\s+is\s+running\b"),
        lambda m: ("list_services", {}),
    ),
]


def _since_last_message(events: Sequence[Any]) -> tuple[UserMessage | None, list[Any]]:
    for index in range(len(events) - 1, -1, -1):
        if isinstance(events[index], UserMessage):
            return events[index], list(events[index + 1 :])
    return None, list(events)


def _describe(output: JsonValue) -> str:
    if isinstance(output, dict) and output.get("rejected"):
        reason = output.get("reason") or "no reason given"
        return f"The change was rejected by {output.get('by')}: {reason}."
    if isinstance(output, list):
        if not output:
            return "Nothing found."
        return "\n".join(_line(item) for item in output)
    return _line(output)


def _line(item: JsonValue) -> str:
    if isinstance(item, str):  # text (an MCP server's, a command's): shown as written
        return item
    if isinstance(item, dict):
        if "action" in item:
            approved = f", approved by {item['approved_by']}" if item.get("approved_by") else ""
            return (
                f"- {item['action']} {item['service']} {item.get('previous_version')} -> "
                f"{item['version']} in {item['environment']} at {item['at']}{approved}"
            )
        if "health" in item:
            return (
                f"- {item['service']} {item['version']} in {item['environment']}: "
                f"{item['health']}, {item['replicas']} "
                f"replica{'' if item['replicas'] == 1 else 's'}"
            )
    return f"- {json.dumps(item)}"


class OfflineModel(Model):
    """Pattern-based decisions: no network, no keys, clearly labelled."""

    provider = "offline"
    model_name = "offline-patterns"

    async def request(self, request: ModelRequest) -> ModelResponse:
        """Pick a tool from the last message, or summarise the last tool result."""
        return ModelResponse(
            decision=self.decide(request), provider=self.provider, model=self.model_name
        )

    def decide(self, request: ModelRequest) -> CallTool | Reply:
        """The decision, from the thread's events."""
        message, after = _since_last_message(request.events)
        tools = {spec.name for spec in request.tools}
        outcome = next(
            (e for e in reversed(after) if isinstance(e, ToolReturned | ErrorRaised)), None
        )
        if outcome is not None and not isinstance(after[-1], HumanResponded | AgentReply):
            text = (
                _describe(outcome.output)
                if isinstance(outcome, ToolReturned)
                else f"That did not work: {outcome.message}"
            )
            return Reply(text=f"{text}\n{OFFLINE_NOTICE}")
        called = _call(message.text if message else "", request)
        if called is not None:
            return called
        asked = message.text.lower() if message else ""
        for pattern, build in _PATTERNS:
            found = pattern.search(asked)
            if found:
                name, arguments = build(found)
                if name in tools:
                    return CallTool(tool=name, arguments=arguments)
                return Reply(
                    text=f"I ({request.agent}) cannot run {name}; start a new thread for that.\n"
                    f"{OFFLINE_NOTICE}"
                )
        return Reply(
            text=(
                "I understand requests such as: 'what is running in staging?', "
                "'status of checkout in production', 'recent deploys of checkout', "
                "'deploy checkout 1.4.2 to production', 'restart search in staging', "
                "'roll back payments in production'; or any of my tools as "
                f"'call TOOL key=value …' ({_names(request.tools)}).\n{OFFLINE_NOTICE}"
            )
        )


def _names(tools: Sequence[ToolSpec]) -> str:
    return ", ".join(spec.name for spec in tools) or "none"


def _call(text: str, request: ModelRequest) -> CallTool | Reply | None:
    """``call TOOL …`` as a call of one of the agent's tools; ``None`` for other text."""
    found = CALL.match(text)
    if found is None:
        return None
    name, rest = found[1], found[2] or ""
    spec = next((t for t in request.tools if t.name == name), None)
    if spec is None:
        if rest.strip() and "=" not in rest and not rest.lstrip().startswith("{"):
            return None  # "call me when…": a phrase, not the call syntax
        return Reply(
            text=f"I ({request.agent}) have no tool {name!r}; my tools: "
            f"{_names(request.tools)}. Try: call TOOL key=value …\n{OFFLINE_NOTICE}"
        )
    try:
        arguments = parse_arguments(rest, spec.parameters)
    except ValueError as exc:
        return Reply(
            text=f"I could not read the arguments of {name}: {exc}. Write them as "
            f'key=value key2="two words", or as one JSON object.\n{OFFLINE_NOTICE}'
        )
    return CallTool(tool=name, arguments=arguments)
