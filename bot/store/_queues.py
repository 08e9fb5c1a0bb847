"""The inbox (inbound events, deduplicated) and the outbox (messages to deliver)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from bot.errors import NotFoundError
from bot.events import event_adapter, utcnow
from bot.outbound import outbound_adapter
from bot.store._database import Database
from bot.store._records import InboxItem, OutboxItem
from bot.store._statements import SENDING_HOLD
from bot.store._tables import InboxRow, LockRow, OutboxRow

__all__ = ["QueueStore", "dump_event"]

_UNSENT = (
    select(OutboxRow)
    .where(OutboxRow.thread_id == bindparam("thread"), OutboxRow.status.in_(("pending", "sending")))
    .order_by(OutboxRow.id)
    .limit(bindparam("limit"))
)
_SENT = (
    update(OutboxRow)
    .where(OutboxRow.id == bindparam("item"))
    .values(status="sent", sent_at=bindparam("now"), last_error=None)
)


def dump_event(value: Any) -> dict[str, Any]:
    """An event as JSON-ready data, for a JSON column."""
    dumped: dict[str, Any] = event_adapter.dump_python(value, mode="json")
    return dumped


class QueueStore:
    """Inbox and outbox bookkeeping."""

    def __init__(self, database: Database) -> None:
        """Use ``database``."""
        self.db = database

    # ------------------------------------------------------------ inbox

    async def inbox_item(self, item_id: int) -> InboxItem:
        """One inbox item.

        Raises:
            NotFoundError: there is no such item.
        """
        async with self.db.session() as session:
            row = await session.get(InboxRow, item_id)
        if row is None:
            raise NotFoundError(f"no inbox item {item_id}")
        return _inbox(row)

    async def inbox_item_by_key(self, idempotency_key: str) -> InboxItem:
        """The inbox item stored under ``idempotency_key``.

        Raises:
            NotFoundError: there is none.
        """
        async with self.db.session() as session:
            row = await session.scalar(
                select(InboxRow).where(InboxRow.idempotency_key == idempotency_key)
            )
        if row is None:
            raise NotFoundError(f"no inbox item with key {idempotency_key!r}")
        return _inbox(row)

    async def finish_inbox(
        self, item_id: int, *, thread_id: str | None, error: str | None = None
    ) -> None:
        """Mark an inbox item processed (``done``) or ``failed`` with its reason."""
        async with self.db.session() as session:
            await session.execute(
                update(InboxRow)
                .where(InboxRow.id == item_id)
                .values(
                    status="failed" if error else "done",
                    thread_id=thread_id,
                    error=error,
                    processed_at=utcnow(),
                )
            )

    async def begin_attempt(self, item_id: int) -> int:
        """Count one more try at processing an inbox item; the count including this one."""
        async with self.db.session() as session:
            await session.execute(
                update(InboxRow)
                .where(InboxRow.id == item_id)
                .values(attempts=InboxRow.attempts + 1)
            )
            attempts = await session.scalar(select(InboxRow.attempts).where(InboxRow.id == item_id))
        return int(attempts or 0)

    async def note_inbox_error(self, item_id: int, error: str) -> None:
        """Keep why the last try at an unfinished inbox item failed (it will be tried again)."""
        async with self.db.session() as session:
            await session.execute(
                update(InboxRow).where(InboxRow.id == item_id).values(error=error)
            )

    async def stale_inbox(self, older_than: datetime, limit: int | None = None) -> list[int]:
        """Ids of unfinished inbox items received before ``older_than`` (lost work).

        Oldest first, ``limit`` at most (``None``: all of them).
        """
        async with self.db.session() as session:
            return list(
                (
                    await session.scalars(
                        select(InboxRow.id)
                        .where(
                            InboxRow.status.in_(("pending", "applied")),
                            InboxRow.received_at < older_than,
                        )
                        .order_by(InboxRow.id)
                        .limit(limit)
                    )
                ).all()
            )

    # ------------------------------------------------------------ locks

    async def try_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take the named lock for ``ttl`` seconds; ``False`` while someone else holds it."""
        now = utcnow()
        until = now + timedelta(seconds=ttl)
        try:
            async with self.db.session() as session:
                taken = await session.execute(
                    update(LockRow)
                    .where(LockRow.name == name, or_(LockRow.until < now, LockRow.owner == owner))
                    .values(owner=owner, until=until)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    return True
                if await session.get(LockRow, name) is not None:
                    return False
                session.add(LockRow(name=name, owner=owner, until=until))
        except IntegrityError:  # another process made the row first: theirs
            return False
        return True

    async def unlock(self, name: str, owner: str) -> None:
        """Give the named lock back (only if ``owner`` still holds it)."""
        async with self.db.session() as session:
            await session.execute(
                delete(LockRow).where(LockRow.name == name, LockRow.owner == owner)
            )

    # ------------------------------------------------------------ outbox

    async def pending_outbound(
        self,
        *,
        channel: str | None = None,
        thread_id: str | None = None,
        limit: int = 100,
        due_only: bool = True,
    ) -> list[OutboxItem]:
        """Messages waiting for delivery, oldest first (only those due, unless ``due_only``)."""
        query = select(OutboxRow).where(OutboxRow.status == "pending")
        query = query.order_by(OutboxRow.id).limit(limit)
        if due_only:
            query = query.where(OutboxRow.next_attempt_at <= utcnow())
        if channel is not None:
            query = query.where(OutboxRow.channel == channel)
        if thread_id is not None:
            query = query.where(OutboxRow.thread_id == thread_id)
        rows = await self.db.run(lambda c: c.execute(query).all(), write=False)
        return [_outbox(row) for row in rows]

    async def unsent_outbound(self, thread_id: str, *, limit: int = 100) -> list[OutboxItem]:
        """A thread's messages still to send or being sent, oldest first.

        Its delivery looks with this after every reply: a prebuilt statement, one trip.
        """
        params = {"thread": thread_id, "limit": limit}
        rows = await self.db.run(lambda c: c.execute(_UNSENT, params).all(), write=False)
        return [_outbox(row) for row in rows]

    async def sent_then_next(
        self, item_id: int, thread_id: str, *, limit: int = 100
    ) -> list[OutboxItem]:
        """Mark a message sent; its thread's messages still to send (or sending) after it.

        One transaction: delivering a thread, it is how the deliverer looks again.
        """
        now = utcnow()

        def write(connection: Connection) -> list[OutboxItem]:
            connection.execute(_SENT, {"item": item_id, "now": now})
            unsent = connection.execute(_UNSENT, {"thread": thread_id, "limit": limit})
            return [_outbox(row) for row in unsent.all()]

        return await self.db.run(write)

    async def unclaim_outbound(self, item_ids: Sequence[int]) -> None:
        """Give back messages claimed for delivery and not tried: pending and due again."""
        if not item_ids:
            return
        unclaim = (
            update(OutboxRow)
            .where(OutboxRow.id.in_(item_ids), OutboxRow.status == "sending")
            .values(status="pending", attempts=OutboxRow.attempts - 1, next_attempt_at=utcnow())
        )
        await self.db.run(lambda c: c.execute(unclaim))

    async def claim_outbound(
        self, item_id: int, *, hold_seconds: float = SENDING_HOLD.total_seconds()
    ) -> bool:
        """Take a due message for delivery; ``False`` if it is not pending or not due.

        A claimed message is ``sending``; if its sender dies, :meth:`release_stuck_outbound`
        makes it pending again after ``hold_seconds`` (delivery is at least once).
        """
        now = utcnow()
        claim = (
            update(OutboxRow)
            .where(
                OutboxRow.id == item_id,
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
            )
            .values(
                status="sending",
                attempts=OutboxRow.attempts + 1,
                next_attempt_at=now + timedelta(seconds=hold_seconds),
            )
        )
        return await self.db.run(lambda c: c.execute(claim).rowcount == 1)

    async def mark_outbound(
        self,
        item_id: int,
        *,
        sent: bool,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record a delivery attempt: sent, failed for good, or pending again at ``retry_at``."""
        values: dict[str, Any] = {"last_error": error}
        if sent:
            values |= {"status": "sent", "sent_at": utcnow()}
        elif retry_at is not None:
            values |= {"status": "pending", "next_attempt_at": retry_at}
        else:
            values |= {"status": "failed"}
        mark = update(OutboxRow).where(OutboxRow.id == item_id).values(**values)
        await self.db.run(lambda c: c.execute(mark))

    async def release_stuck_outbound(self) -> int:
        """Make messages whose sender vanished mid-delivery pending again."""
        async with self.db.session() as session:
            released = await session.execute(
                update(OutboxRow)
                .where(OutboxRow.status == "sending", OutboxRow.next_attempt_at < utcnow())
                .values(status="pending")
            )
            return int(released.rowcount)  # type: ignore[attr-defined]

    async def threads_with_due_outbound(self, older_than: datetime) -> list[str]:
        """Threads with a message due since before ``older_than`` (its delivery was lost)."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(OutboxRow.thread_id)
                .where(OutboxRow.status == "pending", OutboxRow.next_attempt_at < older_than)
                .distinct()
            )
            return list(rows.all())

    async def mark_thread_delivered(self, thread_id: str, *, channel: str) -> int:
        """Mark every pending message of one thread on ``channel`` sent (in-process channels)."""
        async with self.db.session() as session:
            result = await session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.thread_id == thread_id,
                    OutboxRow.channel == channel,
                    OutboxRow.status == "pending",
                )
                .values(status="sent", sent_at=utcnow(), attempts=OutboxRow.attempts + 1)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def count_outbound(self, status: str = "pending") -> int:
        """How many outbound messages have ``status``."""
        async with self.db.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status == status)
            )
        return int(count or 0)


def _inbox(row: InboxRow | Row[Any]) -> InboxItem:
    return InboxItem(
        id=row.id,
        idempotency_key=row.idempotency_key,
        event=event_adapter.validate_python(row.payload),
        status=row.status,
        thread_id=row.thread_id,
        error=row.error,
        received_at=row.received_at,
        attempts=row.attempts,
    )


def _outbox(row: OutboxRow | Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        thread_id=row.thread_id,
        message=outbound_adapter.validate_python(row.payload),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
    )
