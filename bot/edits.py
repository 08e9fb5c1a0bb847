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
from dataclasses import dataclass

from pydantic import JsonValue, ValidationError

from bot.events import ActionReceived, HumanDecision, HumanRequested
from bot.runtime import Runtime, change_key, requesters, rule_for_call, tool_in_force
from bot.store import HumanRequest, Thread
from bot.tools import Tool, format_validation_error

__all__ = ["Edit", "changes_from_texts", "edit_of", "problems", "shown", "typed"]


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


@dataclass(frozen=True)
class Edit:
    """An approval with changes, checked: what runs instead of the recorded call."""

    arguments: dict[str, JsonValue]
    """The whole edited call's arguments, validated by the tool's model."""
    changes: dict[str, JsonValue]
    """Only the arguments whose value differs from the recorded call, with their new values."""
    change_key: str
    """The idempotency key the edited call runs under (derived from the edited call)."""


def edit_of(
    rt: Runtime, thread: Thread, request: HumanRequest, event: ActionReceived
) -> Edit | str | None:
    """The edit ``event`` makes to ``request``'s call; a refusal reason; or ``None`` for none.

    The overrides are merged onto the recorded arguments and validated with the tool's own
    model, and the edited call is put to policy again exactly as the runtime put the
    original: an edit that lands under a rule this approver may not decide is refused.
    The tool itself cannot change (only arguments are edited).
    """
    if event.changes is None:
        return None
    asked = request.request
    if event.decision != HumanDecision.APPROVE:
        return "changes go only with an approval"
    if asked.type != "approval" or not asked.tool or asked.arguments is None:
        return f"request {request.id} is not an approval of a tool call: nothing to change"
    agent = rt.agents.get(thread.agent) if thread.agent else None
    tool = tool_in_force(rt, asked.tool, agent) if asked.tool else None
    if tool is None:
        return f"tool {asked.tool!r} is no longer available: approve or reject it as it is"
    unknown = sorted(set(event.changes) - set(tool.args.model_fields))
    if unknown:  # the tool (and so its tier) stays; only its own arguments may change
        return f"{', '.join(unknown)}: not an argument of {tool.name} (the tool cannot change)"
    try:
        valid = tool.validate({**asked.arguments, **event.changes})
    except ValidationError as exc:
        return f"the changes are not valid: {format_validation_error(tool.name, exc)}"
    arguments: dict[str, JsonValue] = valid.model_dump(mode="json")
    changes = {k: v for k, v in arguments.items() if asked.arguments.get(k, ...) != v}
    if not changes:
        return None  # nothing differs: a plain approval of the recorded call
    # The thread as it was when the call was asked for: the same requesters and turn.
    at = next(
        (
            i
            for i, e in enumerate(thread.events)
            if isinstance(e, HumanRequested) and e.request_id == asked.request_id
        ),
        len(thread.events),
    )
    before = thread.events[:at]
    _, turn = requesters(before)
    rule = rule_for_call(rt.policy, thread, before, tool, valid)
    if rule.approval == "required" and not rt.policy.may_decide(event.actor, rule.approvers):
        who = ", ".join(rule.approvers)
        return (
            f"the edited call falls under {rule.name or 'another rule'!r}, which"
            f" {event.actor.principal} may not approve (allowed: {who})"
        )
    if rule.approval == "required" and (
        rule.min_approvals > 1 or (rule.mode == "all" and len(rule.approvers) > 1)
    ):
        return (
            f"the edited call falls under {rule.name or 'another rule'!r}, which needs several"
            " approvers: reject it saying what to change instead"
        )
    return Edit(
        arguments=arguments,
        changes=changes,
        change_key=change_key(thread.id, tool.name, arguments, turn),
    )
