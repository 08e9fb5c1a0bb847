"""PostgreSQL without a ping per transaction: a connection the server dropped is replaced."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import event

from bot.events import ConversationRef
from bot.store import Database, Store
from tests.conftest import PG_URL


def drop_connections(database_name: str) -> int:
    """Have the server close every connection to ``database_name``, as a restart would."""
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database_name,),
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize("blocking", [False, True], ids=["async-driver", "blocking-driver"])
async def test_a_transaction_on_a_dropped_connection_is_tried_again(
    postgres_url: str, blocking: bool
) -> None:
    database = Database(postgres_url)
    if blocking:  # as a worker runs it
        database.use_blocking_driver()
    store = Store(database)
    try:
        where = ConversationRef(channel="cli", thread_key="dropped")
        thread_id = await store.open_thread(where, title="hello")
        assert (await store.load_thread(thread_id)).events == ()  # the pool holds a connection
        assert drop_connections(postgres_url.rsplit("/", 1)[1]) >= 1
        # Every hot-path transaction survives: a read, and a write.
        assert (await store.load_thread(thread_id)).id == thread_id
        assert drop_connections(postgres_url.rsplit("/", 1)[1]) >= 1
        assert await store.renew_lease(thread_id, "nobody", 30) is False
    finally:
        await database.dispose()


async def test_a_dropped_connection_is_not_pinged_for(postgres_url: str) -> None:
    """No round trip before each transaction: the engine is built without pre-ping."""
    database = Database(postgres_url)
    database.use_blocking_driver()
    try:
        for engine in database.sync_engines:
            assert engine.pool._pre_ping is False  # type: ignore[attr-defined]
        assert len(database.sync_engines) == 2
    finally:
        await database.dispose()


async def test_a_worker_runs_the_hot_path_on_the_blocking_driver(postgres_url: str) -> None:
    database = Database(postgres_url)
    database.use_blocking_driver()
    store = Store(database)
    begun: list[str] = []
    async_engine, blocking = database.sync_engines
    event.listen(async_engine, "begin", lambda _: begun.append("async"))
    event.listen(blocking, "begin", lambda _: begun.append("blocking"))
    try:
        thread_id = await store.open_thread(
            ConversationRef(channel="cli", thread_key="b"), title="b"
        )
        begun.clear()
        assert (await store.load_thread(thread_id)).id == thread_id
        assert begun == ["blocking"]
    finally:
        await database.dispose()


@pytest.fixture(autouse=True)
def _postgres_only(postgres_url: str) -> None:
    """Requested so these tests skip (or, under CI, fail) with the reason when PG is down."""
