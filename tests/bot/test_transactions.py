"""A turn costs a few transactions, and folding its bookkeeping in keeps every guarantee.

The counts are of transactions begun on the database (every engine opsloop holds), from
the inbound event's ingest to the end of its processing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, update

from bot.errors import ConcurrentStepError
from bot.events import CallTool, HumanDecision, Identity, Reply, ThreadStatus
from bot.model import FunctionModel, ModelRequest, ScriptedModel
from bot.store import Database
from bot.store._tables import InboxRow, ThreadRow
from tests.fakes import action_event, message_event

DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")
DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)


@contextmanager
def counting(database: Database) -> Iterator[list[str]]:
    """Every transaction begun on ``database`` while inside, by engine."""
    begun: list[str] = []
    engines = database.sync_engines

    def began(connection: Any) -> None:
        begun.append(str(connection.engine.url))

    for engine in engines:
        event.listen(engine, "begin", began)
    try:
        yield begun
    finally:
        for engine in engines:
            event.remove(engine, "begin", began)


async def lease_of(database: Database, thread_id: str) -> str | None:
    async with database.transaction(write=False) as connection:
        return await connection.scalar(
            select(ThreadRow.lease_owner).where(ThreadRow.id == thread_id)
        )


async def test_a_hello_turn_is_three_transactions(database: Database, make_ops) -> None:
    """Ingest; take the item, the lease and the log; commit the message, the reply, the
    item's state and the lease's release together."""
    ops = await make_ops(database, FunctionModel(lambda _: Reply(text="hello")))
    with counting(database) as begun:
        outcome = await ops.submit(message_event("hello", sender=DEV))
    assert len(begun) == 3, begun
    assert outcome.thread.status == ThreadStatus.WAITING
    assert [e.kind for e in outcome.new_events] == [
        "user_message",
        "status",
        "model_call",
        "agent_reply",
        "status",
    ]
    assert (await ops.store.inbox_item(outcome.item.id)).status == "done"
    assert await lease_of(database, outcome.thread.id) is None


async def test_an_ask_that_pauses_for_approval_is_three_transactions(
    database: Database, make_ops
) -> None:
    ops = await make_ops(database, ScriptedModel([DEPLOY, Reply(text="deployed")]))
    with counting(database) as begun:
        outcome = await ops.submit(message_event("deploy checkout 1.4.2 to production", sender=DEV))
    assert len(begun) == 3, begun
    assert outcome.thread.status == ThreadStatus.PAUSED
    [pending] = await ops.store.human_requests(status="pending")
    assert pending.thread_id == outcome.thread.id

    # The approval: ingest, claim, the decision (committed before the tool runs), the
    # tool's run claimed (deploy must never run twice), its result, the reply with the
    # item done and the lease given back.
    with counting(database) as begun:
        approved = await ops.submit(action_event(pending.id, HumanDecision.APPROVE, ONCALL))
    assert len(begun) == 6, begun
    assert approved.thread.status == ThreadStatus.WAITING
    assert (await ops.store.human_request(pending.id)).status == "approved"
    assert await lease_of(database, outcome.thread.id) is None


async def test_a_message_to_a_paused_thread_is_three_transactions(
    database: Database, make_ops
) -> None:
    ops = await make_ops(database, ScriptedModel([DEPLOY]))
    ask = message_event("deploy checkout 1.4.2 to production", sender=DEV, thread="t1")
    first = await ops.submit(ask)
    with counting(database) as begun:
        outcome = await ops.submit(message_event("any news?", sender=DEV, thread="t1"))
    assert len(begun) == 3, begun
    assert outcome.thread.id == first.thread.id
    assert outcome.thread.status == ThreadStatus.PAUSED
    assert [e.kind for e in outcome.new_events] == ["user_message"]
    assert (await ops.store.inbox_item(outcome.item.id)).status == "done"


async def test_a_worker_whose_lease_was_taken_over_commits_nothing(
    database: Database, make_ops
) -> None:
    """The lease fences every commit: a worker that outlived its lease (and another took
    the thread) finds out at its commit, and the item is left for a retry."""
    asked, answer = asyncio.Event(), asyncio.Event()

    async def slow(request: ModelRequest) -> Reply:
        asked.set()
        await answer.wait()
        return Reply(text="hello")

    ops = await make_ops(database, FunctionModel(slow))
    item = await ops.ingest(message_event("hello", sender=DEV))
    assert item is not None and item.thread_id is not None
    work = asyncio.create_task(ops.process(item.id))
    await asyncio.wait_for(asked.wait(), 10)
    async with database.transaction() as connection:
        await connection.execute(
            update(ThreadRow).where(ThreadRow.id == item.thread_id).values(lease_owner="other")
        )
    answer.set()
    with pytest.raises(ConcurrentStepError, match="lease"):
        await asyncio.wait_for(work, 10)
    assert (await ops.store.load_thread(item.thread_id)).events == ()
    assert (await ops.store.inbox_item(item.id)).status == "pending"
    assert await lease_of(database, item.thread_id) == "other"  # not released by the loser


async def test_ingest_opens_the_thread_and_the_item_knows_it(database: Database, make_ops) -> None:
    ops = await make_ops(database, FunctionModel(lambda _: Reply(text="hello")))
    item = await ops.ingest(message_event("hello", sender=DEV, thread="t9"))
    assert item is not None and item.thread_id is not None
    again = await ops.ingest(message_event("hello again", sender=DEV, thread="t9"))
    assert again is not None and again.thread_id == item.thread_id
    async with database.transaction(write=False) as connection:
        stored = await connection.scalar(select(InboxRow.thread_id).where(InboxRow.id == item.id))
    assert stored == item.thread_id
    thread = await ops.store.load_thread(item.thread_id)
    assert thread.status == ThreadStatus.WAITING and thread.events == ()


async def test_a_refused_decision_is_recorded_and_its_item_failed_in_one_commit(
    database: Database, make_ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed right after recording a refusal leaves the item failed with why, not
    half-way ("applied"), where whoever waits on the item would take it as accepted."""
    ops = await make_ops(database, ScriptedModel([DEPLOY]))
    await ops.submit(message_event("deploy checkout 1.4.2 to production", sender=DEV))
    [pending] = await ops.store.human_requests(status="pending")

    async def killed(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("worker killed")

    # Killed at the next thing it does after the refusal's commit: giving the lease back.
    monkeypatch.setattr(ops.store, "release_lease", killed)
    item = await ops.ingest(action_event(pending.id, HumanDecision.APPROVE, DEV))
    assert item is not None
    with counting(database) as begun, pytest.raises(RuntimeError, match="killed"):
        await ops.process(item.id)
    assert len(begun) == 2, begun  # the claim; the refusal with the item failed
    stored = await ops.store.inbox_item(item.id)
    assert stored.status == "failed"
    assert stored.error is not None and "may not decide" in stored.error
    thread = await ops.store.load_thread(pending.thread_id)
    assert thread.events[-1].kind == "decision_refused"
    assert (await ops.store.human_request(pending.id)).status == "pending"
