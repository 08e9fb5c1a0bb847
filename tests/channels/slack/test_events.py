"""Slack's HTTP mode, inbound: signed events and commands into threads, and what is ignored."""

from __future__ import annotations

import json
import time

import pytest

from bot.errors import StoreError
from bot.events import ConversationRef, MessageReceived, UserMessage
from channels.slack._background import settled
from tests.channels.slack import payloads
from tests.channels.slack.conftest import SlackHarness
from tests.channels.slack.payloads import CHANNEL, TEAM, TOP_TS

MENTION = "<@UBOT> what is running in staging?"


def thread_of(ts: str = TOP_TS) -> ConversationRef:
    return ConversationRef(channel="slack", tenant=TEAM, room=CHANNEL, thread_key=ts)


async def inbox(slack: SlackHarness) -> list[MessageReceived]:
    return [(await slack.ops.store.inbox_item(i)).event for i in slack.dispatcher.of("process")]


async def test_a_mention_gets_a_threaded_reply(slack: SlackHarness) -> None:
    response = await slack.event(payloads.app_mention(MENTION), event_id="Ev1")
    assert response.status_code == 200

    [event] = await inbox(slack)
    assert event.text == "what is running in staging?"
    assert event.idempotency_key == f"slack:{TEAM}:{CHANNEL}:{TOP_TS}"
    assert event.conversation == thread_of()
    assert event.sender.user_id == "U_DEV"
    assert event.sender.display_name == "Dana Dev"
    assert event.sender.groups == ("S_DEV",)

    await slack.work()
    [reply] = slack.posted()
    assert reply.params["channel"] == CHANNEL
    assert reply.params["thread_ts"] == TOP_TS
    assert "checkout" in reply.params["text"]
    assert reply.token == "xoxb-test"


async def test_a_risky_request_gets_a_buttons_message_in_the_same_thread(
    slack: SlackHarness,
) -> None:
    await slack.event(
        payloads.app_mention("<@UBOT> deploy checkout 1.4.2 to production"), event_id="Ev1"
    )
    await slack.work()

    [prompt] = slack.posted()
    assert prompt.params["thread_ts"] == TOP_TS
    blocks = prompt.params["blocks"]
    shown = json.dumps(blocks)
    assert "`deploy`" in shown
    assert '\\"environment\\": \\"production\\"' in shown
    assert '\\"version\\": \\"1.4.2\\"' in shown
    request = await slack.only_request()
    [buttons] = [b for b in blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in buttons["elements"]] == [
        ("opsloop_approve", request.id),
        ("opsloop_edit", request.id),
        ("opsloop_reject", request.id),
    ]
    # Where it was posted is kept, so the decision can edit that very message.
    assert request.message_ref == {"team": TEAM, "channel": CHANNEL, "ts": prompt.answer["ts"]}


async def test_a_bad_signature_or_a_stale_timestamp_gets_401_and_nothing_is_stored(
    slack: SlackHarness,
) -> None:
    body = json.dumps(payloads.event_callback(payloads.app_mention(MENTION), event_id="Ev1"))
    forged = await slack.post(body.encode(), "application/json", secret="not-the-secret")
    stale = await slack.post(body.encode(), "application/json", timestamp=int(time.time()) - 6 * 60)
    unsigned = await slack.client.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert [forged.status_code, stale.status_code, unsigned.status_code] == [401, 401, 401]
    assert slack.dispatcher.calls == []
    assert await slack.ops.store.list_threads() == []


async def test_a_timestamp_within_five_minutes_is_accepted(slack: SlackHarness) -> None:
    body = json.dumps(payloads.event_callback(payloads.app_mention(MENTION), event_id="Ev1"))
    response = await slack.post(
        body.encode(), "application/json", timestamp=int(time.time()) - 4 * 60
    )
    assert response.status_code == 200
    assert len(slack.dispatcher.of("process")) == 1


async def test_a_retried_event_is_processed_once(slack: SlackHarness) -> None:
    first = await slack.event(payloads.app_mention(MENTION), event_id="Ev1")
    retry = await slack.event(payloads.app_mention(MENTION), event_id="Ev1", retry=1)
    # The same message also arrives as message.channels, under another event id.
    echo = await slack.event(payloads.message(MENTION, ts=TOP_TS), event_id="Ev2")
    assert [first.status_code, retry.status_code, echo.status_code] == [200, 200, 200]
    assert len(slack.dispatcher.of("process")) == 1

    await slack.work()
    assert len(slack.posted()) == 1
    thread = await slack.ops.store.load_thread(slack.dispatcher.of("deliver")[0])
    assert sum(isinstance(e, UserMessage) for e in thread.events) == 1


async def test_a_reply_in_a_thread_opsloop_works_in_needs_no_mention(slack: SlackHarness) -> None:
    await slack.event(payloads.app_mention(MENTION), event_id="Ev1")
    await slack.work()

    in_thread = payloads.message("and in production?", ts="1700000000.000300", thread_ts=TOP_TS)
    await slack.event(in_thread, event_id="Ev2")
    [_, follow_up] = await inbox(slack)
    assert follow_up.text == "and in production?"
    assert follow_up.conversation == thread_of()

    await slack.work()
    assert [c.params["thread_ts"] for c in slack.posted()] == [TOP_TS, TOP_TS]


async def test_messages_not_for_opsloop_are_ignored(slack: SlackHarness) -> None:
    top_level = payloads.message("lunch anyone?", ts="1700000000.000400")
    other_thread = payloads.message("+1", ts="1700000000.000401", thread_ts="1699999999.000001")
    edited = payloads.message("x", ts="1700000000.000402", subtype="message_changed")
    for number, event in enumerate([top_level, other_thread, edited]):
        response = await slack.event(event, event_id=f"Ev{number}")
        assert response.status_code == 200
    assert slack.dispatcher.calls == []


async def test_its_own_messages_and_other_bots_are_ignored(slack: SlackHarness) -> None:
    await slack.event(payloads.app_mention(MENTION), event_id="Ev1")
    await slack.work()
    own = payloads.message(
        "reply", user="UBOT", ts="1700000000.000600", thread_ts=TOP_TS, bot_id="BBOT"
    )
    other = payloads.message(
        "beep",
        user=None,
        ts="1700000000.000601",
        thread_ts=TOP_TS,
        bot_id="B_CI",
        subtype="bot_message",
    )
    await slack.event(own, event_id="Ev2")
    await slack.event(other, event_id="Ev3")
    assert len(slack.dispatcher.of("process")) == 1


async def test_other_bots_are_heard_when_allowed(make_slack, slack_settings) -> None:
    slack = await make_slack(slack=slack_settings.model_copy(update={"allow_bots": True}))
    await slack.event(payloads.app_mention(MENTION), event_id="Ev1")
    other = payloads.message(
        "deploys of checkout",
        user=None,
        ts="1700000000.000601",
        thread_ts=TOP_TS,
        bot_id="B_CI",
        subtype="bot_message",
    )
    own = payloads.message(
        "reply", user="UBOT", ts="1700000000.000602", thread_ts=TOP_TS, bot_id="BBOT"
    )
    await slack.work()
    await slack.event(other, event_id="Ev2")
    await slack.event(own, event_id="Ev3")
    [_, from_bot] = await inbox(slack)
    assert from_bot.sender.user_id == "B_CI"


async def test_a_direct_message_needs_no_mention(slack: SlackHarness) -> None:
    dm = payloads.message("recent deploys of checkout", channel="D1", channel_type="im")
    await slack.event(dm, event_id="Ev1")
    [event] = await inbox(slack)
    assert event.conversation.room == "D1"
    await slack.work()
    [reply] = slack.posted()
    assert (reply.params["channel"], reply.params["thread_ts"]) == ("D1", dm["ts"])


async def test_an_empty_mention_is_explained_privately(slack: SlackHarness) -> None:
    response = await slack.event(payloads.app_mention("<@UBOT>  "), event_id="Ev1")
    assert response.status_code == 200
    assert slack.dispatcher.calls == []
    [told] = await slack.fake.called("chat.postEphemeral")
    assert told.params["user"] == "U_DEV"
    assert told.params["thread_ts"] == TOP_TS
    assert "empty" in told.params["text"]


async def test_the_slash_command_starts_a_thread_under_its_own_message(
    slack: SlackHarness,
) -> None:
    response = await slack.command("deploy checkout 1.4.2 to production")
    assert response.status_code == 200
    assert response.text == ""  # a plain acknowledgement: the answer comes in the thread

    [anchor] = await slack.fake.called("chat.postMessage")
    await settled()
    assert anchor.params["channel"] == CHANNEL
    assert "thread_ts" not in anchor.params
    assert anchor.params["text"] == "<@U_DEV> asked: deploy checkout 1.4.2 to production"
    [event] = await inbox(slack)
    anchor_ts = event.conversation.thread_key
    assert anchor_ts == anchor.answer["ts"]
    assert event.idempotency_key.startswith(f"slack:{TEAM}:command:")

    await slack.work()
    [_, prompt] = slack.posted()
    assert prompt.params["thread_ts"] == anchor_ts
    assert any(b["type"] == "actions" for b in prompt.params["blocks"])


async def test_the_slash_command_explains_what_it_cannot_do(slack: SlackHarness) -> None:
    empty = await slack.command("  ")
    assert "what is running in staging" in empty.text
    too_long = await slack.command("x" * 20_000)
    assert "limit" in too_long.text
    slack.fake.errors["chat.postMessage"] = "not_in_channel"
    not_member = await slack.command("what is running in staging?", trigger_id="t2")
    assert not_member.text == ""  # acknowledged at once; told once the post was refused
    [told] = await slack.fake.called("respond")
    assert "/invite @opsloop" in told.params["text"]
    assert told.params["response_type"] == "ephemeral"
    assert slack.dispatcher.calls == []


async def test_an_event_that_cannot_be_stored_is_not_acknowledged_so_slack_retries(
    slack: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = slack.ops.store
    ingest = store.ingest
    outage = {"on": True}

    async def ingest_unless_down(event: object) -> object:
        if outage["on"]:
            raise StoreError("cannot reach the database")
        return await ingest(event)

    monkeypatch.setattr(store, "ingest", ingest_unless_down)
    failed = await slack.event(payloads.app_mention(MENTION), event_id="Ev1")
    assert failed.status_code == 500
    assert slack.dispatcher.calls == []

    outage["on"] = False
    retried = await slack.event(payloads.app_mention(MENTION), event_id="Ev1", retry=1)
    assert retried.status_code == 200
    assert len(slack.dispatcher.of("process")) == 1


async def test_slack_can_verify_the_request_url(slack: SlackHarness) -> None:
    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV", "type": "url_verification"}
    )
    response = await slack.post(body.encode(), "application/json")
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV"}


async def test_a_body_that_is_not_a_slack_request_gets_a_clear_400(slack: SlackHarness) -> None:
    for body in (b"{not json", b"\xff\xfe"):
        response = await slack.post(body, "application/json")
        assert response.status_code == 400
        assert response.json() == {"error": "not a Slack request: bad JSON or form data"}
    assert slack.dispatcher.calls == []
