"""What the store hands out: plain, immutable records, never ORM rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.events import ConversationRef, HumanRequested, Identity, StatusChanged, ThreadStatus

__all__ = ["Approval", "HumanRequest", "InboxItem", "OutboxItem", "Thread", "ThreadSummary"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class ThreadSummary(_Record):
    """A thread without its events, for listings."""

    id: str
    """The thread's id."""
    conversation: ConversationRef
    """Where it lives."""
    agent: str | None
    """The agent handling it."""
    status: ThreadStatus
    """Where it stands."""
    title: str
    """The first message, shortened."""
    last_seq: int
    """How many events it has."""
    created_at: datetime
    """When it started."""
    updated_at: datetime
    """When it last changed."""


class Thread(ThreadSummary):
    """A thread with its whole event log: the input of a step."""

    events: tuple[Any, ...]
    """The log, in order (``events[i]`` has sequence number ``i + 1``)."""

    def extended(self, events: Sequence[Any], at: datetime) -> Thread:
        """This thread after ``events`` were appended at ``at`` (what the store now holds)."""
        update: dict[str, Any] = {
            "events": (*self.events, *events),
            "last_seq": self.last_seq + len(events),
            "updated_at": at,
        }
        for event in events:
            if isinstance(event, StatusChanged):
                update["status"] = event.status
                if event.agent:
                    update["agent"] = event.agent
        return self.model_copy(update=update)


class Approval(_Record):
    """One approval of a request that needs several: who, when, with what note."""

    actor: Identity
    """Who approved."""
    at: datetime
    """When."""
    comment: str | None = None
    """Their note."""


class HumanRequest(_Record):
    """A human request and where it stands."""

    thread_id: str
    """The thread that asked."""
    request: HumanRequested
    """The request as recorded in the thread."""
    status: str
    """``pending``, ``approved``, ``rejected``, ``answered`` or ``expired``."""
    decided_by: str | None
    """The principal who decided."""
    decided_at: datetime | None
    """When."""
    comment: str | None
    """Reason, answer or note."""
    message_ref: dict[str, Any] | None
    """Where a channel posted the request."""
    escalation_level: int = 0
    """Escalation steps taken so far."""
    escalated_to: tuple[str, ...] = ()
    """Approver entries the escalation steps added."""
    next_escalation_at: datetime | None = None
    """When the next escalation step is due, while pending."""

    @property
    def approvers(self) -> tuple[str, ...]:
        """Who may decide now: the request's approvers and those escalation added."""
        return tuple(dict.fromkeys((*self.request.approvers, *self.escalated_to)))

    def escalation(self) -> dict[str, Any]:
        """The escalation state, JSON-shaped, for the API."""
        due = self.next_escalation_at if self.status == "pending" else None
        return {
            "escalation_level": self.escalation_level,
            "escalated_to": list(self.escalated_to),
            "next_escalation_at": due.isoformat() if due else None,
        }

    approvals: tuple[Approval, ...] = ()
    """Approvals given so far while the request needed more (see ``ApprovalGiven``)."""

    @property
    def id(self) -> str:
        """The request's id."""
        return self.request.request_id


class InboxItem(_Record):
    """An inbound event as stored."""

    id: int
    """The inbox row id (what ``process`` tasks carry)."""
    idempotency_key: str
    """The event's key."""
    event: Any
    """The inbound event."""
    status: str
    """``pending``, ``done`` or ``failed``."""
    thread_id: str | None
    """The thread it went to, once processed."""
    error: str | None
    """Why it failed (or, while unfinished, why the last try failed)."""
    received_at: datetime
    """When it arrived."""
    attempts: int = 0
    """Tries at processing it so far."""


class OutboxItem(_Record):
    """An outbound message waiting for (or past) delivery."""

    id: int
    """The outbox row id."""
    thread_id: str
    """The thread it belongs to."""
    message: Any
    """The :data:`bot.outbound.Outbound` message."""
    status: str
    """``pending``, ``sent`` or ``failed``."""
    attempts: int
    """Delivery attempts so far."""
    next_attempt_at: datetime
    """When it is due (again)."""
