"""Delivery to Slack: replies in the thread, long ones split or attached, rate limits honoured."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.errors import SlackApiError
from sqlalchemy import update

from bot.errors import StoreError
from bot.events import ConversationRef, HumanDecision, HumanRequested, Identity, utcnow
from bot.outbound import DecisionNotice, OutboundReply, RequestPrompt, RequestResolved
from bot.plugins import DeliveryContext, DeliveryRetryError
from bot.store import OutboxItem
from bot.store._tables import OutboxRow
from channels.slack import SlackSender
from tests.channels.slack import payloads
from tests.channels.slack.conftest import MakeSlack, SlackHarness
from tests.channels.slack.payloads import CHANNEL, TEAM, TOP_TS

WHERE = ConversationRef(channel="slack", tenant=TEAM, room=CHANNEL, thread_key=TOP_TS)


async def send(slack: SlackHarness, message: object, *, attempts: int = 0) -> None:
    item = OutboxItem(
        id=1,
        thread_id="th_1",
        message=message,
        status="pending",
        attempts=attempts,
        next_attempt_at=utcnow(),
    )
    await slack.sender(
        item, DeliveryContext(store=slack.ops.store, settings=slack.ops.runtime.settings)
    )


def reply(text: str) -> OutboundReply:
    return OutboundReply(conversation=WHERE, text=text, agent="inspector")


async def test_a_reply_is_escaped_for_mrkdwn(slack: SlackHarness) -> None:
    await send(slack, reply("Ping <!channel> & see <https://evil.example|docs> > now"))
    [posted] = slack.posted()
    assert posted.params["text"] == (
        "Ping &lt;!channel&gt; &amp; see &lt;https://evil.example|docs&gt; &gt; now"
    )
    assert (posted.params["channel"], posted.params["thread_ts"]) == (CHANNEL, TOP_TS)


async def test_a_long_reply_is_split_at_line_ends(slack: SlackHarness) -> None:
    lines = [f"- service-{n:04d} 1.0.{n} in production: healthy" for n in range(120)]
    await send(slack, reply("\n".join(lines)))
    posted = slack.posted()
    assert len(posted) == 2
    assert all(len(p.params["text"]) <= 3500 for p in posted)
    assert "\n".join(p.params["text"] for p in posted).splitlines() == lines
    assert {p.params["thread_ts"] for p in posted} == {TOP_TS}


async def test_a_very_long_reply_is_uploaded_as_a_snippet_in_the_thread(
    slack: SlackHarness,
) -> None:
    text = "\n".join(f"line {n}: " + "x" * 80 for n in range(200))
    await send(slack, reply(text))
    assert slack.posted() == []
    [asked] = slack.fake.of("files.getUploadURLExternal")
    assert int(asked.params["length"]) == len(text.encode())
    [upload] = slack.fake.of("upload")
    assert upload.params["body"] == text.encode()
    [done] = slack.fake.of("files.completeUploadExternal")
    assert (done.params["channel_id"], done.params["thread_ts"]) == (CHANNEL, TOP_TS)
    assert "snippet" in done.params["initial_comment"]


async def test_a_rate_limit_becomes_a_retry_after_the_time_slack_asks(
    slack: SlackHarness,
) -> None:
    slack.fake.rate_limited["chat.postMessage"] = 7
    with pytest.raises(DeliveryRetryError) as raised:
        await send(slack, reply("hello"))
    assert raised.value.retry_after == 7.0


async def test_a_rate_limited_thread_waits_then_delivers(slack: SlackHarness) -> None:
    await slack.event(payloads.app_mention("<@UBOT> what is running in staging?"), event_id="E1")
    slack.fake.rate_limited["chat.postMessage"] = 7
    assert await slack.work() == 7.0
    assert [c.answer["ok"] for c in slack.posted()] == [False]
    wait = await slack.work()  # not due yet: nothing is sent
    assert wait is not None and 0 < wait <= 7
    assert len(slack.posted()) == 1
    thread_id = slack.dispatcher.of("deliver")[0]
    [item] = await slack.ops.store.pending_outbound(thread_id=thread_id, due_only=False)
    assert item.attempts == 1 and item.status == "pending"

    # Seven seconds on (the clock moved, not the test): it goes out.
    async with slack.ops.store.db.session() as session:
        await session.execute(update(OutboxRow).values(next_attempt_at=utcnow()))
    assert await slack.work() is None
    assert [c.answer["ok"] for c in slack.posted()] == [False, True]


async def test_a_redelivered_request_is_not_posted_twice(slack: SlackHarness) -> None:
    await slack.event(
        payloads.app_mention("<@UBOT> deploy checkout 1.4.2 to production"), event_id="E1"
    )
    await slack.work()
    [prompt] = slack.posted()
    thread = await slack.ops.store.load_thread(slack.dispatcher.of("deliver")[0])
    [asked] = [e for e in thread.events if isinstance(e, HumanRequested)]
    await send(slack, RequestPrompt(conversation=WHERE, request=asked))
    assert slack.posted() == [prompt]


async def test_an_expired_request_says_so_on_its_message(make_slack: MakeSlack) -> None:
    now = utcnow()
    later = {"now": now}
    slack = await make_slack(clock=lambda: later["now"])
    await slack.event(
        payloads.app_mention("<@UBOT> deploy checkout 1.4.2 to production"), event_id="E1"
    )
    await slack.work()
    later["now"] = now + timedelta(days=1)
    assert len(await slack.ops.expire_requests()) == 1
    await slack.work()
    [update] = slack.fake.of("chat.update")
    assert update.params["text"].startswith(":hourglass: *Expired (rejected)* <!date^")
    assert all(b["type"] != "actions" for b in update.params["blocks"])


async def test_a_notice_goes_privately_to_slack_people_only(slack: SlackHarness) -> None:
    web = Identity(channel="web", user_id="oncall-1")
    await send(slack, DecisionNotice(conversation=WHERE, to=web, text="no"))
    assert slack.fake.of("chat.postEphemeral") == []

    person = Identity(channel="slack", user_id="U_GONE")
    slack.fake.errors["chat.postEphemeral"] = "user_not_in_channel"
    await send(slack, DecisionNotice(conversation=WHERE, to=person, text="no"))  # nothing to do
    slack.fake.errors["chat.postEphemeral"] = "invalid_auth"
    with pytest.raises(SlackApiError):
        await send(slack, DecisionNotice(conversation=WHERE, to=person, text="no"))


async def test_the_sender_reads_its_settings_from_the_environment(
    slack: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", slack.fake.api_url)
    slack.sender = SlackSender()
    await send(slack, reply("from the environment"))
    [posted] = slack.posted()
    assert (posted.token, posted.params["text"]) == ("xoxb-test", "from the environment")


async def test_a_decision_on_a_request_never_posted_is_said_in_the_thread(
    slack: SlackHarness,
) -> None:
    await slack.event(
        payloads.app_mention("<@UBOT> deploy checkout 1.4.2 to production"), event_id="E1"
    )
    [item_id] = slack.dispatcher.of("process")
    await slack.ops.process(item_id)  # processed, not delivered: no message to edit
    request = await slack.only_request()
    assert request.message_ref is None
    by_cli = Identity(channel="cli", user_id="oncall-1")
    resolved = RequestResolved(
        conversation=WHERE,
        request_id=request.id,
        decision=HumanDecision.APPROVE,
        actor=by_cli,
        comment=None,
    )
    await send(slack, resolved)
    assert slack.fake.of("chat.update") == []
    [said] = slack.posted()
    assert said.params["thread_ts"] == TOP_TS
    assert said.params["text"].startswith(":white_check_mark: *Approved* by oncall-1 (cli)")


async def test_a_reply_cut_short_by_a_rate_limit_goes_on_where_it_stopped(
    slack: SlackHarness,
) -> None:
    """Regression: piece 2 got 429, and the retry posted piece 1 a second time."""
    lines = [f"- service-{n:04d} 1.0.{n} in production: healthy" for n in range(120)]
    slack.fake.rate_limited["chat.postMessage"] = 3
    slack.fake.rate_limit_after["chat.postMessage"] = 1  # the first piece goes through
    with pytest.raises(DeliveryRetryError):
        await send(slack, reply("\n".join(lines)))
    await send(slack, reply("\n".join(lines)), attempts=1)

    posted = [c for c in slack.posted() if c.answer["ok"]]
    assert [c.params["metadata"]["event_payload"] for c in posted] == [
        {"outbox": 1, "thread": "th_1", "piece": 0},
        {"outbox": 1, "thread": "th_1", "piece": 1},
    ]
    assert "\n".join(c.params["text"] for c in posted).splitlines() == lines
    [read_back] = slack.fake.of("conversations.replies")
    assert read_back.params["ts"] == TOP_TS


async def test_a_request_whose_reference_was_not_recorded_is_not_posted_again(
    slack: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the post went through, recording where failed, and the retry posted a
    second message with live buttons."""
    store = slack.ops.store
    set_message_ref = store.set_message_ref
    outage = {"on": True}

    async def set_unless_down(request_id: str, ref: dict[str, str]) -> None:
        if outage["on"]:
            raise StoreError("cannot reach the database")
        await set_message_ref(request_id, ref)

    monkeypatch.setattr(store, "set_message_ref", set_unless_down)
    await slack.event(
        payloads.app_mention("<@UBOT> deploy checkout 1.4.2 to production"), event_id="E1"
    )
    assert await slack.work() is not None  # the delivery failed after posting: a retry
    [prompt] = slack.posted()
    [request] = await store.human_requests(status=None)
    assert request.message_ref is None

    outage["on"] = False
    async with store.db.session() as session:
        await session.execute(update(OutboxRow).values(next_attempt_at=utcnow()))
    assert await slack.work() is None
    assert slack.posted() == [prompt]  # found in the thread, not posted again
    recorded = (await store.human_request(request.id)).message_ref
    assert recorded == {"team": TEAM, "channel": CHANNEL, "ts": prompt.answer["ts"]}
