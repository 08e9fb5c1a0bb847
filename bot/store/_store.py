"""The store: threads and their append-only event logs, human requests, inbox and outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.errors import ConcurrentStepError, NotFoundError
from bot.events import (
    ApprovalGiven,
    ConversationRef,
    HumanRequested,
    RequestEscalated,
    StatusChanged,
    ThreadStatus,
    utcnow,
)
from bot.store._cards import CardStore, escalate_row
from bot.store._database import Database
from bot.store._queues import QueueStore, dump_event
from bot.store._records import InboxItem, OutboxItem, Thread, ThreadSummary
from bot.store._requests import RequestStore, add_approval, request_values, resolve_request
from bot.store._runs import RunStore
from bot.store._statements import (
    INSERT_EVENTS,
    INSERT_REQUESTS,
    fence,
    insert_outbox,
    mark_inbox,
)
from bot.store._tables import ThreadRow
from bot.store._turns import (
    Claim,
    LogCache,
    claim_turn,
    read_thread,
    store_inbound,
    summary_of,
    thread_values,
)

__all__ = ["Store"]


class Store(CardStore, QueueStore, RunStore, RequestStore):
    """Everything opsloop keeps, behind one async interface."""

    def __init__(self, database: Database) -> None:
        """Use ``database``."""
        super().__init__(database)
        self._logs = LogCache(512)

    # ------------------------------------------------------------ inbox

    async def ingest(
        self, event: Any, *, refused: str | None = None, thread_id: str | None = None
    ) -> InboxItem | None:
        """Store an inbound event; ``None`` when its idempotency key was seen before.

        A message's thread is opened (a decision's found) in the same transaction.

        Args:
            event: the inbound event.
            refused: store it as ``failed`` with this reason at once (a channel refused it:
                forged sender, malformed mail…), so no crash can leave it looking pending.
            thread_id: the thread the event concerns, if the caller knows it.
        """

        def store(connection: Connection, look_first: bool) -> InboxItem | None:
            return store_inbound(
                connection,
                event,
                utcnow(),
                refused=refused,
                thread_id=thread_id,
                look_first=look_first,
            )

        try:
            return await self.db.run(lambda c: store(c, False))
        except IntegrityError:
            # A duplicate, or another process opened the same thread first: look again.
            return await self.db.run(lambda c: store(c, True))

    # ------------------------------------------------------------ threads

    async def open_thread(
        self, conversation: ConversationRef, *, title: str, agent: str | None = None
    ) -> str:
        """The id of the thread at ``conversation``, created (waiting) if there is none."""
        existing = await self.thread_id_for(conversation)
        if existing:
            return existing
        row = thread_values(conversation, title, utcnow()) | {"agent": agent}
        try:
            await self.db.run(lambda c: c.execute(insert(ThreadRow), row))
        except IntegrityError:
            # Another process opened the same conversation first: use theirs.
            existing = await self.thread_id_for(conversation)
            if existing is None:
                raise
            return existing
        return str(row["id"])

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
        return await self.db.run(lambda c: read_thread(c, thread_id, self._logs), write=False)

    async def claim(
        self, item_id: int, owner: str, ttl: float, *, thread_id: str | None = None
    ) -> Claim:
        """Read an inbox item and, if it has work left, take its thread's lease and read it.

        One transaction: the item, the lease (for ``ttl`` seconds, unless someone else holds
        it), the try count, the thread's log and, for a decision, its request. ``thread_id``
        names the thread for an item that does not know its own yet.

        Raises:
            NotFoundError: there is no such item, or no such thread.
        """
        return await self.db.run(
            lambda c: claim_turn(c, item_id, owner, ttl, utcnow(), self._logs, thread_id)
        )

    async def list_threads(
        self, *, limit: int = 50, status: ThreadStatus | None = None
    ) -> list[ThreadSummary]:
        """The most recently updated threads first."""
        query = select(ThreadRow).order_by(ThreadRow.updated_at.desc()).limit(limit)
        if status is not None:
            query = query.where(ThreadRow.status == status.value)
        async with self.db.session() as session:
            return [summary_of(row) for row in (await session.scalars(query)).all()]

    async def append(
        self,
        thread_id: str,
        *,
        expected_seq: int,
        events: Sequence[Any],
        outbound: Sequence[Any] = (),
        resolve: tuple[str, str, str | None, str | None] | None = None,
        inbox_item: int | None = None,
        done_item: int | None = None,
        failed: str | None = None,
        lease: str | None = None,
        release: bool = False,
        claim: list[OutboxItem] | None = None,
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
            done_item: the inbox item whose processing these events finish, marked ``done``
                in the same transaction (with ``inbox_item`` too when they are its first).
            failed: why ``done_item`` was refused: it is marked ``failed`` instead.
            lease: the owner of the thread's lease: unless it still holds it, nothing is
                written and :class:`ConcurrentStepError` raised.
            release: give the lease back in the same transaction (the turn is over).
            claim: for a caller that sends the ``outbound`` messages itself right after:
                filled with them, claimed for delivery in the same transaction, unless an
                earlier message of the thread is still to be sent (then left empty).

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
        if lease is not None and release:
            values |= {"lease_owner": None, "lease_until": None}

        claimed: list[OutboxItem] = []

        def write(connection: Connection) -> None:
            # The item's row before the thread's, as a worker's claim locks them.
            mark_inbox(connection, thread_id, now, inbox_item, done_item, failed)
            if not fence(connection, thread_id, expected_seq, lease, values):
                raise ConcurrentStepError(
                    f"thread {thread_id} moved past seq {expected_seq}"
                    + (f" or its lease is no longer {lease}'s" if lease else "")
                )
            if resolve is not None:
                resolve_request(connection, now, *resolve)
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
                connection.execute(INSERT_EVENTS, rows)
            requests = [
                request_values(thread_id, e) for e in events if isinstance(e, HumanRequested)
            ]
            if requests:
                connection.execute(INSERT_REQUESTS, requests)
            for event in events:
                if isinstance(event, RequestEscalated):
                    escalate_row(connection, event)
            for given in (e for e in events if isinstance(e, ApprovalGiven)):
                add_approval(connection, given)
            if outbound:
                claimed[:] = insert_outbox(
                    connection, thread_id, new_seq, now, outbound, claim is not None
                )

        await self.db.run(write)
        self._logs.extend(thread_id, expected_seq, tuple(events))
        if claim is not None:
            claim[:] = claimed
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

    async def renew_lease(self, thread_id: str, owner: str, ttl: float) -> bool:
        """Extend the lease ``owner`` holds; ``False`` (and nothing done) if it holds none."""
        until = utcnow() + timedelta(seconds=ttl)

        def renew(connection: Connection) -> bool:
            renewed = connection.execute(
                update(ThreadRow)
                .where(ThreadRow.id == thread_id, ThreadRow.lease_owner == owner)
                .values(lease_until=until)
            )
            return bool(renewed.rowcount == 1)

        return await self.db.run(renew)

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
