"""The worker jobs without a broker: delivery order and retries, sweeping, schedules."""

from __future__ import annotations

import uuid
from datetime import timedelta

from bot.events import (
    AgentReply,
    ConversationRef,
    Identity,
    MessageReceived,
    Reply,
    StatusChanged,
    ThreadStatus,
    UserMessage,
    utcnow,
)
from bot.model import ScriptedModel
from bot.model.offline import OfflineModel
from bot.outbound import OutboundReply
from bot.plugins import DeliveryRetryError
from tests.fakes import RecordingDispatcher
from workers import jobs

SLACK = ConversationRef(channel="slack", tenant="T1", room="C1", thread_key="1.2")


async def thread_with_replies(ops, texts: list[str]) -> str:
    thread_id = await ops.store.open_thread(SLACK, title="x")
    replies = [OutboundReply(conversation=SLACK, text=t, agent="a") for t in texts]
    await ops.store.append(
        thread_id, expected_seq=0, events=[AgentReply(text="x", agent="a")], outbound=replies
    )
    return thread_id


async def test_delivery_is_in_order_and_waits_as_the_platform_asks(sqlite_database, make_ops):
    ops = await make_ops(sqlite_database, ScriptedModel([]))
    thread_id = await thread_with_replies(ops, ["one", "two", "three"])
    sent: list[str] = []
    limited = {"two"}

    async def slack(item, context) -> None:
        if item.message.text in limited:
            limited.clear()
            raise DeliveryRetryError("rate limited", retry_after=7)
        sent.append(item.message.text)

    wait = await jobs.deliver_thread(ops, {"slack": slack}, thread_id)
    assert wait == 7
    assert sent == ["one"]  # "three" waits behind "two": the thread's order holds
    assert 0 < await jobs.deliver_thread(ops, {"slack": slack}, thread_id) <= 7
    assert sent == ["one"]  # "two" is not due yet, and "three" waits behind it
    await ops.store.mark_outbound(2, sent=False, retry_at=utcnow() - timedelta(seconds=1))
    assert await jobs.deliver_thread(ops, {"slack": slack}, thread_id) is None
    assert sent == ["one", "two", "three"]
    assert await ops.store.count_outbound("sent") == 3


async def test_a_failing_sender_is_retried_then_given_up(sqlite_database, make_ops, monkeypatch):
    ops = await make_ops(sqlite_database, ScriptedModel([]))
    thread_id = await thread_with_replies(ops, ["hello"])
    monkeypatch.setattr(jobs, "MAX_ATTEMPTS", 2)

    async def broken(item, context) -> None:
        raise ConnectionError("platform down")

    assert await jobs.deliver_thread(ops, {"slack": broken}, thread_id) is not None
    assert await ops.store.count_outbound("pending") == 1
    await ops.store.mark_outbound(1, sent=False, retry_at=utcnow() - timedelta(seconds=1))
    await jobs.deliver_thread(ops, {"slack": broken}, thread_id)
    assert await ops.store.count_outbound("failed") == 1


async def test_a_channel_without_sender_fails_its_messages(sqlite_database, make_ops):
    ops = await make_ops(sqlite_database, ScriptedModel([]))
    thread_id = await thread_with_replies(ops, ["hello"])
    await jobs.deliver_thread(ops, {}, thread_id)
    assert await ops.store.count_outbound("failed") == 1


async def test_sweep_requeues_lost_work_and_resumes_orphans(sqlite_database, make_ops, settings):
    ops = await make_ops(
        sqlite_database,
        ScriptedModel([Reply(text="resumed")]),
        settings_=settings.model_copy(update={"sweep_grace": 0}),
    )
    item = await ops.ingest(
        MessageReceived(
            idempotency_key=uuid.uuid4().hex,
            conversation=ConversationRef(channel="cli", thread_key="lost"),
            sender=Identity(channel="cli", user_id="dev-1"),
            text="hello",
        )
    )
    orphan = await ops.store.open_thread(ConversationRef(channel="cli", thread_key="o"), title="o")
    await ops.store.append(
        orphan,
        expected_seq=0,
        events=[
            UserMessage(sender=Identity(channel="cli", user_id="dev-1"), text="hi"),
            StatusChanged(status=ThreadStatus.RUNNING, agent="inspector"),
        ],
    )
    dispatcher = RecordingDispatcher()
    counts = await jobs.sweep(ops, dispatcher)
    assert counts is not None
    assert ("process", item.id) in dispatcher.calls
    assert ("resume", orphan) in dispatcher.calls
    assert counts["requeued"] == 1 and counts["resumed"] == 1
    thread = await ops.resume(orphan)
    assert thread.status == ThreadStatus.WAITING
    assert thread.events[-2].text == "resumed"


async def slack_item(ops) -> int:
    item = await ops.ingest(
        MessageReceived(
            idempotency_key=uuid.uuid4().hex,
            conversation=SLACK,
            sender=Identity(channel="slack", user_id="U1"),
            text="status of checkout in production",
        )
    )
    assert item is not None
    return item.id


async def test_process_item_sends_the_reply_itself(sqlite_database, make_ops):
    """One broker hop per reply: the task that made the reply delivers it; none is queued."""
    ops = await make_ops(sqlite_database, OfflineModel())
    item_id = await slack_item(ops)
    sent: list[str] = []

    async def slack(item, context) -> None:
        sent.append(item.message.text)

    dispatcher = RecordingDispatcher()
    await jobs.process_item(ops, dispatcher, item_id, {"slack": slack})
    assert (await ops.store.inbox_item(item_id)).status == "done"
    assert len(sent) == 1 and "checkout" in sent[0]
    assert await ops.store.count_outbound("sent") == 1
    assert dispatcher.calls == []


async def test_a_reply_that_must_wait_is_handed_to_the_delivery_queue(sqlite_database, make_ops):
    ops = await make_ops(sqlite_database, OfflineModel())
    item_id = await slack_item(ops)

    async def limited(item, context) -> None:
        raise DeliveryRetryError("rate limited", retry_after=7)

    dispatcher = RecordingDispatcher()
    await jobs.process_item(ops, dispatcher, item_id, {"slack": limited})
    thread_id = (await ops.store.inbox_item(item_id)).thread_id
    assert dispatcher.calls == [("deliver", thread_id)]
    assert dispatcher.countdowns == [7]
    [pending] = await ops.store.pending_outbound(thread_id=thread_id, due_only=False)
    assert pending.attempts == 1


async def test_a_failure_to_deliver_inline_hands_the_thread_to_the_queue(
    sqlite_database, make_ops, monkeypatch
):
    """The item is processed and committed: a store error while delivering must not fail the
    task, and the queued delivery tries again."""
    ops = await make_ops(sqlite_database, OfflineModel())
    item_id = await slack_item(ops)
    sent: list[str] = []

    async def broken(*_, **__) -> None:
        raise ConnectionError("database went away")

    async def slack(item, context) -> None:
        sent.append(item.message.text)

    monkeypatch.setattr(ops.store, "sent_then_next", broken)
    dispatcher = RecordingDispatcher()
    await jobs.process_item(ops, dispatcher, item_id, {"slack": slack})
    thread_id = (await ops.store.inbox_item(item_id)).thread_id
    assert len(sent) == 1  # sent, but not marked: delivery is at least once
    assert dispatcher.calls == [("deliver", thread_id)]
    assert dispatcher.countdowns[0] is not None and dispatcher.countdowns[0] > 0


async def test_process_item_without_senders_queues_the_delivery(sqlite_database, make_ops):
    ops = await make_ops(sqlite_database, OfflineModel())
    item_id = await slack_item(ops)
    dispatcher = RecordingDispatcher()
    await jobs.process_item(ops, dispatcher, item_id)
    processed = await ops.store.inbox_item(item_id)
    assert processed.status == "done"
    assert dispatcher.calls == [("deliver", processed.thread_id)]
    assert dispatcher.countdowns == [None]
    assert await ops.store.count_outbound("pending") == 1


async def test_two_workers_on_one_thread_keep_its_order(sqlite_database, make_ops):
    """A reply committed while another worker sends an earlier one waits for it, and that
    worker sends it next: never ahead of the earlier one, never left behind."""
    ops = await make_ops(sqlite_database, ScriptedModel([]))
    thread_id = await thread_with_replies(ops, ["one"])
    sent: list[str] = []
    second_worker: list[float | None] = []

    async def slack(item, context) -> None:
        if item.message.text == "one":  # meanwhile another worker commits and delivers "two"
            await ops.store.append(
                thread_id,
                expected_seq=1,
                events=[AgentReply(text="two", agent="a")],
                outbound=[OutboundReply(conversation=SLACK, text="two", agent="a")],
            )
            second_worker.append(await jobs.deliver_thread(ops, {"slack": slack}, thread_id))
            assert sent == []
        sent.append(item.message.text)

    assert await jobs.deliver_thread(ops, {"slack": slack}, thread_id) is None
    assert second_worker == [None]
    assert sent == ["one", "two"]
    assert await ops.store.count_outbound("sent") == 2


async def test_a_schedule_fires_once_per_slot(sqlite_database, make_ops):
    ops = await make_ops(sqlite_database, ScriptedModel([]))
    dispatcher = RecordingDispatcher()
    first = await jobs.fire_schedule(
        ops, dispatcher, "morning", "what is running?", None, "2026-11-21T08:00"
    )
    again = await jobs.fire_schedule(
        ops, dispatcher, "morning", "what is running?", None, "2026-11-21T08:00"
    )
    later = await jobs.fire_schedule(
        ops, dispatcher, "morning", "what is running?", None, "2026-11-22T08:00"
    )
    assert first is not None and again is None and later not in (None, first)
    assert dispatcher.calls == [("process", first), ("process", later)]
    item = await ops.store.inbox_item(first)
    assert item.event.source == "schedule:morning"


async def test_a_sweep_steps_aside_while_another_runs(database, make_ops):
    """Regression: after a broker outage, the sweeps queued meanwhile all ran at once,
    each re-enqueueing the same backlog. Now one runs; the others step aside."""
    ops = await make_ops(database, OfflineModel())
    await ops.ingest(
        MessageReceived(
            idempotency_key="lost",
            conversation=SLACK,
            sender=Identity(channel="slack", user_id="U1"),
            text="status of checkout in production",
            received_at=utcnow() - timedelta(hours=1),
        )
    )
    dispatcher = RecordingDispatcher()
    assert await ops.store.try_lock(jobs.SWEEP_LOCK, "another-worker", 60)
    assert await jobs.sweep(ops, dispatcher) is None
    assert dispatcher.calls == []
    await ops.store.unlock(jobs.SWEEP_LOCK, "another-worker")
    counts = await jobs.sweep(ops, dispatcher)
    assert counts is not None and counts["requeued"] == 1
    # Released after it ran: the next sweep may take it.
    assert await ops.store.try_lock(jobs.SWEEP_LOCK, "another-worker", 60)


def test_a_sweep_not_started_within_its_interval_is_dropped(settings):
    from workers.celery_app import broker_settings

    sweep = broker_settings(settings)["beat_schedule"]["sweep"]
    assert sweep["options"]["expires"] == settings.sweep_interval


async def test_a_sweep_lock_whose_holder_died_lapses(database, make_ops):
    """A worker killed mid-sweep leaves the lock taken; it lapses, and sweeping goes on."""
    ops = await make_ops(database, OfflineModel())
    assert await ops.store.try_lock(jobs.SWEEP_LOCK, "killed-worker", -1)  # lapsed already
    assert await ops.store.try_lock(jobs.SWEEP_LOCK, "someone", 60)  # taken over
    await ops.store.unlock(jobs.SWEEP_LOCK, "someone")
    assert await ops.store.try_lock(jobs.SWEEP_LOCK, "killed-worker", -1)
    counts = await jobs.sweep(ops, RecordingDispatcher())
    assert counts is not None
