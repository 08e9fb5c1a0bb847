"""Human requests: the rows behind approvals and questions, read and decided."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Row

from bot.errors import ConcurrentStepError, NotFoundError
from bot.events import ApprovalGiven, HumanRequested
from bot.policy import escalation_due
from bot.store._database import Database
from bot.store._pages import Page, check_limit, decode_cursor, encode_cursor
from bot.store._records import Approval, HumanRequest
from bot.store._tables import HumanRequestRow

__all__ = ["EXPIRY_BATCH", "RequestStore", "add_approval", "request_values", "resolve_request"]

EXPIRY_BATCH = 200
"""Overdue requests one sweep expires at most; a backlog drains over a few sweeps."""


def _request(row: HumanRequestRow | Row[Any]) -> HumanRequest:
    request = HumanRequested(
        request_id=row.id,
        type=row.type,
        tool=row.tool,
        arguments=row.arguments,
        call_id=row.call_id,
        question=row.question,
        options=tuple(row.options),
        approvers=tuple(row.approvers),
        requested_by=row.requested_by,
        requesters=tuple(row.requesters or ()),
        change_key=row.change_key,
        four_eyes=row.four_eyes,
        mode="all" if row.mode == "all" else "any",
        min_approvals=row.min_approvals,
        expires_at=row.expires_at,
        at=row.created_at,
        escalate_after=row.escalate_after,
        escalate_to=tuple(row.escalate_to or ()),
        notify=tuple(row.notify or ()),
    )
    return HumanRequest(
        thread_id=row.thread_id,
        request=request,
        status=row.status,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
        message_ref=row.message_ref,
        escalation_level=row.escalation_level or 0,
        escalated_to=tuple(row.escalated_to or ()),
        next_escalation_at=row.next_escalation_at,
        approvals=tuple(Approval.model_validate(a) for a in row.approvals or ()),
    )


class RequestStore:
    """Reading human requests and remembering where they were posted."""

    def __init__(self, database: Database) -> None:
        """Use ``database``."""
        self.db = database

    async def human_request(self, request_id: str) -> HumanRequest:
        """One human request.

        Raises:
            NotFoundError: there is no such request.
        """
        if "\x00" in request_id:
            raise NotFoundError(f"no human request {request_id!r}")
        async with self.db.session() as session:
            row = await session.get(HumanRequestRow, request_id)
        if row is None:
            raise NotFoundError(f"no human request {request_id!r}")
        return _request(row)

    async def human_requests(
        self,
        *,
        status: str | None = "pending",
        expired_by: datetime | None = None,
        thread_id: str | None = None,
        tool: str | None = None,
        type: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[HumanRequest]:
        """Human requests, oldest first (by creation, then id), each filter found by an index.

        Args:
            status: only those with this status; ``None`` for every status.
            expired_by: only those expiring before it, the longest overdue first; without a
                ``limit``, at most :data:`EXPIRY_BATCH` (a sweep expires the rest next time).
            thread_id: only this thread's.
            tool: only approvals of this tool.
            type: only ``approval`` or ``question``.
            after: only those after this (``created_at``, ``id``) in the order.
            limit: at most this many.
        """
        query = select(HumanRequestRow)
        if status is not None:
            query = query.where(HumanRequestRow.status == status)
        if expired_by is not None:  # in the order of the (status, expires_at) index
            query = query.where(HumanRequestRow.expires_at < expired_by)
            query = query.order_by(HumanRequestRow.expires_at, HumanRequestRow.id)
            limit = EXPIRY_BATCH if limit is None else limit
        else:
            query = query.order_by(HumanRequestRow.created_at, HumanRequestRow.id)
        if thread_id is not None:
            query = query.where(HumanRequestRow.thread_id == thread_id)
        if tool is not None:
            query = query.where(HumanRequestRow.tool == tool)
        if type is not None:
            query = query.where(HumanRequestRow.type == type)
        if after is not None:
            at, key = after
            query = query.where(
                HumanRequestRow.created_at >= at,
                or_(HumanRequestRow.created_at > at, HumanRequestRow.id > key),
            )
        if limit is not None:
            query = query.limit(limit)
        async with self.db.session() as session:
            return [_request(row) for row in (await session.scalars(query)).all()]

    async def request_page(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = "pending",
        thread_id: str | None = None,
        tool: str | None = None,
        type: str | None = None,
    ) -> Page[HumanRequest]:
        """One page of :meth:`human_requests`, after ``cursor`` (the previous page's next).

        Raises:
            BadInputError: a bad cursor or limit.
        """
        after = decode_cursor("requests", cursor) if cursor is not None else None
        found = await self.human_requests(
            status=status,
            thread_id=thread_id,
            tool=tool,
            type=type,
            after=after,
            limit=check_limit(limit) + 1,
        )
        if len(found) <= limit:
            return Page(found, None)
        last = found[limit - 1]
        return Page(found[:limit], encode_cursor("requests", last.request.at, last.id))

    async def pending_kinds(self, thread_ids: Sequence[str]) -> dict[str, list[str]]:
        """The types of the pending requests of each of ``thread_ids`` that has any."""
        if not thread_ids:
            return {}
        # Unordered, so the (thread_id, status) index serves it; a few rows to sort here.
        query = select(
            HumanRequestRow.thread_id,
            HumanRequestRow.type,
            HumanRequestRow.created_at,
            HumanRequestRow.id,
        ).where(
            HumanRequestRow.thread_id.in_(list(thread_ids)),
            HumanRequestRow.status == "pending",
        )
        kinds: dict[str, list[str]] = {}
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        for thread_id, kind, _at, _id in sorted(rows, key=lambda r: (r[2], r[3])):
            kinds.setdefault(thread_id, []).append(kind)
        return kinds

    async def set_message_ref(self, request_id: str, ref: dict[str, Any]) -> None:
        """Remember where a channel posted a request, so it can edit it later."""
        async with self.db.session() as session:
            await session.execute(
                update(HumanRequestRow)
                .where(HumanRequestRow.id == request_id)
                .values(message_ref=ref)
            )


def request_values(thread_id: str, event: HumanRequested) -> dict[str, Any]:
    return {
        "id": event.request_id,
        "thread_id": thread_id,
        "type": event.type,
        "tool": event.tool,
        "arguments": event.arguments,
        "call_id": event.call_id,
        "question": event.question,
        "options": list(event.options),
        "approvers": list(event.approvers),
        "requested_by": event.requested_by,
        "requesters": list(event.requesters),
        "change_key": event.change_key,
        "four_eyes": event.four_eyes,
        "mode": event.mode,
        "min_approvals": event.min_approvals,
        "status": "pending",
        "created_at": event.at,
        "expires_at": event.expires_at,
        "notify": list(event.notify),
        "escalate_after": event.escalate_after,
        "escalate_to": list(event.escalate_to),
        "escalation_level": 0,
        "escalated_to": [],
        "next_escalation_at": escalation_due(event, 0),
    }


def resolve_request(
    connection: Connection,
    now: datetime,
    request_id: str,
    status: str,
    by: str | None,
    note: str | None,
) -> None:
    decided = connection.execute(
        update(HumanRequestRow)
        .where(HumanRequestRow.id == request_id, HumanRequestRow.status == "pending")
        .values(status=status, decided_by=by, decided_at=now, comment=note, next_escalation_at=None)
    )
    if decided.rowcount != 1:
        raise ConcurrentStepError(f"human request {request_id} is no longer pending")


def add_approval(connection: Connection, given: ApprovalGiven) -> None:
    """Record a partial approval on its request, which must still be pending."""
    where = (HumanRequestRow.id == given.request_id, HumanRequestRow.status == "pending")
    approvals = connection.execute(select(HumanRequestRow.approvals).where(*where)).first()
    if approvals is None:
        raise ConcurrentStepError(f"human request {given.request_id} is no longer pending")
    approval = Approval(actor=given.actor, at=given.at, comment=given.comment)
    added = [*(approvals[0] or []), approval.model_dump(mode="json")]
    connection.execute(update(HumanRequestRow).where(*where).values(approvals=added))
