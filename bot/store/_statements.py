"""The hot path's statements, built once.

A statement built per call costs more than running it on SQLite: constructing the
expression and generating its cache key. These are built once (or once per shape) with
bound parameters, so each call only binds values to an already compiled statement.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Update, bindparam, insert, update
from sqlalchemy.engine import Connection

from bot.errors import ConcurrentStepError
from bot.store._tables import HumanRequestRow, InboxRow, OutboxRow, ThreadEventRow, ThreadRow

__all__ = [
    "INSERT_EVENTS",
    "INSERT_INBOX",
    "INSERT_OUTBOX",
    "INSERT_REQUESTS",
    "INSERT_THREAD",
    "fence",
    "fence_statement",
    "mark_inbox",
]

INSERT_EVENTS = insert(ThreadEventRow)
INSERT_INBOX = insert(InboxRow)
INSERT_THREAD = insert(ThreadRow)
INSERT_OUTBOX = insert(OutboxRow)
INSERT_REQUESTS = insert(HumanRequestRow)

_FINISHED: dict[str, Any] = {
    "status": bindparam("f_status"),
    "error": bindparam("f_error"),
    "thread_id": bindparam("thread"),
    "processed_at": bindparam("now"),
}
_APPLY = (
    update(InboxRow)
    .where(InboxRow.id == bindparam("item"), InboxRow.status == "pending")
    .values(status="applied", thread_id=bindparam("thread"))
)
_APPLY_AND_FINISH = (
    update(InboxRow)
    .where(InboxRow.id == bindparam("item"), InboxRow.status == "pending")
    .values(_FINISHED)
)
_FINISH = (
    update(InboxRow)
    .where(InboxRow.id == bindparam("item"), InboxRow.status.in_(("pending", "applied")))
    .values(_FINISHED)
)


@cache
def fence_statement(columns: tuple[str, ...], leased: bool) -> Update:
    """The thread row's fenced update, setting ``columns`` (bound as ``v_<column>``).

    It matches only while the thread is at ``w_seq`` (and, when ``leased``, while
    ``w_lease`` holds its lease).
    """
    where = [ThreadRow.id == bindparam("w_id"), ThreadRow.last_seq == bindparam("w_seq")]
    if leased:
        where.append(ThreadRow.lease_owner == bindparam("w_lease"))
    return update(ThreadRow).where(*where).values({c: bindparam(f"v_{c}") for c in columns})


def fence(
    connection: Connection,
    thread_id: str,
    expected_seq: int,
    lease: str | None,
    values: dict[str, Any],
) -> bool:
    """Update the thread row with ``values`` if it is still where the caller left it."""
    statement = fence_statement(tuple(sorted(values)), lease is not None)
    params = {f"v_{k}": v for k, v in values.items()}
    params |= {"w_id": thread_id, "w_seq": expected_seq}
    if lease is not None:
        params["w_lease"] = lease
    return bool(connection.execute(statement, params).rowcount == 1)


def mark_inbox(
    connection: Connection,
    thread_id: str,
    now: datetime,
    applied: int | None,
    done: int | None,
    error: str | None = None,
) -> None:
    """Mark the inbox item ``applied`` (it must be pending) and/or ``done``.

    With ``error``, the item ``done`` is marked ``failed`` with that reason instead.

    Raises:
        ConcurrentStepError: the item to apply was applied already.
    """
    params: dict[str, Any] = {"thread": thread_id}
    finished = {"now": now, "f_status": "failed" if error else "done", "f_error": error}
    if applied is not None:
        both = done == applied
        statement = _APPLY_AND_FINISH if both else _APPLY
        values = params | {"item": applied} | (finished if both else {})
        if connection.execute(statement, values).rowcount != 1:
            raise ConcurrentStepError(f"inbox item {applied} was already applied")
    if done is not None and done != applied:
        connection.execute(_FINISH, params | finished | {"item": done})
