"""Where requests were posted besides their thread, and which are due to escalate.

A request's own card in its thread is kept on its row (``message_ref``); every other card
(a ``notify`` room, an escalation step's direct messages) is one row here, so a decision
can update them all. :func:`escalate_row` keeps the row's escalation state in step with the
thread's :class:`~bot.events.RequestEscalated` events, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.errors import ConcurrentStepError
from bot.events import RequestEscalated, utcnow
from bot.store._database import Database
from bot.store._tables import HumanRequestRow, RequestMessageRow

__all__ = ["CardStore", "escalate_row"]


class CardStore:
    """Request cards posted elsewhere than the thread, and due escalations."""

    db: Database

    async def add_message_ref(self, request_id: str, place: str, ref: dict[str, Any]) -> bool:
        """Remember a card posted at ``place``; ``False`` if one is recorded there already."""
        row = {"request_id": request_id, "place": place, "ref": ref, "created_at": utcnow()}
        try:
            async with self.db.session() as session:
                session.add(RequestMessageRow(**row))
        except IntegrityError:
            return False
        return True

    async def message_refs(self, request_id: str, place: str | None = None) -> list[dict[str, Any]]:
        """The cards recorded for ``request_id`` (at ``place`` only, if given), oldest first."""
        query = select(RequestMessageRow.ref).where(RequestMessageRow.request_id == request_id)
        if place is not None:
            query = query.where(RequestMessageRow.place == place)
        async with self.db.session() as session:
            rows = await session.scalars(query.order_by(RequestMessageRow.id))
            return [dict(ref) for ref in rows.all()]

    async def escalations_due(self, now: datetime) -> list[str]:
        """Pending requests whose next escalation step is due by ``now``, oldest first."""
        query = (
            select(HumanRequestRow.id)
            .where(
                HumanRequestRow.status == "pending",
                HumanRequestRow.next_escalation_at <= now,
                HumanRequestRow.expires_at > now,
            )
            .order_by(HumanRequestRow.next_escalation_at)
        )
        async with self.db.session() as session:
            return list((await session.scalars(query)).all())


def escalate_row(connection: Connection, event: RequestEscalated) -> None:
    """Record an escalation step on the request's row; it must be the next, once.

    Raises:
        ConcurrentStepError: the request was decided, or this step was taken already.
    """
    row = connection.execute(
        select(HumanRequestRow.escalated_to).where(
            HumanRequestRow.id == event.request_id,
            HumanRequestRow.status == "pending",
            HumanRequestRow.escalation_level == event.level - 1,
        )
    ).first()
    moved = None
    if row is not None:
        widened = list(dict.fromkeys([*(row.escalated_to or ()), *event.to]))
        moved = connection.execute(
            update(HumanRequestRow)
            .where(
                HumanRequestRow.id == event.request_id,
                HumanRequestRow.status == "pending",
                HumanRequestRow.escalation_level == event.level - 1,
            )
            .values(
                escalation_level=event.level,
                escalated_to=widened,
                next_escalation_at=event.next_at,
            )
        )
    if moved is None or moved.rowcount != 1:
        raise ConcurrentStepError(
            f"request {event.request_id} is no longer pending at escalation level {event.level - 1}"
        )
