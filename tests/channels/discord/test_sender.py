"""Outbound: the sender against the fake Discord, through the workers' delivery job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

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
from bot.outbound import DecisionNotice, OutboundReply, RequestPrompt, RequestResolved
from bot.plugins import DeliveryContext
from bot.store._tables import OutboxRow
from channels.discord import DiscordSender, plugin
from tests.channels.discord import fake_discord
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import CHANNEL_ID, GUILD_ID, VOICE_ID, thread
from tests.channels.discord.support import ALICE, buttons
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
    assert len(nonces) == 3 and nonces[1] == nonces[2] != nonces[0]  # only piece 2 again
    assert all(len(nonce) <= 25 for nonce in nonces)
    assert sum("line 0 " in p for p in posted) == 1  # the retried first piece was not repeated


def context_of(ops: Opsloop) -> DeliveryContext:
    return DeliveryContext(store=ops.store, settings=ops.runtime.settings)


async def test_a_retry_after_discord_forgot_the_nonce_posts_no_piece_twice(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    """Regression: piece 2 rate limited, retried after Discord's nonce window had passed,
    posted piece 1 again."""
    request, where = asked_in(fake, CHANNEL_ID, "show me the log", thread_name="log")
    thread_id = await queue(
        ops, where, *reply(where, "\n".join(f"line {n} " + "y" * 90 for n in range(40)))
    )
    fake.rate_limits.append([rf"/channels/{request}/messages", 2.5, 1])  # the second piece
    assert await deliver(ops, sender, thread_id) == 2.5
    fake.skew += fake.nonce_window + 60  # the worker was down a while: Discord forgot

    [item] = await ops.store.pending_outbound(thread_id=thread_id, due_only=False)
    await sender(item, context_of(ops))

    posted = [m["content"] for m in fake.posted_in(request)]
    assert len(posted) == 2
    assert posted[0].startswith("line 0 ") and posted[1].endswith("line 39 " + "y" * 90)


async def test_a_request_posted_but_not_recorded_is_not_posted_again(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a request whose message reference failed to record was posted a second
    time, with live buttons, on the retry."""
    key, where = asked_in(fake, CHANNEL_ID, "deploy", thread_name="deploy")
    asked = approval()
    thread_id = await queue(ops, where, [asked], [RequestPrompt(conversation=where, request=asked)])
    record = ops.store.set_message_ref

    async def lost(request_id: str, ref: dict[str, Any]) -> None:
        raise OSError("the database went away")

    monkeypatch.setattr(ops.store, "set_message_ref", lost)
    assert await deliver(ops, sender, thread_id) is not None  # to be retried
    monkeypatch.setattr(ops.store, "set_message_ref", record)
    fake.skew += fake.nonce_window + 60

    [item] = await ops.store.pending_outbound(thread_id=thread_id, due_only=False)
    await sender(item, context_of(ops))

    [prompt] = [m for m in fake.posted_in(key) if m["components"]]
    ref = (await ops.store.human_request(asked.request_id)).message_ref
    assert ref == {"channel_id": key, "message_id": prompt["id"]}


def approval(**arguments: Any) -> HumanRequested:
    return HumanRequested(
        request_id=new_id("hr"),
        type="approval",
        tool="deploy",
        call_id="call_1",
        arguments=arguments or {"service": "checkout"},
        question="Approve deploy?",
        approvers=("role:oncall",),
        expires_at=utcnow() + timedelta(hours=1),
    )


async def test_a_decision_with_a_long_comment_edits_the_request_within_discords_limit(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    """Regression: the edit after a decision with a long comment exceeded 2,000 characters;
    Discord answered 50035 and the edit was retried for ever."""
    key, where = asked_in(fake, CHANNEL_ID, "deploy", thread_name="deploy")
    asked = approval(notes="n" * 1400)
    thread_id = await queue(ops, where, [asked], [RequestPrompt(conversation=where, request=asked)])
    await deliver(ops, sender, thread_id)
    [prompt] = fake.posted_in(key)
    someone = Identity(channel="web", user_id="release-manager-" + "x" * 400)
    await decide(ops, thread_id, where, asked, someone, "because " * 300)

    assert await deliver(ops, sender, thread_id) is None

    edited = fake.messages[prompt["id"]]
    assert "✅ **Approved** by `web:release-manager-" in edited["content"]
    assert len(edited["content"]) <= 2000 and all(b["disabled"] for b in buttons(edited))
    assert await ops.store.count_outbound("sent") == 2


async def decide(
    ops: Opsloop,
    thread_id: str,
    where: ConversationRef,
    asked: HumanRequested,
    actor: Identity,
    comment: str | None = None,
) -> None:
    decided = HumanResponded(
        request_id=asked.request_id, decision=HumanDecision.APPROVE, actor=actor, comment=comment
    )
    resolved = RequestResolved(
        conversation=where,
        request_id=asked.request_id,
        decision=HumanDecision.APPROVE,
        actor=actor,
        comment=comment,
    )
    seq = len((await ops.store.load_thread(thread_id)).events)
    await ops.store.append(
        thread_id,
        expected_seq=seq,
        events=[decided],
        outbound=[resolved],
        resolve=(asked.request_id, "approved", actor.principal, None),
    )


async def test_a_text_too_long_for_five_messages_is_cut_with_a_link_to_the_console(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    """Regression: a long answer was posted in as many messages as it took (here 12)."""
    import dataclasses

    public = ops.runtime.settings.model_copy(update={"public_url": "https://ops.example.com"})
    ops.runtime = dataclasses.replace(ops.runtime, settings=public)
    request, where = asked_in(fake, CHANNEL_ID, "show me the log", thread_name="log")
    text = "\n".join(f"{n:04} checkout: " + "z" * 80 for n in range(250))
    thread_id = await queue(ops, where, *reply(where, text))

    assert await deliver(ops, sender, thread_id) is None

    posted = [m["content"] for m in fake.posted_in(request)]
    assert len(posted) == 5 and all(len(p) <= 2000 for p in posted)
    assert posted[-1].endswith(f"<https://ops.example.com/threads/{thread_id}>")
    assert posted[0].startswith("0000 checkout:")


async def test_a_form_discord_refuses_fails_at_once_with_its_reason(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a message Discord refused with 50035 Invalid Form Body was retried with
    backoff, though it could never succeed; the messages after it waited meanwhile."""
    request, where = asked_in(fake, CHANNEL_ID, "status", thread_name="status")
    # A form Discord refuses, whatever makes it so: here, a content limit the fake lowers.
    monkeypatch.setitem(fake_discord._LIMITS, "content", 10)
    bad_events, bad_out = reply(where, "checkout is healthy, all 12 pods ready")
    ok_events, ok_out = reply(where, "ok")
    thread_id = await queue(ops, where, bad_events + ok_events, bad_out + ok_out)

    assert await deliver(ops, sender, thread_id) is None

    assert await ops.store.count_outbound("failed") == 1
    assert await ops.store.count_outbound("sent") == 1
    assert [m["content"] for m in fake.posted_in(request)] == ["ok"]
    async with ops.store.db.session() as session:
        [failed] = (
            await session.scalars(select(OutboxRow).where(OutboxRow.status == "failed"))
        ).all()
    assert failed.attempts == 1
    assert "(code 50035) Invalid Form Body (content: Must be 10 or fewer" in (
        failed.last_error or ""
    )


async def test_a_channel_without_thread_permission_is_remembered(
    fake: FakeDiscord, ops: Opsloop, sender: DiscordSender
) -> None:
    """Regression: every message to a channel where the bot may not start threads cost a
    404 (no such thread) and a 403 (may not start one) before the reply in the channel."""
    fake.no_thread_permission.add(CHANNEL_ID)
    first, where = asked_in(fake, CHANNEL_ID, "status of checkout")
    thread_id = await queue(ops, where, *reply(where, "checkout is healthy"))
    await deliver(ops, sender, thread_id)
    second, elsewhere = asked_in(fake, CHANNEL_ID, "status of search")
    later = await queue(ops, elsewhere, *reply(elsewhere, "search is healthy"))
    fake.calls.clear()

    await deliver(ops, sender, later)

    assert [(c.method, c.path) for c in fake.calls] == [
        ("POST", f"/channels/{CHANNEL_ID}/messages")
    ]
    replies = [
        (m["content"], m["message_reference"]["message_id"])
        for m in fake.posted_in(CHANNEL_ID)
        if "message_reference" in m
    ]
    assert replies == [("checkout is healthy", first), ("search is healthy", second)]


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
