"""Inbound: which Discord messages and interactions become events, and each only once."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import Opsloop
from bot.events import MessageReceived
from channels.discord import DiscordSender, DiscordSettings
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import (
    BOT_ID,
    BOT_ROLE,
    CHANNEL_ID,
    GUILD_ID,
    ONCALL_ROLE,
    thread,
)
from tests.channels.discord.support import (
    DEV,
    SignallingDispatcher,
    chat,
    drain,
    feed,
    member,
    settled,
    slash,
)


@pytest.fixture
def sender(discord_settings: DiscordSettings) -> DiscordSender:
    return DiscordSender(discord_settings)


async def events_of(ops: Opsloop, dispatcher: SignallingDispatcher) -> list[MessageReceived]:
    return [(await ops.store.inbox_item(i)).event for i in dispatcher.of("process")]


async def test_a_mention_is_a_request_without_the_mention(
    fake: FakeDiscord, make_client: Any, ops: Opsloop, dispatcher: SignallingDispatcher
) -> None:
    client = await make_client()
    message = chat(fake, f"<@{BOT_ID}> status of checkout in production", mentions=(BOT_ID,))
    feed(client, "MESSAGE_CREATE", message)
    await dispatcher.processed(1)

    [event] = await events_of(ops, dispatcher)
    assert event.text == "status of checkout in production"
    assert event.idempotency_key == f"discord:message:{message['id']}"
    assert (event.conversation.tenant, event.conversation.room) == (GUILD_ID, CHANNEL_ID)
    assert event.conversation.thread_key == message["id"]
    assert event.sender.user_id == DEV and event.sender.display_name == "Dev"


async def test_mentioning_the_bots_role_counts_as_mentioning_the_bot(
    fake: FakeDiscord, make_client: Any, ops: Opsloop, dispatcher: SignallingDispatcher
) -> None:
    client = await make_client()
    text = f"<@&{BOT_ROLE}> restart search in staging"
    feed(client, "MESSAGE_CREATE", chat(fake, text, roles=(BOT_ROLE,)))
    feed(client, "MESSAGE_CREATE", chat(fake, f"<@&{ONCALL_ROLE}> anyone?", roles=(ONCALL_ROLE,)))
    await dispatcher.processed(1)
    await settled()

    assert [e.text for e in await events_of(ops, dispatcher)] == ["restart search in staging"]


async def test_bots_are_ignored_opsloop_itself_included(
    fake: FakeDiscord, make_client: Any, dispatcher: SignallingDispatcher
) -> None:
    client = await make_client(message_content=True)
    other_bot = {
        **member("1100000000000000050", "ci"),
        "user": {**member("1100000000000000050", "ci")["user"], "bot": True},
    }
    itself = {
        **member(BOT_ID, "opsloop"),
        "user": {**member(BOT_ID, "opsloop")["user"], "bot": True},
    }
    for author in (other_bot, itself):
        for text in (f"<@{BOT_ID}> restart search in staging", "!ops restart search in staging"):
            feed(client, "MESSAGE_CREATE", chat(fake, text, by=author, mentions=(BOT_ID,)))
    feed(client, "MESSAGE_CREATE", chat(fake, "a person, not for opsloop"))
    await settled()

    assert dispatcher.of("process") == []


async def test_the_prefix_command_needs_the_message_content_intent(
    fake: FakeDiscord, make_client: Any, ops: Opsloop, dispatcher: SignallingDispatcher
) -> None:
    without = await make_client()
    assert not without.intents.message_content
    feed(without, "MESSAGE_CREATE", chat(fake, "!ops restart search in staging"))
    await settled()
    assert dispatcher.of("process") == []

    with_intent = await make_client(message_content=True)
    assert with_intent.intents.message_content
    feed(with_intent, "MESSAGE_CREATE", chat(fake, "!opsy is not the prefix"))
    feed(with_intent, "MESSAGE_CREATE", chat(fake, "!ops restart search in staging"))
    await dispatcher.processed(1)
    await settled()
    assert [e.text for e in await events_of(ops, dispatcher)] == ["restart search in staging"]


async def test_a_follow_up_in_an_opsloop_thread_continues_its_conversation(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client(message_content=True)
    command = slash(fake, "status of checkout in production")
    feed(client, "INTERACTION_CREATE", command)
    await dispatcher.processed(1)
    await drain(ops, dispatcher, sender)
    started = fake.original(command)["id"]
    feed(client, "THREAD_CREATE", {**fake.channels[started], "newly_created": True})

    feed(client, "MESSAGE_CREATE", chat(fake, "and in staging?", channel_id=started))
    await dispatcher.processed(2)
    await drain(ops, dispatcher, sender)

    first, follow_up = await events_of(ops, dispatcher)
    assert follow_up.text == "and in staging?"
    assert follow_up.conversation == first.conversation
    items = [await ops.store.inbox_item(i) for i in dispatcher.of("process")]
    assert items[0].thread_id == items[1].thread_id


async def test_a_thread_opsloop_did_not_start_needs_a_mention(
    fake: FakeDiscord, make_client: Any, ops: Opsloop, dispatcher: SignallingDispatcher
) -> None:
    client = await make_client(message_content=True)
    theirs = thread(fake.next_id(), CHANNEL_ID, "incident", owner=DEV)
    fake.channels[theirs["id"]] = theirs
    feed(client, "THREAD_CREATE", {**theirs, "newly_created": True})

    feed(client, "MESSAGE_CREATE", chat(fake, "status of checkout", channel_id=theirs["id"]))
    feed(
        client,
        "MESSAGE_CREATE",
        chat(
            fake,
            f"<@{BOT_ID}> status of checkout in production",
            channel_id=theirs["id"],
            mentions=(BOT_ID,),
        ),
    )
    await dispatcher.processed(1)
    await settled()

    [event] = await events_of(ops, dispatcher)
    assert (event.conversation.room, event.conversation.thread_key) == (CHANNEL_ID, theirs["id"])


async def test_a_duplicate_message_is_processed_once(
    fake: FakeDiscord, make_client: Any, ops: Opsloop, dispatcher: SignallingDispatcher
) -> None:
    client = await make_client()
    message = chat(fake, f"<@{BOT_ID}> restart search in staging", mentions=(BOT_ID,))
    feed(client, "MESSAGE_CREATE", message)
    feed(client, "MESSAGE_CREATE", message)  # a gateway resume replays it
    await settled()

    assert len(dispatcher.of("process")) == 1


async def test_a_duplicate_interaction_is_processed_once(
    fake: FakeDiscord, make_client: Any, ops: Opsloop, dispatcher: SignallingDispatcher
) -> None:
    client = await make_client()
    command = slash(fake, "restart search in staging")
    feed(client, "INTERACTION_CREATE", command)
    await settled()
    restarted = await make_client()
    feed(restarted, "INTERACTION_CREATE", command)  # replayed to a new session
    await settled()

    assert len(fake.callbacks(command)) == 2  # the second was refused: already acknowledged
    assert len(dispatcher.of("process")) == 1
    [event] = await events_of(ops, dispatcher)
    assert event.conversation.thread_key == fake.original(command)["id"]


async def test_an_empty_mention_is_answered_with_what_was_wrong(
    fake: FakeDiscord, make_client: Any, dispatcher: SignallingDispatcher
) -> None:
    client = await make_client()
    message = chat(fake, f"<@{BOT_ID}>", mentions=(BOT_ID,))
    feed(client, "MESSAGE_CREATE", message)
    await settled()

    assert dispatcher.of("process") == []
    [reply] = fake.find("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert reply.body["content"] == "⚠️ the message is empty"
    assert str(reply.body["message_reference"]["message_id"]) == message["id"]


async def test_a_direct_message_is_a_request_in_its_own_room(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client()
    dm = fake.next_id()
    fake.channels[dm] = {"id": dm, "type": 1, "recipients": [member(DEV, "dev")["user"]]}
    message = chat(fake, "status of checkout in production", channel_id=dm)
    del message["guild_id"], message["member"]
    feed(client, "MESSAGE_CREATE", message)
    await dispatcher.processed(1)
    await drain(ops, dispatcher, sender)

    [event] = await events_of(ops, dispatcher)
    assert (event.conversation.tenant, event.conversation.room) == ("", dm)
    assert event.conversation.thread_key == dm
    [answer] = fake.posted_in(dm)
    assert "healthy" in answer["content"]
    assert not fake.find("POST", r"/channels/\d+/messages/\d+/threads")
