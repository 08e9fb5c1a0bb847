"""Human decisions: who may decide a request, and what a decision appends to the thread.

A request may need several approvers (the rule's ``mode`` and ``min_approvals``): each
approval short of enough appends an :class:`~bot.events.ApprovalGiven` and leaves the
request pending; the one that completes it runs the call; one reject rejects at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.events import (
    ActionReceived,
    ApprovalGiven,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    RequestEscalated,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
)
from bot.outbound import (
    Outbound,
    RequestProgress,
    RequestResolved,
    outbound_for,
    place_conversation,
)
from bot.policy import Policy
from bot.store import HumanRequest, Thread

__all__ = [
    "DECISION_STATUS",
    "Progress",
    "approval_progress",
    "card_places",
    "decide",
    "decision_events",
    "decision_outbound",
    "progress_json",
    "refusal_of",
]

Resolution = tuple[str, str, str | None, str | None]
"""``(request_id, status, decided_by, comment)``, as :meth:`bot.store.Store.append` takes it."""


@dataclass(frozen=True)
class Progress:
    """How far a request's approvals have come."""

    approved_by: tuple[str, ...]
    """The principals that have approved, in order."""
    still_needed: tuple[str, ...]
    """Who must still approve, in words: ``role:service-owner``, ``1 more of role:oncall``."""
    remaining: int
    """How many more people must approve (0: enough)."""

    @property
    def done(self) -> bool:
        """Whether the approvals are enough."""
        return self.remaining == 0


def approval_progress(
    policy: Policy, request: HumanRequested, approvals: Sequence[Identity]
) -> Progress:
    """What ``approvals`` (valid ones, one per person) amount to for ``request``.

    With ``mode = "all"`` each entry of the request's approvers must be covered by a
    different person (a person who could cover several is counted where they are needed
    most: a maximum matching); ``min_approvals`` counts different people. Both hold at once.
    """
    people: dict[str, list[Identity]] = {}
    for who in approvals:
        people.setdefault(policy.person_of(who.principal), []).append(who)
    entries = list(request.approvers) if request.mode == "all" else []
    fits = [
        [i for i, entry in enumerate(entries) if any(policy.may_decide(w, [entry]) for w in ids)]
        for ids in people.values()
    ]
    covered = _matching(fits, len(entries))
    uncovered = [entry for i, entry in enumerate(entries) if i not in covered]
    more = request.min_approvals - len(people) - len(uncovered)
    needed = list(uncovered)
    if more > 0:
        needed.append(f"{more} more of {', '.join(request.approvers) or 'anyone'}")
    return Progress(
        approved_by=tuple(w.principal for w in approvals),
        still_needed=tuple(needed),
        remaining=len(uncovered) + max(more, 0),
    )


def progress_json(policy: Policy, record: HumanRequest) -> dict[str, Any]:
    """A request's ``approvals`` (who, when, note) and ``still_needed``, for the API."""
    approvals = [
        {
            "actor": a.actor.principal,
            "display_name": a.actor.label,
            "auth": getattr(a.actor, "auth", None),
            "at": a.at.isoformat(),
            "comment": a.comment,
        }
        for a in record.approvals
    ]
    if record.status == "approved" and record.decided_by and record.decided_at:
        final = {"actor": record.decided_by, "display_name": record.decided_by, "auth": None}
        approvals.append({**final, "at": record.decided_at.isoformat(), "comment": record.comment})
    needed: tuple[str, ...] = ()
    if record.status == "pending" and record.request.type == "approval":
        given = [a.actor for a in record.approvals]
        needed = approval_progress(policy, record.request, given).still_needed
    return {"approvals": approvals, "still_needed": list(needed)}


def _matching(fits: list[list[int]], size: int) -> set[int]:
    """The entries a maximum matching of people (``fits[p]``: entries p may fill) covers."""
    owner: list[int | None] = [None] * size

    def place(person: int, seen: set[int]) -> bool:
        for entry in fits[person]:
            if entry in seen:
                continue
            seen.add(entry)
            current = owner[entry]
            if current is None or place(current, seen):
                owner[entry] = person
                return True
        return False

    for person in range(len(fits)):
        place(person, set())
    return {entry for entry, person in enumerate(owner) if person is not None}


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
    if event.decision == HumanDecision.APPROVE and request.approvals:
        return _second_approval_refusal(policy, request, event)
    return None


def _second_approval_refusal(
    policy: Policy, request: HumanRequest, event: ActionReceived
) -> str | None:
    """Why an approval after others would not count: the same person, or not needed."""
    person = policy.person_of(event.actor.principal)
    for given in request.approvals:
        if policy.person_of(given.actor.principal) == person:
            return (
                f"request {request.id} was already approved by you"
                f" ({given.actor.principal}); it needs another person"
            )
    earlier = [a.actor for a in request.approvals]
    before = approval_progress(policy, request.request, earlier)
    after = approval_progress(policy, request.request, [*earlier, event.actor])
    if after.remaining >= before.remaining:
        return (
            f"request {request.id} does not need {event.actor.principal}'s approval;"
            f" still needed: {', '.join(before.still_needed)}"
        )
    return None


DECISION_STATUS = {
    HumanDecision.APPROVE: "approved",
    HumanDecision.REJECT: "rejected",
    HumanDecision.ANSWER: "answered",
}


def decide(
    policy: Policy, request: HumanRequest, event: ActionReceived
) -> tuple[list[Any], Resolution | None]:
    """The events an accepted decision appends, and how it resolves the request.

    An approval that is not yet enough appends only an :class:`ApprovalGiven` and resolves
    nothing: the request stays pending and the thread paused. Call it after
    :func:`refusal_of` said the decision may be made.
    """
    approvers: tuple[str, ...] = ()
    if event.decision == HumanDecision.APPROVE and request.request.type == "approval":
        given = [*(a.actor for a in request.approvals), event.actor]
        progress = approval_progress(policy, request.request, given)
        if not progress.done:
            note = ApprovalGiven(
                request_id=request.id,
                actor=event.actor,
                comment=event.comment,
                approved_by=progress.approved_by,
                still_needed=progress.still_needed,
            )
            return [note], None
        approvers = progress.approved_by
    events = decision_events(request, event.decision, event.actor, event.comment, approvers)
    status = DECISION_STATUS[event.decision]
    return events, (request.id, status, event.actor.principal, event.comment)


def decision_events(
    request: HumanRequest,
    decision: HumanDecision,
    actor: Identity | None,
    comment: str | None,
    approvers: Sequence[str] = (),
) -> list[Any]:
    """The events that record a decision and carry it out.

    Approve appends exactly the recorded tool call (the model is not asked again), naming
    every approver (``approvers``, when several were needed); reject answers the call with
    the reason, which the model reads as the tool's result.
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
                    approved_by=", ".join(approvers) or (actor.principal if actor else None),
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
    for resolved in [o for o in out if isinstance(o, RequestResolved | RequestProgress)]:
        out += [
            resolved.model_copy(
                update={"conversation": place_conversation(p, thread.conversation), "target": p}
            )
            for p in card_places(thread, request)
        ]
    return out
