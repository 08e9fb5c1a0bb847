"""The store: threads and their append-only event logs, human requests, inbox and outbox."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from bot.errors import ConcurrentStepError, NotFoundError
from bot.events import (
    ApprovalGiven,
    ConversationRef,
    HumanRequested,
    RequestEscalated,
    StatusChanged,
    ThreadStatus,
    event_adapter,
    new_id,
    utcnow,
)
from bot.outbound import outbound_adapter
from bot.store._cards import CardStore, escalate_row
from bot.store._database import Database
from bot.store._queues import QueueStore, dump_event
from bot.store._records import Thread, ThreadSummary
from bot.store._requests import RequestStore, add_approval, request_values, resolve_request
from bot.store._runs import RunStore
from bot.store._tables import HumanRequestRow, InboxRow, OutboxRow, ThreadEventRow, ThreadRow

__all__ = ["Store"]


def _summary(row: ThreadRow | Row[Any]) -> ThreadSummary:
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


class _LogCache:
    """The most recently loaded event logs, so a step reads only the events it has not seen.

    Logs are append-only and events immutable, so a cached prefix never goes stale.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._logs: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self._lock = threading.Lock()  # SQLite loads run in worker threads

    def get(self, thread_id: str) -> tuple[Any, ...] | None:
        with self._lock:
            log = self._logs.get(thread_id)
            if log is not None:
                self._logs.move_to_end(thread_id)
            return log

    def put(self, thread_id: str, log: tuple[Any, ...]) -> None:
        with self._lock:
            self._logs[thread_id] = log
            self._logs.move_to_end(thread_id)
            while len(self._logs) > self._size:
                self._logs.popitem(last=False)


class Store(CardStore, QueueStore, RunStore, RequestStore):
    """Everything opsloop keeps, behind one async interface."""

    def __init__(self, database: Database) -> None:
        """Use ``database``."""
        super().__init__(database)
        self._logs = _LogCache(512)

    # ------------------------------------------------------------ threads

    async def open_thread(
        self, conversation: ConversationRef, *, title: str, agent: str | None = None
    ) -> str:
        """The id of the thread at ``conversation``, created (waiting) if there is none."""
        existing = await self.thread_id_for(conversation)
        if existing:
            return existing
        now = utcnow()
        row = ThreadRow(
            id=new_id("th"),
            channel=conversation.channel,
            tenant=conversation.tenant,
            room=conversation.room,
            thread_key=conversation.thread_key,
            agent=agent,
            status=ThreadStatus.WAITING.value,
            title=title[:200],
            last_seq=0,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self.db.session() as session:
                session.add(row)
        except IntegrityError:
            # Another process opened the same conversation first: use theirs.
            existing = await self.thread_id_for(conversation)
            if existing is None:
                raise
            return existing
        return row.id

    async def thread_id_for(self, conversation: ConversationRef) -> str | None:
        """The id of the thread at ``conversation``, if there is one."""
        async with self.db.session() as session:
            return await session.scalar(
                select(ThreadRow.id).where(
                    ThreadRow.channel == conversation.channel,
                    ThreadRow.tenant == conversation.tenant,
                    ThreadRow.room == conversation.room,
                    ThreadRow.thread_key == conversation.thread_key,
                )
            )

    async def load_thread(self, thread_id: str) -> Thread:
        """A thread with its whole event log.

        Raises:
            NotFoundError: there is no such thread.
        """
        if "\x00" in thread_id:
            raise NotFoundError(f"no thread {thread_id!r}")
        threads, events = ThreadRow.__table__, ThreadEventRow.__table__
        known = self._logs.get(thread_id)

        def load(connection: Connection) -> Thread:
            row = connection.execute(select(threads).where(threads.c.id == thread_id)).first()
            if row is None:
                raise NotFoundError(f"no thread {thread_id!r}")
            cached = known if known is not None and len(known) <= row.last_seq else ()
            payloads = connection.execute(
                select(events.c.payload)
                .where(events.c.thread_id == thread_id, events.c.seq > len(cached))
                .order_by(events.c.seq)
            ).scalars()
            log = (*cached, *(event_adapter.validate_python(p) for p in payloads))
            if len(log) == row.last_seq:
                self._logs.put(thread_id, log)
            return Thread(**_summary(row).model_dump(), events=log)

        return await self.db.run(load, write=False)

    async def list_threads(
        self, *, limit: int = 50, status: ThreadStatus | None = None
    ) -> list[ThreadSummary]:
        """The most recently updated threads first."""
        query = select(ThreadRow).order_by(ThreadRow.updated_at.desc()).limit(limit)
        if status is not None:
            query = query.where(ThreadRow.status == status.value)
        async with self.db.session() as session:
            return [_summary(row) for row in (await session.scalars(query)).all()]

    async def append(
        self,
        thread_id: str,
        *,
        expected_seq: int,
        events: Sequence[Any],
        outbound: Sequence[Any] = (),
        resolve: tuple[str, str, str | None, str | None] | None = None,
        inbox_item: int | None = None,
    ) -> int:
        """Append ``events`` and their ``outbound`` messages in one transaction.

        Args:
            thread_id: the thread.
            expected_seq: the last sequence number the caller saw; if another step has
                appended since, nothing is written and :class:`ConcurrentStepError` raised.
            events: thread events to append, in order.
            outbound: outbound messages to queue with them.
            resolve: ``(request_id, status, decided_by, comment)`` to mark a pending human
                request decided in the same transaction; if it is no longer pending,
                nothing is written and :class:`ConcurrentStepError` raised.
            inbox_item: the inbox item these events apply, marked ``applied`` in the same
                transaction so that a redelivered task never applies it twice.

        Returns:
            The new last sequence number.
        """
        now = utcnow()
        new_seq = expected_seq + len(events)
        values: dict[str, Any] = {"last_seq": new_seq, "updated_at": now}
        for event in events:
            if isinstance(event, StatusChanged):
                values["status"] = event.status.value
                if event.agent:
                    values["agent"] = event.agent

        def write(connection: Connection) -> None:
            fenced = connection.execute(
                update(ThreadRow)
                .where(ThreadRow.id == thread_id, ThreadRow.last_seq == expected_seq)
                .values(**values)
            )
            if fenced.rowcount != 1:
                raise ConcurrentStepError(f"thread {thread_id} moved past seq {expected_seq}")
            if resolve is not None:
                resolve_request(connection, now, *resolve)
            if inbox_item is not None:
                applied = connection.execute(
                    update(InboxRow)
                    .where(InboxRow.id == inbox_item, InboxRow.status == "pending")
                    .values(status="applied", thread_id=thread_id)
                )
                if applied.rowcount != 1:
                    raise ConcurrentStepError(f"inbox item {inbox_item} was already applied")
            if events:
                rows = [
                    {
                        "thread_id": thread_id,
                        "seq": expected_seq + offset,
                        "kind": event.kind,
                        "at": event.at,
                        "payload": dump_event(event),
                    }
                    for offset, event in enumerate(events, start=1)
                ]
                connection.execute(insert(ThreadEventRow), rows)
            requests = [
                request_values(thread_id, e) for e in events if isinstance(e, HumanRequested)
            ]
            if requests:
                connection.execute(insert(HumanRequestRow), requests)
            for event in events:
                if isinstance(event, RequestEscalated):
                    escalate_row(connection, event)
            for given in (e for e in events if isinstance(e, ApprovalGiven)):
                add_approval(connection, given)
            if outbound:
                messages = [
                    {
                        "thread_id": thread_id,
                        "seq": new_seq,
                        "channel": message.conversation.channel,
                        "payload": outbound_adapter.dump_python(message, mode="json"),
                        "status": "pending",
                        "attempts": 0,
                        "created_at": now,
                        "next_attempt_at": now,
                    }
                    for message in outbound
                ]
                connection.execute(insert(OutboxRow), messages)

        await self.db.run(write)
        return new_seq

    # ------------------------------------------------------------ leases

    async def acquire_lease(self, thread_id: str, owner: str, ttl: float) -> bool:
        """Take the thread's step lease for ``ttl`` seconds; ``False`` if someone holds it."""
        now = utcnow()
        async with self.db.session() as session:
            result = await session.execute(
                update(ThreadRow)
                .where(
                    ThreadRow.id == thread_id,
                    or_(
                        ThreadRow.lease_until.is_(None),
                        ThreadRow.lease_until < now,
                        ThreadRow.lease_owner == owner,
                    ),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=ttl))
            )
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def orphaned_threads(self, older_than: datetime) -> list[str]:
        """Running threads nobody holds, idle since before ``older_than`` (a worker died)."""
        now = utcnow()
        async with self.db.session() as session:
            rows = await session.scalars(
                select(ThreadRow.id).where(
                    ThreadRow.status == ThreadStatus.RUNNING.value,
                    ThreadRow.updated_at < older_than,
                    or_(ThreadRow.lease_until.is_(None), ThreadRow.lease_until < now),
                )
            )
            return list(rows.all())

    async def release_lease(self, thread_id: str, owner: str) -> None:
        """Give the lease back (only if ``owner`` still holds it)."""
        async with self.db.session() as session:
            await session.execute(
                update(ThreadRow)
                .where(ThreadRow.id == thread_id, ThreadRow.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )
