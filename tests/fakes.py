"""Fakes the tests share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.events import (
    ActionReceived,
    ConversationRef,
    HumanDecision,
    Identity,
    MessageReceived,
    utcnow,
)


@dataclass
class RecordingDispatcher:
    """Records what was enqueued; does no work (the test does it, when it wants)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    countdowns: list[float | None] = field(default_factory=list)
    """Each :meth:`deliver` call's ``countdown``, in order."""
    broken: Exception | None = None
    """Raised by :meth:`ping`, to play a broker that is down."""

    def process(self, item_id: int) -> None:
        self.calls.append(("process", item_id))

    def deliver(self, thread_id: str, *, countdown: float | None = None) -> None:
        self.calls.append(("deliver", thread_id))
        self.countdowns.append(countdown)

    def resume(self, thread_id: str) -> None:
        self.calls.append(("resume", thread_id))

    def ping(self) -> None:
        if self.broken is not None:
            raise self.broken

    def of(self, kind: str) -> list[Any]:
        return [arg for name, arg in self.calls if name == kind]


def message_event(
    text: str, *, sender: Identity, thread: str | None = None, key: str | None = None, **extra: Any
) -> MessageReceived:
    """A message from ``sender`` on their channel, in ``thread`` (a new one by default)."""
    return MessageReceived(
        idempotency_key=key or f"test:{uuid.uuid4().hex}",
        conversation=ConversationRef(channel=sender.channel, thread_key=thread or uuid.uuid4().hex),
        sender=sender,
        text=text,
        **extra,
    )


def action_event(
    request_id: str, decision: HumanDecision, actor: Identity, comment: str | None = None
) -> ActionReceived:
    """``actor`` deciding a human request, from their channel."""
    return ActionReceived(
        idempotency_key=f"test:{uuid.uuid4().hex}",
        conversation=ConversationRef(channel=actor.channel, thread_key="click"),
        actor=actor,
        request_id=request_id,
        decision=decision,
        comment=comment,
    )


class Clock:
    """A clock for ``runtime.clock`` that stands still until told to move."""

    def __init__(self) -> None:
        self.start = self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> None:
        """Move to ``minutes`` after the start."""
        self.now = self.start + timedelta(minutes=minutes)
