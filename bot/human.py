"""Human decisions: who may decide a request, and what a decision appends to the thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue, ValidationError

from bot.events import (
    ActionReceived,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    RequestEscalated,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from bot.outbound import Outbound, RequestResolved, outbound_for, place_conversation
from bot.policy import Policy
from bot.runtime import Runtime, change_key, requesters
from bot.store import HumanRequest, Thread
from bot.tools import format_validation_error

__all__ = [
    "DECISION_STATUS",
    "Edit",
    "card_places",
    "decide",
    "decision_events",
    "decision_outbound",
    "edit_of",
    "refusal_of",
]


def refusal_of(policy: Policy, request: HumanRequest, event: ActionReceived) -> str | None:
    """Why ``event`` may not decide ``request``, or ``None`` when it may."""
    if request.status != "pending":
        by = request.decided_by or "expiry"
        return f"request {request.id} was already {request.status} by {by}"
    allowed = (
        {HumanDecision.APPROVE, HumanDecision.REJECT}
        if request.request.type == "approval"
        else {HumanDecision.ANSWER, HumanDecision.REJECT}
    )
    if event.decision not in allowed:
        return f"request {request.id} is {request.request.type!r}: {event.decision} does not apply"
    if event.decision == HumanDecision.REJECT and not event.comment:
        return "a rejection needs a reason"
    if event.decision == HumanDecision.ANSWER and not event.comment:
        return "an answer needs text"
    if not policy.may_decide(event.actor, request.approvers):
        who = ", ".join(request.approvers)
        return f"{event.actor.principal} may not decide request {request.id} (allowed: {who})"
    if request.request.four_eyes and event.decision == HumanDecision.APPROVE:
        person = policy.person_of(event.actor.principal)
        asked = request.request
        # Requests recorded before people were tracked name only who spoke last.
        asked_by = set(asked.requesters) or {policy.person_of(asked.requested_by or "")}
        if person in asked_by:
            return (
                f"four-eyes rule: {event.actor.principal} may not approve their own request"
                f" ({person} asked for this change)"
            )
    return None


DECISION_STATUS = {
    HumanDecision.APPROVE: "approved",
    HumanDecision.REJECT: "rejected",
    HumanDecision.ANSWER: "answered",
}


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
    tool = rt.agents.get(thread.agent).tool(asked.tool) if thread.agent else None
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
    people, turn = requesters(before)
    requester = next((e.sender for e in reversed(before) if isinstance(e, UserMessage)), None)
    environment = arguments.get("environment")
    rule = rt.policy.rule_for(
        tool=tool.name,
        tier=tool.tier,
        environment=environment if isinstance(environment, str) else None,
        channel=thread.conversation.channel,
        requester=requester,
        requesters=people,
    )
    if rule.approval == "required" and not rt.policy.may_decide(event.actor, rule.approvers):
        who = ", ".join(rule.approvers)
        return (
            f"the edited call falls under {rule.name or 'another rule'!r}, which"
            f" {event.actor.principal} may not approve (allowed: {who})"
        )
    return Edit(
        arguments=arguments,
        changes=changes,
        change_key=change_key(thread.id, tool.name, arguments, turn),
    )


def decide(
    rt: Runtime, thread: Thread, request: HumanRequest, event: ActionReceived
) -> tuple[str | None, list[Any]]:
    """Check ``event`` against ``request`` (and its edit, if any): a refusal, or the events."""
    refusal = refusal_of(rt.policy, request, event)
    edit = None if refusal else edit_of(rt, thread, request, event)
    if refusal or isinstance(edit, str):
        return refusal or str(edit), []
    return None, decision_events(request, event.decision, event.actor, event.comment, edit)


def decision_events(
    request: HumanRequest,
    decision: HumanDecision,
    actor: Identity | None,
    comment: str | None,
    edit: Edit | None = None,
) -> list[Any]:
    """The events that record a decision and carry it out.

    Approve appends exactly the recorded tool call (the model is not asked again), or the
    approver's checked edit of it; reject answers the call with the reason, which the model
    reads as the tool's result.
    """
    asked = request.request
    events: list[Any] = [
        HumanResponded(
            request_id=asked.request_id,
            decision=decision,
            actor=actor,
            comment=comment,
            changes=edit.changes if edit else None,
        ),
        StatusChanged(status=ThreadStatus.RUNNING, reason=f"request {decision.value}"),
    ]
    if asked.type == "approval" and asked.tool and asked.call_id:
        if decision == HumanDecision.APPROVE:
            # Exactly the recorded (or approved edited) call runs; the model is not asked.
            key = asked.change_key or f"{request.thread_id}:{asked.request_id}"
            events.append(
                ToolCalled(
                    call_id=asked.call_id,
                    tool=asked.tool,
                    arguments=edit.arguments if edit else asked.arguments or {},
                    idempotency_key=edit.change_key if edit else key,
                    approved_by=actor.principal if actor else None,
                )
            )
        else:
            by = actor.principal if actor else "expiry"
            events.append(
                ToolReturned(
                    call_id=asked.call_id,
                    tool=asked.tool,
                    output={"rejected": True, "by": by, "reason": comment or ""},
                )
            )
    return events


def card_places(thread: Thread, request: HumanRequest) -> list[str]:
    """Every place outside its thread that ``request`` was posted: notify, then escalations."""
    places = list(request.request.notify)
    for event in thread.events:
        if isinstance(event, RequestEscalated) and event.request_id == request.id:
            places += event.posted_to
    return list(dict.fromkeys(places))


def decision_outbound(thread: Thread, request: HumanRequest, events: list[Any]) -> list[Outbound]:
    """What a decision sends: the thread's messages, and an update of every other card."""
    out = outbound_for(thread.conversation, events)
    for resolved in [o for o in out if isinstance(o, RequestResolved)]:
        out += [
            resolved.model_copy(
                update={"conversation": place_conversation(p, thread.conversation), "target": p}
            )
            for p in card_places(thread, request)
        ]
    return out
