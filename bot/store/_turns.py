"""A turn's reads in one transaction: the inbox item, the thread's lease, its log, its request.

A worker processing an inbound event needs all of these before the model is asked
anything. :func:`claim_turn` takes them in one write transaction (the lease and the try
count are the writes), so that with the ingest before it and the append after it a plain
turn costs three transactions in all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection, Row

from bot.errors import NotFoundError
from bot.events import (
    ActionReceived,
    ConversationRef,
    MessageReceived,
    ThreadStatus,
    TriggerFired,
    event_adapter,
    new_id,
)
from bot.store._queues import _inbox as inbox_item_of
from bot.store._queues import dump_event
from bot.store._records import HumanRequest, InboxItem, Thread, ThreadSummary
from bot.store._requests import _request as request_of
from bot.store._statements import INSERT_INBOX, INSERT_THREAD
from bot.store._tables import HumanRequestRow, InboxRow, ThreadEventRow, ThreadRow

__all__ = [
    "Claim",
    "LogCache",
    "claim_turn",
    "read_thread",
    "store_inbound",
    "summary_of",
    "thread_values",
]

_threads = ThreadRow.__table__
_events = ThreadEventRow.__table__
_inbox = InboxRow.__table__
_requests = HumanRequestRow.__table__

# Built once: each is compiled once and found by its cache key on every call after.
_THREAD = select(_threads).where(_threads.c.id == bindparam("id"))
_LOG = (
    select(_events.c.payload)
    .where(_events.c.thread_id == bindparam("id"), _events.c.seq > bindparam("after"))
    .order_by(_events.c.seq)
)
_ITEM = select(_inbox).where(_inbox.c.id == bindparam("id"))
_KEY = select(_inbox.c.id).where(_inbox.c.idempotency_key == bindparam("key"))
_AT = select(_threads.c.id).where(
    _threads.c.channel == bindparam("channel"),
    _threads.c.tenant == bindparam("tenant"),
    _threads.c.room == bindparam("room"),
    _threads.c.thread_key == bindparam("thread_key"),
)
_THREAD_OF_REQUEST = select(_requests.c.thread_id).where(_requests.c.id == bindparam("id"))
_REQUEST = select(_requests).where(_requests.c.id == bindparam("id"))
_TAKE_LEASE = (
    update(ThreadRow)
    .where(
        ThreadRow.id == bindparam("thread"),
        or_(
            ThreadRow.lease_until.is_(None),
            ThreadRow.lease_until < bindparam("now"),
            ThreadRow.lease_owner == bindparam("owner"),
        ),
    )
    .values(lease_owner=bindparam("owner"), lease_until=bindparam("until"))
    .returning(*_threads.c)
)
_COUNT_TRY = (  # a try at an item with work left, counted, and the item read
    update(InboxRow)
    .where(InboxRow.id == bindparam("item"), InboxRow.status.in_(("pending", "applied")))
    .values(attempts=InboxRow.attempts + 1)
    .returning(*_inbox.c)
)
_UNCOUNT_TRY = (
    update(InboxRow).where(InboxRow.id == bindparam("item")).values(attempts=InboxRow.attempts - 1)
)


def summary_of(row: ThreadRow | Row[Any]) -> ThreadSummary:
    """A thread's summary from its row."""
    return ThreadSummary(
        id=row.id,
        conversation=ConversationRef(
            channel=row.channel, tenant=row.tenant, room=row.room, thread_key=row.thread_key
        ),
        agent=row.agent,
        status=ThreadStatus(row.status),
        title=row.title,
        last_seq=row.last_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def thread_values(conversation: ConversationRef, title: str, at: datetime) -> dict[str, Any]:
    """A new (waiting) thread's row at ``conversation``."""
    return {
        "id": new_id("th"),
        "channel": conversation.channel,
        "tenant": conversation.tenant,
        "room": conversation.room,
        "thread_key": conversation.thread_key,
        "agent": None,
        "status": ThreadStatus.WAITING.value,
        "title": title[:200],
        "last_seq": 0,
        "created_at": at,
        "updated_at": at,
    }


class LogCache:
    """The most recently seen event logs, so a step reads only the events it has not seen.

    Logs are append-only and events immutable, so a cached prefix never goes stale. The
    process that appends events keeps them here too: they are never read back and
    validated again by the process that wrote them.
    """

    def __init__(self, size: int) -> None:
        """Keep at most ``size`` logs, the least recently used dropped first."""
        self._size = size
        self._logs: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._lock = threading.Lock()  # SQLite transactions run in worker threads

    def get(self, thread_id: str) -> tuple[Any, ...] | None:
        """The cached log of ``thread_id``, if any."""
        with self._lock:
            log = self._logs.get(thread_id)
            if log is not None:
                self._logs.move_to_end(thread_id)
            return log

    def put(self, thread_id: str, log: tuple[Any, ...]) -> None:
        """Remember ``log`` as the whole log of ``thread_id``."""
        with self._lock:
            self._logs[thread_id] = log
            self._logs.move_to_end(thread_id)
            while len(self._logs) > self._size:
                self._logs.popitem(last=False)

    def extend(self, thread_id: str, expected: int, events: tuple[Any, ...]) -> None:
        """Add appended ``events`` to a cached log that was ``expected`` long; else nothing."""
        with self._lock:
            log = self._logs.get(thread_id)
            if log is not None and len(log) == expected:
                self._logs[thread_id] = (*log, *events)
                self._logs.move_to_end(thread_id)


def read_thread(
    connection: Connection, thread_id: str, cache: LogCache, row: Row[Any] | None = None
) -> Thread:
    """A thread with its whole log, reading only the events ``cache`` does not hold.

    ``row`` is the thread's row, if the caller has just read it.

    Raises:
        NotFoundError: there is no such thread.
    """
    row = row or connection.execute(_THREAD, {"id": thread_id}).first()
    if row is None:
        raise NotFoundError(f"no thread {thread_id!r}")
    known = cache.get(thread_id) or ()
    cached = known if len(known) <= row.last_seq else ()
    if len(cached) < row.last_seq:
        payloads = connection.execute(_LOG, {"id": thread_id, "after": len(cached)}).scalars()
        log = (*cached, *(event_adapter.validate_python(p) for p in payloads))
    else:
        log = cached
    if len(log) == row.last_seq:
        cache.put(thread_id, log)
    return Thread(**summary_of(row).model_dump(), events=log)


@dataclass(frozen=True)
class Claim:
    """What a worker took to process one inbox item."""

    item: InboxItem
    """The item as it was before this try."""
    thread: Thread | None = None
    """Its thread, its lease now held; ``None`` when busy, finished or not yet known."""
    attempt: int = 0
    """This try's number (counted only once the lease is held)."""
    request: HumanRequest | None = None
    """The human request a decision answers."""
    busy: bool = False
    """Another worker holds the thread's lease; nothing was changed."""


def claim_turn(
    connection: Connection,
    item_id: int,
    owner: str,
    ttl: float,
    now: datetime,
    cache: LogCache,
    thread_id: str | None = None,
) -> Claim:
    """Read an inbox item and, if it has work left, take its thread's lease and read it.

    Raises:
        NotFoundError: there is no such item (or no such thread).
    """
    # The try is counted first, reading the item in the same statement, and taken back if
    # there is no lease to be had. (The item's row is locked before the thread's, as the
    # turn's commits lock them: two transactions never wait on each other in a circle.)
    row = connection.execute(_COUNT_TRY, {"item": item_id}).first()
    if row is None:  # finished, or unknown
        row = connection.execute(_ITEM, {"id": item_id}).first()
        if row is None:
            raise NotFoundError(f"no inbox item {item_id}")
        return Claim(item=inbox_item_of(row))
    item = inbox_item_of(row)
    item = item.model_copy(update={"attempts": item.attempts - 1})  # as it was before
    thread_id = item.thread_id or thread_id
    if thread_id is None:  # its thread is still to be found
        connection.execute(_UNCOUNT_TRY, {"item": item_id})
        return Claim(item=item)
    until = now + timedelta(seconds=ttl)
    lease = {"thread": thread_id, "now": now, "owner": owner, "until": until}
    taken = connection.execute(_TAKE_LEASE, lease).first()
    if taken is None:
        connection.execute(_UNCOUNT_TRY, {"item": item_id})
        if connection.execute(_THREAD, {"id": thread_id}).first() is None:
            raise NotFoundError(f"no thread {thread_id!r}")
        return Claim(item=item, busy=True)
    thread = read_thread(connection, thread_id, cache, taken)
    request = None
    if isinstance(item.event, ActionReceived):
        found = connection.execute(_REQUEST, {"id": item.event.request_id}).first()
        request = request_of(found) if found is not None else None
    return Claim(item=item, thread=thread, attempt=item.attempts + 1, request=request)


def store_inbound(
    connection: Connection,
    event: Any,
    now: datetime,
    *,
    refused: str | None = None,
    thread_id: str | None = None,
    look_first: bool = False,
) -> InboxItem | None:
    """Store an inbound event and find (or open) its thread; ``None`` for a duplicate.

    A message opens its conversation's thread here, and a decision finds its request's,
    so the worker that processes the item knows its thread without another transaction.
    A duplicate's insert fails on the key's unique index; ``look_first`` (for the try
    after such a failure) looks for it before writing anything.
    """
    if look_first and connection.execute(_KEY, {"key": event.idempotency_key}).first():
        return None
    if thread_id is None and refused is None:
        thread_id = _thread_of(connection, event, now)
    values = {
        "idempotency_key": event.idempotency_key,
        "kind": event.kind,
        "payload": dump_event(event),
        "status": "failed" if refused else "pending",
        "attempts": 0,
        "received_at": event.received_at,
        "error": refused,
        "thread_id": thread_id,
        "processed_at": now if refused else None,
    }
    key = connection.execute(INSERT_INBOX, values).inserted_primary_key
    assert key is not None
    return InboxItem(
        id=int(key[0]),
        idempotency_key=event.idempotency_key,
        event=event,
        status=values["status"],
        thread_id=thread_id,
        error=refused,
        received_at=event.received_at,
    )


def _thread_of(connection: Connection, event: Any, now: datetime) -> str | None:
    if isinstance(event, ActionReceived):
        return connection.execute(_THREAD_OF_REQUEST, {"id": event.request_id}).scalar()
    if not isinstance(event, MessageReceived | TriggerFired):
        return None
    where = event.conversation
    found = connection.execute(
        _AT,
        {
            "channel": where.channel,
            "tenant": where.tenant,
            "room": where.room,
            "thread_key": where.thread_key,
        },
    ).scalar()
    if found is not None:
        return str(found)
    row = thread_values(where, event.text[:120], now)
    connection.execute(INSERT_THREAD, row)
    return str(row["id"])
