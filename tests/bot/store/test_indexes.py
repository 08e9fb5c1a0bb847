"""The list and sweep queries find their rows by an index, on SQLite and PostgreSQL.

Each query is captured as the store sends it, then explained by the same database, which
holds a few thousand paused threads. PostgreSQL has statistics on them, as autovacuum keeps,
and is told to avoid sequential scans, so it shows whether an index serves the query at all;
SQLite plans by the schema alone, as opsloop never runs ``ANALYZE`` on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from bot.events import ThreadStatus, utcnow
from bot.store import Database, Store, thread_page
from bot.store._pages import encode_cursor
from bot.store._tables import HumanRequestRow, InboxRow, OutboxRow, ThreadRow

NOW = utcnow()
PAUSED = 2000


async def fill(database: Database) -> None:
    """``PAUSED`` paused threads, each waiting on one approval, with the inbox item and the
    message that made each; on PostgreSQL, fresh statistics."""
    threads = [
        {
            "id": f"th_{n:05}",
            "channel": "cli",
            "tenant": "local",
            "room": "terminal",
            "thread_key": f"k{n}",
            "status": "paused",
            "title": "deploy",
            "last_seq": 5,
            "created_at": NOW - timedelta(seconds=n),
            "updated_at": NOW - timedelta(seconds=n),
        }
        for n in range(PAUSED)
    ]
    requests = [
        {
            "id": f"hr_{n:05}",
            "thread_id": f"th_{n:05}",
            "type": "approval",
            "tool": "deploy",
            "question": "ok?",
            "options": [],
            "approvers": ["role:oncall"],
            "four_eyes": True,
            "status": "pending",
            "created_at": NOW - timedelta(seconds=n),
            "expires_at": NOW + timedelta(hours=1),
            "next_escalation_at": None,
        }
        for n in range(PAUSED)
    ]
    done = [
        {
            "idempotency_key": f"k{n}",
            "kind": "message",
            "payload": {},
            "status": "done",
            "attempts": 1,
            "received_at": NOW - timedelta(seconds=n),
        }
        for n in range(PAUSED)
    ]
    sent = [
        {
            "thread_id": f"th_{n:05}",
            "seq": 5,
            "channel": "cli",
            "payload": {},
            "status": "sent",
            "attempts": 1,
            "created_at": NOW - timedelta(seconds=n),
            "next_attempt_at": NOW - timedelta(seconds=n),
        }
        for n in range(PAUSED)
    ]
    async with database.engine.begin() as conn:
        await conn.execute(insert(ThreadRow), threads)
        await conn.execute(insert(HumanRequestRow), requests)
        await conn.execute(insert(InboxRow), done)
        await conn.execute(insert(OutboxRow), sent)
        if database.engine.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE"))


@contextmanager
def captured(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT and UPDATE statements sent meanwhile, with their parameters."""
    sent: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            sent.append((statement, parameters))

    event.listen(database.engine.sync_engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", keep)


async def plan(database: Database, statement: str, parameters: Any) -> str:
    async with database.engine.connect() as conn:
        if database.engine.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(str(r[-1]) for r in rows)
        await conn.exec_driver_sql("SET enable_seqscan = off")
        rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(str(r[0]) for r in rows)


QUERIES: dict[str, tuple[Callable[[Store], Awaitable[Any]], str | tuple[str, ...]]] = {
    "a thread's pending requests": (
        lambda s: s.human_requests(thread_id="th_x"),
        "ix_human_requests_thread_status",
    ),
    "the pending requests of a page of threads": (
        lambda s: s.pending_kinds(["th_x", "th_y"]),
        "ix_human_requests_thread_status",
    ),
    "a page of pending requests": (
        lambda s: s.request_page(
            limit=50, cursor=encode_cursor("requests", NOW, "hr_x"), tool="deploy"
        ),
        "ix_human_requests_status_created",
    ),
    "overdue requests": (
        lambda s: s.human_requests(expired_by=NOW),
        "ix_human_requests_status_expiry",
    ),
    "escalations due": (
        lambda s: s.escalations_due(NOW),
        "ix_human_requests_status_escalation",
    ),
    "a page of threads": (
        lambda s: thread_page(s.db, limit=50, cursor=encode_cursor("threads", NOW, "th_x")),
        "ix_threads_updated",
    ),
    "a page of paused threads": (
        lambda s: thread_page(s.db, limit=50, status=ThreadStatus.PAUSED),
        # Every thread is paused here: reading the newest and skipping none is as good.
        ("ix_threads_status_updated", "ix_threads_updated"),
    ),
    "orphaned threads": (
        lambda s: s.orphaned_threads(NOW - timedelta(seconds=30)),
        "ix_threads_status_updated",
    ),
    "stale inbox items": (
        lambda s: s.stale_inbox(NOW - timedelta(seconds=30)),
        "ix_inbox_status_received",
    ),
    "stuck deliveries": (lambda s: s.release_stuck_outbound(), "ix_outbox_pending"),
    "threads with lost deliveries": (
        lambda s: s.threads_with_due_outbound(NOW),
        "ix_outbox_pending",
    ),
}


@pytest.mark.parametrize("what", list(QUERIES))
async def test_the_query_uses_its_index(database: Database, what: str) -> None:
    call, index = QUERIES[what]
    await fill(database)
    with captured(database) as sent:
        await call(Store(database))
    [(statement, parameters)] = sent
    explained = await plan(database, statement, parameters)
    indexes = (index,) if isinstance(index, str) else index
    assert any(i in explained for i in indexes), f"{what}: {statement}\n{explained}"
