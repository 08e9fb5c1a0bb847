"""What was worked out from an event log, kept so the next read costs only the new events.

A thread's log is append-only and its events immutable (frozen models), and each step reads
the log it read last time with a few events more. A :class:`LogMemo` keeps one state per
log, found by the log's first event (kept alive by the state, so its ``id`` stays unique),
and feeds it only the events after those it has seen. A log that is not an extension of
what a state saw (shorter, or other objects in it) gets a fresh state: never a stale one.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

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
    """Whether ``events`` starts with the very objects of ``seen`` (a C loop of ``is``)."""
    return len(events) >= len(seen) and all(map(operator.is_, events[: len(seen)], seen))
