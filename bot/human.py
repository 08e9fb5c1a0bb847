"""Human decisions: who may decide a request, and what a decision appends to the thread."""

from __future__ import annotations

from typing import Any

from bot.events import (
    ActionReceived,
    HumanDecision,
    HumanResponded,
    Identity,
    RequestEscalated,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
)
from bot.outbound import Outbound, RequestResolved, outbound_for, place_conversation
from bot.policy import Policy
from bot.store import HumanRequest, Thread

__all__ = ["DECISION_STATUS", "card_places", "decision_events", "decision_outbound", "refusal_of"]


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


def decision_events(
    request: HumanRequest, decision: HumanDecision, actor: Identity | None, comment: str | None
) -> list[Any]:
    """The events that record a decision and carry it out.

    Approve appends exactly the recorded tool call (the model is not asked again); reject
    answers the call with the reason, which the model reads as the tool's result.
    """
    asked = request.request
    events: list[Any] = [
        HumanResponded(
            request_id=asked.request_id, decision=decision, actor=actor, comment=comment
        ),
        StatusChanged(status=ThreadStatus.RUNNING, reason=f"request {decision.value}"),
    ]
    if asked.type == "approval" and asked.tool and asked.call_id:
        if decision == HumanDecision.APPROVE:
            # Exactly the recorded call runs; the model is not asked again.
            events.append(
                ToolCalled(
                    call_id=asked.call_id,
                    tool=asked.tool,
                    arguments=asked.arguments or {},
                    idempotency_key=asked.change_key or f"{request.thread_id}:{asked.request_id}",
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
