"""What was worked out from an event log, kept so the next read costs only the new events.

A thread's log is append-only and its events immutable (frozen models), and each step reads
the log it read last time with a few events more. A :class:`LogMemo` keeps one state per
log, found by the log's first event (kept alive by the state, so its ``id`` stays unique),
and feeds it only the events after those it has seen. A log read back from the database
holds new objects for the events appended since its last read: equal ones (same JSON) count
as seen. A log that is not an extension of
what a state saw (shorter, or other objects in it) gets a fresh state: never a stale one.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

__all__ = ["LogMemo", "LogState"]


class LogState(Protocol):
    """What one log's state does: take the events after those it has seen."""

    seen: list[Any]
    """The events taken so far, in order."""

    def extend(self, events: Sequence[Any]) -> bool:
        """Take ``events[len(seen):]``; ``False`` when that would change what came before."""


S = TypeVar("S", bound=LogState)


class LogMemo(Generic[S]):
    """One state per log, least recently used dropped first beyond ``size`` logs."""

    def __init__(self, new: Callable[[], S], size: int = 256) -> None:
        """Make states with ``new``; keep at most ``size`` of them."""
        self._new = new
        self._size = size
        self._states: OrderedDict[int, S] = OrderedDict()
        self._lock = threading.Lock()  # event loops in other threads may read logs too

    @contextmanager
    def state(self, events: Sequence[Any]) -> Iterator[S]:
        """The state that has taken exactly ``events``, for use inside the ``with`` only."""
        with self._lock:
            key = id(events[0]) if events else 0
            state = self._states.get(key)
            if state is None or not _extends(events, state.seen) or not state.extend(events):
                state = self._new()
                state.extend(events)  # a fresh state has seen nothing to contradict
            if events:
                self._states[key] = state
                self._states.move_to_end(key)
                while len(self._states) > self._size:
                    self._states.popitem(last=False)
            yield state


def _extends(events: Sequence[Any], seen: list[Any]) -> bool:
    """Whether ``events`` starts with the events of ``seen``, which then become its own.

    The very objects, checked in a C loop; or, where a log was read back from the database
    after being extended in memory (its newest events are new objects), events whose JSON
    is the same (checked from the end, where those are, until the objects are the same).
    """
    end = len(seen)
    if len(events) < end:
        return False
    same = end
    while same > 0 and events[same - 1] is not seen[same - 1]:
        if not _equal(events[same - 1], seen[same - 1]):
            return False
        same -= 1
    if not all(map(operator.is_, events[:same], seen)):
        return False
    seen[same:end] = events[same:end]  # the next check finds the very objects again
    return True


def _equal(one: Any, other: Any) -> bool:
    # JSON, not ==: pydantic's == holds 1 and True equal, which render differently.
    return (
        isinstance(one, BaseModel)
        and type(one) is type(other)
        and one.model_dump_json() == other.model_dump_json()
    )
