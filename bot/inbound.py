"""What processing an inbound event gives back, and the checks every inbound text passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.errors import BadInputError, OpsloopError
from bot.store import InboxItem, OutboxItem, Thread

__all__ = ["DONE", "Outcome", "ThreadBusyError", "check_text"]


DONE = frozenset({"done", "failed"})
"""Inbox statuses with nothing left to do."""


class ThreadBusyError(OpsloopError):
    """Another worker holds the thread's lease; try the event again shortly."""


@dataclass(frozen=True)
class Outcome:
    """What processing one inbound event did."""

    item: InboxItem
    """The inbox item."""
    thread: Thread
    """The thread afterwards."""
    first_new_seq: int
    """Events from this sequence number on are new."""
    claimed: tuple[OutboxItem, ...] = ()
    """Its messages claimed for delivery by the caller that asked to deliver them."""

    @property
    def new_events(self) -> tuple[Any, ...]:
        """The events this processing added."""
        return self.thread.events[self.first_new_seq - 1 :]


def check_text(text: str, *, limit: int) -> str:
    """Refuse text no person meant to send: empty, oversized, undecodable, binary."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInputError("the message is not valid UTF-8") from None
    if "\x00" in text:
        raise BadInputError("the message contains NUL bytes; send plain text")
    text = text.strip()
    if not text:
        raise BadInputError("the message is empty")
    if len(text) > limit:
        raise BadInputError(f"the message is {len(text):,} characters long; the limit is {limit:,}")
    return text
