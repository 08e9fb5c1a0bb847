"""Reading human requests by index: per thread, per page of threads, overdue in batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from bot.events import ConversationRef, utcnow
from bot.store import Database, Store
from bot.store._tables import HumanRequestRow

NOW = utcnow()


async def add(store: Store, thread_id: str, request_id: str, kind: str, **values: object) -> None:
    row = {
        "id": request_id,
        "thread_id": thread_id,
        "type": kind,
        "tool": "deploy" if kind == "approval" else None,
        "question": "ok?",
        "options": [],
        "approvers": ["role:oncall"],
        "four_eyes": False,
        "status": "pending",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=1),
        **values,
    }
    async with store.db.session() as session:
        await session.execute(insert(HumanRequestRow), [row])


@pytest.fixture
async def store(database: Database) -> Store:
    store = Store(database)
    for key in ("a", "b", "c"):
        where = ConversationRef(channel="cli", tenant="local", room="terminal", thread_key=key)
        await store.open_thread(where, title=key)
    return store


async def threads(store: Store) -> list[str]:
    return sorted(t.id for t in await store.list_threads())


async def test_a_threads_requests_and_those_of_a_page_of_threads(store: Store) -> None:
    a, b, c = await threads(store)
    await add(store, a, "hr_1", "approval", created_at=NOW - timedelta(minutes=2))
    await add(store, b, "hr_2", "question")
    await add(store, a, "hr_3", "question", created_at=NOW - timedelta(minutes=1))
    await add(store, a, "hr_4", "approval", status="approved")
    assert [r.id for r in await store.human_requests(thread_id=a)] == ["hr_1", "hr_3"]
    assert [r.id for r in await store.human_requests(thread_id=a, status=None)] == [
        "hr_1",
        "hr_3",
        "hr_4",
    ]
    assert [r.id for r in await store.human_requests(thread_id=c)] == []
    assert await store.pending_kinds([a, c]) == {a: ["approval", "question"]}
    assert await store.pending_kinds([b]) == {b: ["question"]}
    assert await store.pending_kinds([]) == {}


async def test_overdue_requests_come_in_batches_longest_overdue_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.store._requests.EXPIRY_BATCH", 2)
    a, b, _ = await threads(store)
    await add(store, a, "hr_1", "approval", expires_at=NOW - timedelta(minutes=1))
    await add(store, b, "hr_2", "approval", expires_at=NOW - timedelta(minutes=3))
    await add(store, b, "hr_3", "approval", expires_at=NOW - timedelta(minutes=2))
    await add(store, a, "hr_4", "approval", expires_at=NOW + timedelta(minutes=1))
    assert [r.id for r in await store.human_requests(expired_by=NOW)] == ["hr_2", "hr_3"]
    overdue = await store.human_requests(expired_by=NOW, limit=10)
    assert [r.id for r in overdue] == ["hr_2", "hr_3", "hr_1"]
