"""Outbound: the sender against the fake Discord, through the workers' delivery job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.app import Opsloop
from bot.errors import ConfigError
from bot.events import (
    AgentReply,
    ConversationRef,
    DecisionRefused,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    new_id,
    utcnow,
)
from bot.outbound import DecisionNotice, OutboundReply, RequestResolved
from bot.plugins import DeliveryContext
from channels.discord import DiscordSender, plugin
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import CHANNEL_ID, GUILD_ID, VOICE_ID, thread
from tests.channels.discord.support import ALICE
from workers.jobs import deliver_thread

ALICE_ID = Identity(channel="discord", user_id=ALICE, display_name="Alice")


def asked_in(
    fake: FakeDiscord, room: str, text: str, *, thread_name: str | None = None
) -> tuple[str, ConversationRef]:
    """A request posted earlier in ``room`` (a thread started from it, if named): its id, and
    the conversation it began."""
    key = fake.add_message(room, text)["id"]
    if thread_name is not None:
        fake.channels[key] = thread(key, room, thread_name)
    return key, ConversationRef(channel="discord", tenant=GUILD_ID, room=room, thread_key=key)


async def deliver(ops: Opsloop, sender: DiscordSender, thread_id: str) -> float | None:
    """The workers' delivery job for one thread, with this sender."""
    return await deliver_thread(ops, {"discord": sender}, thread_id)


async def queue(ops: Opsloop, where: ConversationRef, events: list[Any], out: list[Any]) -> str:
    """A thread whose latest step queued ``out`` for delivery."""
    thread_id = await ops.store.open_thread(where, title="status of checkout in production")
    await ops.store.append(thread_id, expected_seq=0, events=events, outbound=out)
    return thread_id


def reply(where: ConversationRef, text: str) -> tuple[list[Any], list[Any]]:
    return [AgentReply(text=text, agent="inspector")], [
        OutboundReply(conversation=where, text=text, agent="inspector")
    ]


async def test_a_long_answer_is_split_under_discords_limit_keeping_code_blocks_whole(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    request, where = asked_in(fake, CHANNEL_ID, "show me the log")
    lines = [f"{n:03} checkout: " + "x" * 60 for n in range(80)]
    text = "Here is the log:\n```\n" + "\n".join(lines) + "\n```\nThat is all."
    thread_id = await queue(ops, where, *reply(where, text))

    assert await deliver(ops, sender, thread_id) is None

    posted = [m["content"] for m in fake.posted_in(request)]
    assert len(posted) == 4 and all(len(p) <= 2000 for p in posted)
    assert all(p.count("```") % 2 == 0 for p in posted)
    assert all(sum(line in p for p in posted) == 1 for line in lines)
    assert posted[0].startswith("Here is the log:") and posted[-1].endswith("That is all.")


async def test_a_rate_limit_reschedules_at_discords_time_and_nothing_is_posted_twice(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    request, where = asked_in(fake, CHANNEL_ID, "show me the log", thread_name="log")
    long_events, long_out = reply(where, "\n".join(f"line {n} " + "y" * 90 for n in range(40)))
    next_events, next_out = reply(where, "and one more thing")
    thread_id = await queue(ops, where, long_events + next_events, long_out + next_out)
    fake.rate_limits.append([rf"/channels/{request}/messages", 2.5, 1])  # the second piece

    assert await deliver(ops, sender, thread_id) == 2.5

    first, second = await ops.store.pending_outbound(thread_id=thread_id, due_only=False)
    assert first.attempts == 1 and second.attempts == 0  # the later message waits its turn
    wait = (first.next_attempt_at - utcnow()).total_seconds()
    assert 1.5 < wait <= 2.5
    assert len(fake.posted_in(request)) == 1

    # Discord's retry_after has passed: the job tries the message again.
    await sender(first, DeliveryContext(store=ops.store, settings=ops.runtime.settings))
    posted = [m["content"] for m in fake.posted_in(request)]
    assert len(posted) == 2 and posted[-1].endswith("line 39 " + "y" * 90)
    nonces = [c.body["nonce"] for c in fake.find("POST", rf"/channels/{request}/messages")]
    assert nonces == [f"{first.id}.0", f"{first.id}.1", f"{first.id}.0", f"{first.id}.1"]
    assert sum("line 0 " in p for p in posted) == 1  # the retried first piece was not repeated


async def test_where_threads_are_not_allowed_the_answer_replies_in_the_channel(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    request, where = asked_in(fake, VOICE_ID, "status of checkout in production")
    thread_id = await queue(ops, where, *reply(where, "checkout is healthy"))

    await deliver(ops, sender, thread_id)

    assert [(c.path, c.method) for c in fake.calls] == [
        (f"/channels/{request}/messages", "POST"),  # no such thread
        (f"/channels/{VOICE_ID}/messages/{request}/threads", "POST"),  # not here
        (f"/channels/{VOICE_ID}/messages", "POST"),
    ]
    answer = fake.posted_in(VOICE_ID)[-1]
    assert answer["content"] == "checkout is healthy"
    assert answer["message_reference"]["message_id"] == request


async def test_a_decision_on_a_deleted_request_message_is_told_in_the_thread(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    key, where = asked_in(
        fake, CHANNEL_ID, "deploy checkout 1.4.2 to production", thread_name="deploy"
    )
    asked = HumanRequested(
        request_id=new_id("hr"),
        type="approval",
        tool="deploy",
        call_id="call_1",
        arguments={"service": "checkout"},
        question="Approve deploy?",
        approvers=("role:oncall",),
        expires_at=utcnow() + timedelta(hours=1),
    )
    thread_id = await queue(ops, where, [asked], [])
    await ops.store.set_message_ref(asked.request_id, {"channel_id": key, "message_id": "404"})
    decided = HumanResponded(
        request_id=asked.request_id, decision=HumanDecision.APPROVE, actor=ALICE_ID
    )
    resolved = RequestResolved(
        conversation=where,
        request_id=asked.request_id,
        decision=HumanDecision.APPROVE,
        actor=ALICE_ID,
        comment=None,
    )
    await ops.store.append(
        thread_id,
        expected_seq=1,
        events=[decided],
        outbound=[resolved],
        resolve=(asked.request_id, "approved", f"discord:{ALICE}", None),
    )

    await deliver(ops, sender, thread_id)

    [said] = fake.posted_in(key)
    assert said["content"].startswith(f"`{asked.request_id}` ✅ **Approved** by <@{ALICE}> <t:")


async def test_a_refusal_notice_posts_nothing(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    _, where = asked_in(fake, CHANNEL_ID, "deploy")
    refused = DecisionRefused(request_id="hr_0", actor=ALICE_ID, reason="not allowed")
    notice = DecisionNotice(conversation=where, to=ALICE_ID, text="not allowed")
    thread_id = await queue(ops, where, [refused], [notice])

    assert await deliver(ops, sender, thread_id) is None

    assert fake.calls == []
    assert await ops.store.count_outbound("sent") == 1


async def test_the_plugins_sender_reads_its_settings_from_the_environment(
    fake: FakeDiscord, ops: Opsloop, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, where = asked_in(fake, CHANNEL_ID, "status")
    thread_id = await queue(ops, where, *reply(where, "healthy"))
    monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)
    monkeypatch.setenv("DISCORD_API_URL", fake.url)

    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN is not set"):
        [item] = await ops.store.pending_outbound(thread_id=thread_id)
        await plugin.senders["discord"](item, DeliveryContext(ops.store, ops.runtime.settings))
    assert fake.calls == []

    monkeypatch.setenv("DISCORD_BOT_TOKEN", "from-the-environment")
    await deliver_thread(ops, plugin.senders, thread_id)
    assert [m["content"] for m in fake.posted_in(key)] == ["healthy"]
