"""The hot path's statements, built once.

A statement built per call costs more than running it on SQLite: constructing the
expression and generating its cache key. These are built once (or once per shape) with
bound parameters, so each call only binds values to an already compiled statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Update, bindparam, case, insert, select, update
from sqlalchemy.engine import Connection

from bot.errors import ConcurrentStepError
from bot.outbound import outbound_adapter
from bot.store._records import OutboxItem
from bot.store._tables import HumanRequestRow, InboxRow, OutboxRow, ThreadEventRow, ThreadRow

__all__ = [
    "INSERT_EVENTS",
    "INSERT_INBOX",
    "INSERT_OUTBOX",
    "INSERT_REQUESTS",
    "INSERT_THREAD",
    "SENDING_HOLD",
    "fence",
    "fence_statement",
    "insert_outbox",
    "mark_inbox",
]

INSERT_EVENTS = insert(ThreadEventRow)
INSERT_INBOX = insert(InboxRow)
INSERT_THREAD = insert(ThreadRow)
INSERT_OUTBOX = insert(OutboxRow)
INSERT_REQUESTS = insert(HumanRequestRow)
_INSERT_CLAIMED = insert(OutboxRow).returning(OutboxRow.id, sort_by_parameter_order=True)


def _claiming_insert() -> Any:
    """Insert one message, claimed (``sending``) unless the thread has one still unsent."""
    table = OutboxRow.__table__
    unsent = (
        select(OutboxRow.id)
        .where(
            OutboxRow.thread_id == bindparam("thread_id", type_=table.c.thread_id.type),
            OutboxRow.status.in_(("pending", "sending")),
        )
        .exists()
    )
    busy = select(unsent.label("busy")).subquery()
    names = ("thread_id", "seq", "channel", "payload", "created_at")
    values = [bindparam(name, type_=table.c[name].type) for name in names]
    due = bindparam("next_attempt_at", type_=table.c.next_attempt_at.type)
    held = bindparam("held", type_=table.c.next_attempt_at.type)
    row = select(
        *values,
        case((busy.c.busy, "pending"), else_="sending"),
        case((busy.c.busy, 0), else_=1),
        case((busy.c.busy, due), else_=held),
    )
    columns = [*names, "status", "attempts", "next_attempt_at"]
    return insert(OutboxRow).from_select(columns, row).returning(OutboxRow.id, OutboxRow.status)


_INSERT_CLAIMING = _claiming_insert()

SENDING_HOLD = timedelta(seconds=120)
"""How long a message claimed for delivery stays claimed: if its sender dies, it is
pending again after this (delivery is at least once)."""

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


def insert_outbox(
    connection: Connection,
    thread_id: str,
    seq: int,
    now: datetime,
    outbound: Sequence[Any],
    claim: bool,
) -> list[OutboxItem]:
    """Queue ``outbound`` messages for delivery; with ``claim``, already claimed if it may.

    A message may be claimed by whoever commits it only when no earlier message of the
    thread is still to be sent: a thread's messages go out in order. Claimed, they are
    ``sending`` (one attempt, held for :data:`SENDING_HOLD`) and returned, for the caller to
    send right after the commit.
    """
    held = now + SENDING_HOLD
    rows = [
        {
            "thread_id": thread_id,
            "seq": seq,
            "channel": message.conversation.channel,
            "payload": outbound_adapter.dump_python(message, mode="json"),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for message in outbound
    ]
    if not claim:
        connection.execute(INSERT_OUTBOX, rows)
        return []
    # The first decides, in the same statement, whether they may be claimed.
    first = connection.execute(_INSERT_CLAIMING, rows[0] | {"held": held}).one()
    if first.status != "sending":
        if rows[1:]:
            connection.execute(INSERT_OUTBOX, rows[1:])
        return []
    claimed = {"status": "sending", "attempts": 1, "next_attempt_at": held}
    ids = [first.id]
    if rows[1:]:
        ids += connection.execute(_INSERT_CLAIMED, [r | claimed for r in rows[1:]]).scalars().all()
    return [
        OutboxItem(id=id_, thread_id=thread_id, message=message, **claimed)
        for id_, message in zip(ids, outbound, strict=True)
    ]
