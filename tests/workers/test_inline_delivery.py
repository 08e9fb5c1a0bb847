"""A reply is claimed for delivery by the commit that makes it, and sent by that worker.

The worker that commits a turn's last step sends its messages right after. Claiming them
in that commit saves the deliverer a look and a claim; these tests prove it keeps what
delivery promised: a thread's messages go in order, none is lost to a worker that dies,
and one claimed but not tried is free again at once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from bot.events import AgentReply, Reply, utcnow
from bot.model import FunctionModel
from bot.model.offline import OfflineModel
from bot.outbound import OutboundReply
from bot.plugins import DeliveryRetryError
from bot.store._tables import OutboxRow
from tests.bot.test_transactions import counting
from tests.fakes import RecordingDispatcher
from tests.workers.test_jobs import SLACK, slack_item
from workers import jobs


def reply(text: str) -> OutboundReply:
    return OutboundReply(conversation=SLACK, text=text, agent="a")


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def __call__(self, item, context) -> None:
        self.sent.append(item.message.text)


async def test_a_reply_is_claimed_by_its_commit_and_sent_with_one_more_transaction(
    database, make_ops
):
    """Ingest, claim the item, commit the reply (claimed), mark it sent and look again."""
    ops = await make_ops(database, FunctionModel(lambda _: Reply(text="all healthy")))
    slack = Recorder()
    with counting(database) as begun:
        item_id = await slack_item(ops)
        await jobs.process_item(ops, RecordingDispatcher(), item_id, {"slack": slack})
    assert len(begun) == 4, begun
    assert slack.sent == ["all healthy"]
    [sent] = await ops.store.pending_outbound(due_only=False) or [None]
    assert sent is None
    assert await ops.store.count_outbound("sent") == 1


async def test_a_reply_behind_an_unsent_message_is_not_claimed_and_goes_after_it(
    database, make_ops
):
    ops = await make_ops(database, OfflineModel())
    thread_id = await ops.store.open_thread(SLACK, title="x")
    await ops.store.append(
        thread_id, expected_seq=0, events=[AgentReply(text="x", agent="a")], outbound=[reply("one")]
    )
    outcome = await ops.process(await slack_item(ops), deliver=True)
    assert outcome is not None and outcome.thread.id == thread_id
    assert outcome.claimed == ()  # "one" is still to be sent: the reply may not overtake it
    slack = Recorder()
    assert await jobs.deliver_thread(ops, {"slack": slack}, thread_id) is None
    assert slack.sent[0] == "one" and len(slack.sent) == 2


async def test_a_worker_that_dies_holding_a_claimed_reply_loses_nothing(
    database, make_ops, settings
):
    """It committed the reply claimed and died before sending: the claim holds others off
    (no double send meanwhile), then lapses, and a sweep has the reply delivered."""
    quick = settings.model_copy(update={"sweep_grace": 0})
    ops = await make_ops(database, OfflineModel(), settings_=quick)
    outcome = await ops.process(await slack_item(ops), deliver=True)  # ...and the worker dies
    assert outcome is not None
    [claimed] = outcome.claimed
    thread_id = outcome.thread.id
    slack = Recorder()
    assert await jobs.deliver_thread(ops, {"slack": slack}, thread_id) is None
    assert slack.sent == []  # another worker's task stands back while the claim holds

    async with database.transaction() as connection:  # the hold runs out
        await connection.execute(
            update(OutboxRow)
            .where(OutboxRow.id == claimed.id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    dispatcher = RecordingDispatcher()
    assert await jobs.sweep(ops, dispatcher) is not None
    assert thread_id in dispatcher.of("deliver")
    assert await jobs.deliver_thread(ops, {"slack": slack}, thread_id) is None
    assert slack.sent == [claimed.message.text]
    assert await ops.store.count_outbound("sent") == 1


async def test_claimed_messages_not_tried_are_given_back_at_once(database, make_ops):
    """The first of two claimed messages must wait: the second is pending again, due now,
    not held by a claim nobody will use."""
    ops = await make_ops(database, OfflineModel())
    thread_id = await ops.store.open_thread(SLACK, title="x")
    claimed: list = []
    await ops.store.append(
        thread_id,
        expected_seq=0,
        events=[AgentReply(text="x", agent="a")],
        outbound=[reply("one"), reply("two")],
        claim=claimed,
    )
    assert [c.status for c in claimed] == ["sending", "sending"]

    async def limited(item, context) -> None:
        raise DeliveryRetryError("rate limited", retry_after=7)

    assert await jobs.deliver_thread(ops, {"slack": limited}, thread_id, claimed) == 7
    first, second = await ops.store.pending_outbound(thread_id=thread_id, due_only=False)
    assert (first.message.text, first.attempts) == ("one", 1)
    assert first.next_attempt_at > utcnow()
    assert (second.message.text, second.attempts) == ("two", 0)
    assert second.next_attempt_at <= utcnow()
