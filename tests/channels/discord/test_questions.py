"""ask_human on Discord: a question's options are buttons; "Other answer…" opens a modal."""

from __future__ import annotations

from typing import Any

from bot.events import CallTool, HumanResponded, Reply
from bot.model.testing import ScriptedModel
from bot.policy import Policy
from bot.store import Database
from channels.discord import DiscordSender, DiscordSettings
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.support import (
    DEV,
    EVE,
    SignallingDispatcher,
    click,
    drain,
    feed,
    settled,
    slash,
    submit,
)


async def test_a_question_offers_its_options_and_any_answer(
    fake: FakeDiscord,
    make_client: Any,
    make_ops: Any,
    sqlite_database: Database,
    oncall_policy: Policy,
    dispatcher: SignallingDispatcher,
    discord_settings: DiscordSettings,
) -> None:
    long_option = "production, but only after the 16:00 change freeze is lifted " * 2
    model = ScriptedModel(
        [
            CallTool(
                tool="ask_human",
                arguments={
                    "question": "Which environment?",
                    "options": ["staging", long_option.strip()],
                },
            ),
            CallTool(tool="ask_human", arguments={"question": "Anything else?"}),
            Reply(text="Done."),
        ]
    )
    ops = await make_ops(sqlite_database, model, policy_=oncall_policy)
    client = await make_client(ops)
    sender = DiscordSender(discord_settings)
    command = slash(fake, "restart the thing")
    feed(client, "INTERACTION_CREATE", command)
    await dispatcher.processed(1)
    await drain(ops, dispatcher, sender)
    thread = fake.original(command)["id"]

    [question] = [m for m in fake.posted_in(thread) if m["components"]]
    [request] = await ops.store.human_requests()
    labels = [
        (b["label"], b["custom_id"]) for row in question["components"] for b in row["components"]
    ]
    assert labels == [
        ("staging", f"opsloop:answer:{request.id}:0"),
        (long_option.strip()[:79] + "…", f"opsloop:answer:{request.id}:1"),
        ("Other answer…", f"opsloop:answer:{request.id}"),
    ]
    assert "Which environment?" in question["content"]
    assert f"2. {long_option.strip()}" in question["content"]  # a cut label is shown in full

    # EVE is neither the requester nor on call; DEV asked, so DEV may answer.
    refused = click(fake, question["id"], f"opsloop:answer:{request.id}:1", by=EVE)
    feed(client, "INTERACTION_CREATE", refused)
    await dispatcher.processed(2)
    await drain(ops, dispatcher, sender)
    answer = click(fake, question["id"], f"opsloop:answer:{request.id}:1", by=DEV)
    feed(client, "INTERACTION_CREATE", answer)
    await dispatcher.processed(3)
    await drain(ops, dispatcher, sender)
    await settled()

    assert "may not decide" in fake.followups(refused)[0]["content"]
    assert fake.followups(answer)[0]["content"].startswith("✅ Answer recorded")
    log = (await ops.store.load_thread(request.thread_id)).events
    [responded] = [e for e in log if isinstance(e, HumanResponded)]
    assert responded.comment == long_option.strip()  # the option's full text, not the label
    assert f"💬 **Answered** by <@{DEV}>" in fake.messages[question["id"]]["content"]

    # The follow-up question has no options: one button, which asks for the text.
    [follow] = [m for m in fake.posted_in(thread) if m["components"] and m is not question]
    [second] = await ops.store.human_requests()
    other = click(fake, follow["id"], f"opsloop:answer:{second.id}", by=DEV)
    feed(client, "INTERACTION_CREATE", other)
    await settled()
    [modal] = fake.callbacks(other)
    assert modal["type"] == 9 and modal["data"]["title"] == "Your answer"
    typed = submit(fake, modal["data"], follow["id"], "also flush the cache", by=DEV)
    feed(client, "INTERACTION_CREATE", typed)
    await dispatcher.processed(4)
    await drain(ops, dispatcher, sender)
    await settled()

    log = (await ops.store.load_thread(request.thread_id)).events
    assert [e.comment for e in log if isinstance(e, HumanResponded)][-1] == "also flush the cache"
    assert fake.posted_in(thread)[-1]["content"] == "Done."
