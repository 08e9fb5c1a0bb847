"""Processing that fails: every try recorded on the thread, counted, and capped.

A failure nobody planned for (a missing prompt, a broken model client, a bug) must neither
leave a thread "running" forever nor vanish: each failed try leaves an ``internal`` error
event in the thread (three in a row make the next step ask a person), and past the last try
the thread is failed, its inbox item too, and the person is told.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.errors import OpsloopError
from bot.events import AgentReply, ErrorRaised, StatusChanged, ThreadStatus
from bot.outbound import outbound_for
from bot.store import Store, Thread

__all__ = [
    "AttemptsExhaustedError",
    "gave_up",
    "internal_errors_in_a_row",
    "item_failed",
    "record_failure",
]

log = logging.getLogger(__name__)


class AttemptsExhaustedError(OpsloopError):
    """An inbound event failed on every try allowed; it is given up (its reason says why)."""


def internal_errors_in_a_row(thread: Thread) -> int:
    """Failed tries recorded at the end of the thread's log."""
    count = 0
    for event in reversed(thread.events):
        if isinstance(event, ErrorRaised) and event.source == "internal":
            count += 1
        elif not isinstance(event, StatusChanged):
            break
    return count


def gave_up(thread: Thread) -> str | None:
    """Why processing gave up on the thread, if it just did."""
    last = thread.events[-1] if thread.events else None
    if thread.status == ThreadStatus.FAILED and isinstance(last, StatusChanged) and last.reason:
        return last.reason
    return None


async def record_failure(
    store: Store, limit: int, thread_id: str, item_id: int | None, attempt: int, exc: Exception
) -> bool:
    """Record a failed try on the thread; past the last try, give up and tell the person.

    Returns:
        Whether processing gave up (the thread is failed and the person was told).
    """
    exhausted = isinstance(exc, AttemptsExhaustedError)
    reason = (str(exc) if exhausted else f"{type(exc).__name__}: {exc}")[:500]
    if not exhausted:
        log.error(
            "processing thread %s failed (try %s of %s)", thread_id, attempt, limit, exc_info=exc
        )
    if item_id is not None:
        await store.note_inbox_error(item_id, reason)
    thread = await store.load_thread(thread_id)
    events: list[Any] = []
    if not exhausted:
        message = f"processing failed (try {attempt} of {limit}): {reason}"
        events.append(ErrorRaised(source="internal", message=message))
    given_up = exhausted or attempt >= limit
    if given_up:
        text = (
            f"Something went wrong on my side, and I stopped after {min(attempt, limit)} "
            f"tries: {reason}. Nothing more will be done with this request; "
            "an operator can see the details in the console."
        )
        events += [
            AgentReply(text=text, agent=thread.agent or "opsloop"),
            StatusChanged(status=ThreadStatus.FAILED, reason=f"gave up: {reason}"[:300]),
        ]
    await store.append(
        thread_id,
        expected_seq=thread.last_seq,
        events=events,
        outbound=outbound_for(thread.conversation, events),
    )
    return given_up


async def item_failed(
    store: Store, limit: int, item_id: int, thread_id: str | None, attempt: int, exc: Exception
) -> None:
    """A try that failed before reaching a thread: keep why, and give up past the last try."""
    reason = f"{type(exc).__name__}: {exc}"[:500]
    log.error("inbox item %s failed (try %s)", item_id, attempt, exc_info=exc)
    if attempt >= limit:
        error = f"gave up after {attempt} tries: {reason}"
        await store.finish_inbox(item_id, thread_id=thread_id, error=error)
    else:
        await store.note_inbox_error(item_id, reason)
