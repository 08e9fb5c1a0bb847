"""The store against real SQLite and PostgreSQL: ordering, fences, dedupe, leases, outbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from bot.errors import ConcurrentStepError, ConfigError, NotFoundError
from bot.events import (
    AgentReply,
    ConversationRef,
    HumanRequested,
    Identity,
    MessageReceived,
    StatusChanged,
    ThreadStatus,
    UserMessage,
    utcnow,
)
from bot.outbound import OutboundReply
from bot.plugins import load_plugins
from bot.store import Database, Store
from bot.store._tables import Base

DEV = Identity(channel="cli", user_id="dev-1")


def conversation(key: str = "t") -> ConversationRef:
    return ConversationRef(channel="cli", tenant="local", room="terminal", thread_key=key)


def request_event(request_id: str = "hr_1") -> HumanRequested:
    return HumanRequested(
        request_id=request_id,
        type="approval",
        tool="deploy",
        arguments={"service": "checkout"},
        call_id="call_1",
        question="ok?",
        approvers=("role:oncall",),
        requested_by="cli:dev-1",
        four_eyes=True,
        expires_at=utcnow() + timedelta(hours=1),
    )


async def test_migrations_match_the_models(database: Database) -> None:
    # The core's tables and the ones plugins keep in the same database.
    expected = MetaData()
    for metadata in [Base.metadata, *(p.tables for p in load_plugins() if p.tables is not None)]:
        for table in metadata.tables.values():
            table.to_metadata(expected)

    def diff(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, expected)

    async with database.engine.connect() as connection:
        assert await connection.run_sync(diff) == []
    assert await database.current_revision() == database.head_revision()


async def test_unmigrated_postgres_style_database_says_what_to_run(tmp_path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(ConfigError, match="run `opsloop migrate` first"):
        await database.ensure_schema(auto_migrate=False)
    await database.ensure_schema(auto_migrate=True)
    assert await database.current_revision() == database.head_revision()
    await database.dispose()


async def test_events_round_trip_in_order(database: Database) -> None:
    store = Store(database)
    thread_id = await store.open_thread(conversation(), title="hello")
    events = [
        UserMessage(sender=DEV, text="hello"),
        StatusChanged(status=ThreadStatus.RUNNING, agent="inspector"),
        AgentReply(text="hi", agent="inspector"),
        StatusChanged(status=ThreadStatus.WAITING),
    ]
    assert await store.append(thread_id, expected_seq=0, events=events[:2]) == 2
    assert await store.append(thread_id, expected_seq=2, events=events[2:]) == 4
    thread = await store.load_thread(thread_id)
    assert thread.events == tuple(events)
    assert (thread.status, thread.agent, thread.last_seq) == (ThreadStatus.WAITING, "inspector", 4)
    assert thread.created_at.tzinfo is not None
    assert [t.id for t in await store.list_threads(status=ThreadStatus.WAITING)] == [thread_id]


async def test_a_stale_step_cannot_append(database: Database) -> None:
    store = Store(database)
    thread_id = await store.open_thread(conversation(), title="x")
    await store.append(thread_id, expected_seq=0, events=[UserMessage(sender=DEV, text="a")])
    with pytest.raises(ConcurrentStepError):
        await store.append(
            thread_id,
            expected_seq=0,
            events=[UserMessage(sender=DEV, text="b")],
            outbound=[OutboundReply(conversation=conversation(), text="b", agent="x")],
        )
    thread = await store.load_thread(thread_id)
    assert [e.text for e in thread.events] == ["a"]
    assert await store.count_outbound() == 0


async def test_concurrent_steps_one_wins(database: Database) -> None:
    store = Store(database)
    thread_id = await store.open_thread(conversation(), title="x")
    results = await asyncio.gather(
        *(
            store.append(thread_id, expected_seq=0, events=[UserMessage(sender=DEV, text=str(i))])
            for i in range(5)
        ),
        return_exceptions=True,
    )
    assert sum(r == 1 for r in results) == 1
    assert all(isinstance(r, ConcurrentStepError) for r in results if r != 1)
    assert (await store.load_thread(thread_id)).last_seq == 1


async def test_one_thread_per_conversation_even_when_racing(database: Database) -> None:
    store = Store(database)
    ids = await asyncio.gather(*(store.open_thread(conversation("c"), title="x") for _ in range(5)))
    assert len(set(ids)) == 1
    other = await store.open_thread(conversation("d"), title="y")
    assert other not in ids


async def test_inbox_dedupes_on_the_idempotency_key(database: Database) -> None:
    store = Store(database)
    event = MessageReceived(
        idempotency_key=f"slack:T1:{uuid.uuid4()}",
        conversation=conversation(),
        sender=DEV,
        text="hi",
    )
    items = await asyncio.gather(*(store.ingest(event) for _ in range(5)))
    stored = [i for i in items if i is not None]
    assert len(stored) == 1
    assert stored[0].event == event
    old = utcnow() + timedelta(seconds=1)
    assert await store.stale_inbox(old) == [stored[0].id]
    await store.finish_inbox(stored[0].id, thread_id=None, error="broken")
    item = await store.inbox_item(stored[0].id)
    assert (item.status, item.error) == ("failed", "broken")
    assert await store.stale_inbox(old) == []


async def test_a_request_is_decided_once(database: Database) -> None:
    store = Store(database)
    thread_id = await store.open_thread(conversation(), title="x")
    await store.append(thread_id, expected_seq=0, events=[request_event()])
    await store.append(
        thread_id,
        expected_seq=1,
        events=[StatusChanged(status=ThreadStatus.RUNNING)],
        resolve=("hr_1", "approved", "cli:oncall-1", None),
    )
    with pytest.raises(ConcurrentStepError, match="no longer pending"):
        await store.append(
            thread_id,
            expected_seq=2,
            events=[StatusChanged(status=ThreadStatus.RUNNING)],
            resolve=("hr_1", "rejected", "cli:oncall-2", "no"),
        )
    request = await store.human_request("hr_1")
    assert (request.status, request.decided_by) == ("approved", "cli:oncall-1")
    assert (await store.load_thread(thread_id)).last_seq == 2
    with pytest.raises(NotFoundError):
        await store.human_request("hr_missing")


async def test_leases_exclude_others_until_released_or_expired(database: Database) -> None:
    store = Store(database)
    thread_id = await store.open_thread(conversation(), title="x")
    assert await store.acquire_lease(thread_id, "a", 60)
    assert not await store.acquire_lease(thread_id, "b", 60)
    assert await store.acquire_lease(thread_id, "a", 60)  # the holder may extend
    await store.release_lease(thread_id, "b")  # not the holder: no effect
    assert not await store.acquire_lease(thread_id, "b", 60)
    await store.release_lease(thread_id, "a")
    assert await store.acquire_lease(thread_id, "b", -1)  # already expired
    assert await store.acquire_lease(thread_id, "c", 60)


async def test_outbox_delivery_bookkeeping(database: Database) -> None:
    store = Store(database)
    thread_id = await store.open_thread(conversation(), title="x")
    replies = [OutboundReply(conversation=conversation(), text=t, agent="a") for t in ("1", "2")]
    await store.append(
        thread_id, expected_seq=0, events=[AgentReply(text="1", agent="a")], outbound=replies
    )
    first, second = await store.pending_outbound(channel="cli")
    assert (first.message, second.message) == tuple(replies)
    await store.mark_outbound(first.id, sent=True)
    await store.mark_outbound(
        second.id, sent=False, error="429", retry_at=utcnow() + timedelta(hours=1)
    )
    assert await store.pending_outbound() == []
    assert await store.count_outbound("sent") == 1
    assert await store.count_outbound("pending") == 1
    await store.mark_outbound(second.id, sent=False, error="gone")
    assert await store.count_outbound("failed") == 1


async def test_a_refused_event_is_stored_failed_in_one_write(database: Database) -> None:
    store = Store(database)
    event = MessageReceived(
        idempotency_key=f"email:{uuid.uuid4()}", conversation=conversation(), sender=DEV, text="x"
    )
    item = await store.ingest(event, refused="sender not authenticated")
    assert item is not None
    stored = await store.inbox_item(item.id)
    assert (stored.status, stored.error) == ("failed", "sender not authenticated")
    assert await store.stale_inbox(utcnow() + timedelta(seconds=1)) == []  # never swept
    assert await store.ingest(event) is None  # and still a duplicate afterwards


async def test_a_reload_reads_only_new_events_and_sees_every_one(database: Database) -> None:
    store = Store(database)
    other = Store(database)  # another process appending to the same thread
    thread_id = await store.open_thread(conversation(), title="x")
    await store.append(thread_id, expected_seq=0, events=[UserMessage(sender=DEV, text="1")])
    assert [e.text for e in (await store.load_thread(thread_id)).events] == ["1"]
    await other.append(thread_id, expected_seq=1, events=[UserMessage(sender=DEV, text="2")])
    await other.append(thread_id, expected_seq=2, events=[UserMessage(sender=DEV, text="3")])
    thread = await store.load_thread(thread_id)
    assert [e.text for e in thread.events] == ["1", "2", "3"]
    assert thread.last_seq == 3
    assert thread.events == (await other.load_thread(thread_id)).events
