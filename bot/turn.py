"""A turn's bookkeeping, folded into the commits of its steps.

A worker processing one inbound event holds the thread's lease, applies the event (a
message, a decision) and runs the agent until it replies or pauses. None of that
bookkeeping costs a transaction of its own: the event's events ride with the first model
step's commit, every commit is fenced by the lease, and the last one marks the inbox item
done and gives the lease back. A tool never runs before the decision that allowed it is
committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.events import ThreadStatus, utcnow
from bot.outbound import outbound_for
from bot.store import OutboxItem, Store, Thread

__all__ = ["Turn", "commit"]


@dataclass
class Turn:
    """What one turn carries besides the thread."""

    lease: str | None = None
    """The owner of the thread's lease: every commit is fenced by it."""
    item: int | None = None
    """The inbox item this turn processes: ``done`` with the turn's last commit."""
    events: list[Any] = field(default_factory=list)
    """The item's own events (a message, a decision), applied but not yet committed."""
    outbound: list[Any] = field(default_factory=list)
    """Their outbound messages."""
    resolve: tuple[str, str, str | None, str | None] | None = None
    """The human request the decision resolves, with it."""
    ended: bool = False
    """A commit finished the turn: the item is done and the lease given back."""
    claimed: list[OutboxItem] | None = None
    """For a worker that delivers the turn's messages itself: filled, by the last commit,
    with its messages already claimed for delivery (when none before them is unsent)."""

    @property
    def carrying(self) -> bool:
        """Whether the item's own events are still to be committed."""
        return bool(self.events) or self.resolve is not None

    def view(self, thread: Thread) -> Thread:
        """``thread`` as it will be once the carried events are committed."""
        return thread.extended(self.events, utcnow()) if self.events else thread


async def commit(store: Store, thread: Thread, new: Sequence[Any], turn: Turn) -> Thread:
    """Append what the turn carries and ``new`` to ``thread`` (as committed); the result.

    When the thread stops running with these events, the same transaction finishes the
    turn: the inbox item is marked done and the lease released.
    """
    carried = turn.carrying
    events = [*turn.events, *new]
    after = thread.extended(events, utcnow())
    ends = after.status != ThreadStatus.RUNNING
    await store.append(
        thread.id,
        expected_seq=thread.last_seq,
        events=events,
        outbound=[*turn.outbound, *outbound_for(thread.conversation, new)],
        resolve=turn.resolve,
        inbox_item=turn.item if carried else None,
        done_item=turn.item if ends else None,
        lease=turn.lease,
        release=ends and turn.lease is not None,
        claim=turn.claimed if ends else None,
    )
    turn.events, turn.outbound, turn.resolve = [], [], None
    turn.ended = ends
    return after
