"""One state per log, fed only the events it has not seen, never a stale one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot._log_memo import LogMemo


class Taken:
    """Records every event it is given, so a test sees what was worked out again."""

    given: list[Any]

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def extend(self, events: Sequence[Any]) -> bool:
        new = list(events[len(self.seen) :])
        Taken.given.extend(new)
        self.seen.extend(new)
        return not any(e == "refuse" for e in new)


def memo(size: int = 4) -> LogMemo[Taken]:
    Taken.given = []
    return LogMemo(Taken, size)


def seen(m: LogMemo[Taken], log: Sequence[Any]) -> list[Any]:
    with m.state(log) as state:
        return list(state.seen)


def test_a_grown_log_feeds_only_its_new_events():
    m, a, b, c = memo(), object(), object(), object()

    assert seen(m, (a, b)) == [a, b]
    assert seen(m, (a, b, c)) == [a, b, c]
    assert Taken.given == [a, b, c]


def test_a_log_that_is_not_an_extension_starts_afresh():
    m, a, b, c = memo(), object(), object(), object()
    seen(m, (a, b, c))
    Taken.given.clear()

    assert seen(m, (a, c)) == [a, c]  # same first event, other objects after it
    assert seen(m, (a,)) == [a]  # shorter
    assert Taken.given == [a, c, a]


def test_a_state_that_refuses_new_events_is_rebuilt():
    m, a = memo(), object()
    seen(m, (a,))
    Taken.given.clear()

    assert seen(m, (a, "refuse")) == [a, "refuse"]
    assert Taken.given == ["refuse", a, "refuse"]


def test_the_least_recently_used_log_is_dropped_beyond_the_size():
    m = memo(size=2)
    logs = [(object(),) for _ in range(3)]
    for log in logs:
        seen(m, log)
    seen(m, logs[2])
    seen(m, logs[1])
    Taken.given.clear()

    seen(m, logs[0])  # dropped when the third came: worked out again, dropping the third
    seen(m, logs[1])  # used more lately than the third: kept
    seen(m, logs[2])

    assert Taken.given == [logs[0][0], logs[2][0]]


def test_an_empty_log_has_a_state_too():
    m = memo()

    assert seen(m, ()) == []
