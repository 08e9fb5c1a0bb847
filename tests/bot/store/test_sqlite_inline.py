"""SQLite: a transaction runs on the event loop when the database is free, in a thread when not."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.events import ConversationRef
from bot.store import Database, Store


async def test_an_uncontended_transaction_makes_no_thread_hop(
    sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(sqlite_database)
    hops: list[Any] = []
    real = asyncio.to_thread

    async def counted(*args: Any, **kwargs: Any) -> Any:
        hops.append(args[0])
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    thread_id = await store.open_thread(ConversationRef(channel="cli", thread_key="t"), title="x")
    assert (await store.load_thread(thread_id)).events == ()
    assert hops == []


async def test_a_writer_waits_off_the_loop_for_another_writers_lock(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.migrate()
    store = Store(database)
    try:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writing
        where = ConversationRef(channel="cli", thread_key="waits")
        opening = asyncio.create_task(store.open_thread(where, title="x"))
        ticks = 0
        while ticks < 20:  # the loop keeps running while the writer waits for the lock
            await asyncio.sleep(0)
            ticks += 1
        assert not opening.done()
        holder.execute("COMMIT")
        holder.close()
        thread_id = await asyncio.wait_for(opening, 30)
        assert (await store.load_thread(thread_id)).id == thread_id
    finally:
        await database.dispose()
