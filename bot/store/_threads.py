"""The thread list, a keyset page at a time (see :mod:`bot.store._pages`)."""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from bot.events import ThreadStatus
from bot.store._database import Database
from bot.store._pages import Page, check_limit, decode_cursor, encode_cursor
from bot.store._records import ThreadSummary
from bot.store._tables import ThreadRow
from bot.store._turns import summary_of as _summary

__all__ = ["thread_page"]


async def thread_page(
    db: Database,
    *,
    limit: int = 50,
    status: ThreadStatus | None = None,
    cursor: str | None = None,
) -> Page[ThreadSummary]:
    """Threads, most recently updated first, ``limit`` at most, after ``cursor``.

    A thread updated while someone walks the pages moves to the front: it may show twice or
    not at all in that walk, as in any list ordered by activity.

    Raises:
        BadInputError: a bad cursor or limit.
    """
    check_limit(limit)
    query = (
        select(ThreadRow)
        .order_by(ThreadRow.updated_at.desc(), ThreadRow.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(ThreadRow.status == status.value)
    if cursor is not None:
        at, key = decode_cursor("threads", cursor)
        query = query.where(
            ThreadRow.updated_at <= at,
            or_(ThreadRow.updated_at < at, and_(ThreadRow.updated_at == at, ThreadRow.id < key)),
        )
    async with db.session() as session:
        rows = (await session.scalars(query)).all()
    found = [_summary(row) for row in rows[:limit]]
    more = len(rows) > limit
    last = found[-1] if found and more else None
    return Page(found, encode_cursor("threads", last.updated_at, last.id) if last else None)
