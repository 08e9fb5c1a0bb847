"""Inbound: which Discord messages and interactions become events, and each only once."""

from __future__ import annotations

from typing import Any

from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import (
    BOT_ID,
    BOT_ROLE,
    CHANNEL_ID,
    GUILD_ID,
    ONCALL_ROLE,
    thread,
)
from tests.channels.discord.support import DEV, Harness, chat, feed, member, settled, slash


def a_bot(user_id: str, name: str) -> dict[str, Any]:
    """A guild member whose user is a bot."""
    person = member(user_id, name)
    return {**person, "user": {**person["user"], "bot": True}}


async def test_a_mention_is_a_request_without_the_mention(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client()
    message = chat(fake, f"<@{BOT_ID}> status of checkout in production", mentions=(BOT_ID,))
    await harness.ingest(client, "MESSAGE_CREATE", message)

    [event] = await harness.events()
    assert event.text == "status of checkout in production"
    assert event.idempotency_key == f"discord:message:{message['id']}"
    assert (event.conversation.tenant, event.conversation.room) == (GUILD_ID, CHANNEL_ID)
    assert event.conversation.thread_key == message["id"]
    assert event.sender.user_id == DEV and event.sender.display_name == "Dev"
    assert event.sender.auth == "discord"


async def test_mentioning_the_bots_role_counts_as_mentioning_the_bot(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client()
    text = f"<@&{BOT_ROLE}> restart search in staging"
    to_bot = chat(fake, text, roles=(BOT_ROLE,))
    to_oncall = chat(fake, f"<@&{ONCALL_ROLE}> anyone?", roles=(ONCALL_ROLE,))
    await harness.receive(client, to_bot, to_oncall, enqueued=1)

    assert [e.text for e in await harness.events()] == ["restart search in staging"]


async def test_bots_are_ignored_opsloop_itself_included(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client(message_content=True)
    by_bots = [
        chat(fake, text, by=author, mentions=(BOT_ID,))
        for author in (a_bot("1100000000000000050", "ci"), a_bot(BOT_ID, "opsloop"))
        for text in (f"<@{BOT_ID}> restart search in staging", "!ops restart search in staging")
    ]
    await harness.receive(client, *by_bots, chat(fake, "a person, not for opsloop"))

    assert harness.dispatcher.of("process") == []


async def test_the_prefix_command_needs_the_message_content_intent(
    fake: FakeDiscord, harness: Harness
) -> None:
    without = await harness.client()
    assert not without.intents.message_content
    await harness.receive(without, chat(fake, "!ops restart search in staging"))
    assert harness.dispatcher.of("process") == []

    with_intent = await harness.client(message_content=True)
    assert with_intent.intents.message_content
    not_the_prefix = chat(fake, "!opsy is not the prefix")
    prefixed = chat(fake, "!ops restart search in staging")
    await harness.receive(with_intent, not_the_prefix, prefixed, enqueued=1)
    assert [e.text for e in await harness.events()] == ["restart search in staging"]


async def test_a_follow_up_in_an_opsloop_thread_continues_its_conversation(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client(message_content=True)
    _, started = await harness.ask(client, "status of checkout in production")
    feed(client, "THREAD_CREATE", {**fake.channels[started], "newly_created": True})

    follow = chat(fake, "and in staging?", channel_id=started)
    await harness.ingest(client, "MESSAGE_CREATE", follow)
    await harness.work()

    first, follow_up = await harness.events()
    assert follow_up.text == "and in staging?"
    assert follow_up.conversation == first.conversation
    items = [await harness.ops.store.inbox_item(i) for i in harness.dispatcher.of("process")]
    assert items[0].thread_id == items[1].thread_id


async def test_a_thread_opsloop_did_not_start_needs_a_mention(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client(message_content=True)
    theirs = thread(fake.next_id(), CHANNEL_ID, "incident", owner=DEV)
    fake.channels[theirs["id"]] = theirs
    feed(client, "THREAD_CREATE", {**theirs, "newly_created": True})

    unmentioned = chat(fake, "status of checkout", channel_id=theirs["id"])
    text = f"<@{BOT_ID}> status of checkout in production"
    mention = chat(fake, text, channel_id=theirs["id"], mentions=(BOT_ID,))
    await harness.receive(client, unmentioned, mention, enqueued=1)

    [event] = await harness.events()
    assert (event.conversation.room, event.conversation.thread_key) == (CHANNEL_ID, theirs["id"])


async def test_a_duplicate_message_is_processed_once(fake: FakeDiscord, harness: Harness) -> None:
    client = await harness.client()
    message = chat(fake, f"<@{BOT_ID}> restart search in staging", mentions=(BOT_ID,))
    await harness.receive(client, message, message)  # a gateway resume replays it

    assert len(harness.dispatcher.of("process")) == 1


async def test_a_duplicate_interaction_is_processed_once(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client()
    command = slash(fake, "restart search in staging")
    feed(client, "INTERACTION_CREATE", command)
    await settled()
    restarted = await harness.client()
    feed(restarted, "INTERACTION_CREATE", command)  # replayed to a new session
    await settled()

    assert len(fake.callbacks(command)) == 2  # the second was refused: already acknowledged
    assert len(harness.dispatcher.of("process")) == 1
    [event] = await harness.events()
    assert event.conversation.thread_key == fake.original(command)["id"]


async def test_an_empty_mention_is_answered_with_what_was_wrong(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client()
    message = chat(fake, f"<@{BOT_ID}>", mentions=(BOT_ID,))
    await harness.receive(client, message)

    assert harness.dispatcher.of("process") == []
    [reply] = fake.find("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert reply.body["content"] == "⚠️ the message is empty"
    assert str(reply.body["message_reference"]["message_id"]) == message["id"]


async def test_a_direct_message_is_a_request_in_its_own_room(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client()
    dm = fake.next_id()
    fake.channels[dm] = {"id": dm, "type": 1, "recipients": [member(DEV, "dev")["user"]]}
    message = chat(fake, "status of checkout in production", channel_id=dm)
    del message["guild_id"], message["member"]
    await harness.ingest(client, "MESSAGE_CREATE", message)
    await harness.work()

    [event] = await harness.events()
    assert (event.conversation.tenant, event.conversation.room) == ("", dm)
    assert event.conversation.thread_key == dm
    [answer] = fake.posted_in(dm)
    assert "healthy" in answer["content"]
    assert not fake.find("POST", r"/channels/\d+/messages/\d+/threads")
