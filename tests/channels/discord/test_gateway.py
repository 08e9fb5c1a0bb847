"""End to end: real discord.py clients fed recorded-shape gateway dispatches, a real opsloop
(store, policy, runtime, offline model), the workers' jobs, and the fake Discord's record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.app import Opsloop
from bot.events import ActionReceived, HumanResponded, MessageReceived, ToolCalled, ToolReturned
from channels.discord import DiscordSender, DiscordSettings
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import APP_ID, CHANNEL_ID, GUILD_ID, ONCALL_ROLE
from tests.channels.discord.support import (
    ALICE,
    BOB,
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

DEPLOY = "deploy checkout 1.4.2 to production"


@pytest.fixture
def sender(discord_settings: DiscordSettings) -> DiscordSender:
    return DiscordSender(discord_settings)


async def _inbox(ops: Opsloop, item_id: int) -> Any:
    return (await ops.store.inbox_item(item_id)).event


async def ask(
    fake: FakeDiscord,
    client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
    text: str,
) -> tuple[dict[str, Any], str]:
    """``/ops text`` by DEV, worked through; the interaction and its Discord thread's id."""
    payload = slash(fake, text)
    count = len(dispatcher.of("process"))
    feed(client, "INTERACTION_CREATE", payload)
    await dispatcher.processed(count + 1)
    await drain(ops, dispatcher, sender)
    return payload, fake.original(payload)["id"]


def prompt_in(fake: FakeDiscord, thread: str) -> dict[str, Any]:
    [prompt] = [m for m in fake.posted_in(thread) if m["components"]]
    return prompt


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["label"]: b for row in message["components"] for b in row["components"]}


async def test_a_slash_command_is_deferred_then_answered_in_a_thread_from_its_response(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client()
    [sync] = fake.find("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    assert [c["name"] for c in sync.body] == ["ops"]

    payload, thread = await ask(
        fake, client, ops, dispatcher, sender, "status of checkout in production"
    )

    # Acknowledged first (deferred, public), then the response became the request message.
    calls = [c.path for c in fake.calls if payload["token"] in c.path]
    assert calls[0].endswith("/callback") and fake.callbacks(payload) == [{"type": 5}]
    assert fake.original(payload)["content"] == (
        f"<@{DEV}> asked: status of checkout in production"
    )
    [item_id] = dispatcher.of("process")
    event = await _inbox(ops, item_id)
    assert isinstance(event, MessageReceived)
    assert event.idempotency_key == f"discord:interaction:{payload['id']}"
    assert (event.conversation.tenant, event.conversation.room) == (GUILD_ID, CHANNEL_ID)
    assert event.conversation.thread_key == thread
    assert event.sender.principal == f"discord:{DEV}"

    # The answer went into a thread started from that message, mentioning nobody.
    [start] = fake.find("POST", rf"/channels/{CHANNEL_ID}/messages/{thread}/threads")
    assert start.body["name"] == "status of checkout in production"
    [answer] = fake.posted_in(thread)
    assert "checkout 1.4.1 in production: healthy" in answer["content"]
    posts = fake.find("POST", rf"/channels/{thread}/messages")  # unknown channel, then posted
    assert [c.body["allowed_mentions"] for c in posts] == [{"parse": []}] * 2


async def test_a_risky_request_posts_the_exact_action_with_approve_and_reject(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client()
    _, thread = await ask(fake, client, ops, dispatcher, sender, DEPLOY)

    prompt = prompt_in(fake, thread)
    [request] = await ops.store.human_requests()
    rid = request.id
    assert f"`{rid}`" in prompt["content"] and "Action `deploy`" in prompt["content"]
    shown = prompt["content"].split("```json\n")[1].split("\n```")[0]
    assert json.loads(shown) == {
        "service": "checkout",
        "version": "1.4.2",
        "environment": "production",
    }
    assert "Who may decide: `role:oncall`" in prompt["content"]
    assert {k: (b["custom_id"], b["style"]) for k, b in buttons(prompt).items()} == {
        "Approve": (f"opsloop:approve:{rid}", 3),
        "Reject": (f"opsloop:reject:{rid}", 4),
    }
    assert request.message_ref == {"channel_id": thread, "message_id": prompt["id"]}


async def test_an_allowed_click_resumes_the_thread_runs_the_action_once_and_edits_the_message(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client()
    _, thread = await ask(fake, client, ops, dispatcher, sender, DEPLOY)
    prompt = prompt_in(fake, thread)
    [request] = await ops.store.human_requests()

    # ALICE is on call through her guild role.
    approve = click(fake, prompt["id"], f"opsloop:approve:{request.id}", by=ALICE)
    feed(client, "INTERACTION_CREATE", approve)
    [_, item_id] = await dispatcher.processed(2)
    assert fake.callbacks(approve) == [{"type": 5, "data": {"flags": 64}}]  # ephemeral, at once
    event = await _inbox(ops, item_id)
    assert isinstance(event, ActionReceived) and event.actor.groups == (ONCALL_ROLE,)
    await drain(ops, dispatcher, sender)
    await settled()

    [verdict] = fake.followups(approve)
    assert verdict["flags"] == 64 and verdict["content"].startswith("✅ Approved")
    edited = fake.messages[prompt["id"]]
    assert f"✅ **Approved** by <@{ALICE}>" in edited["content"]
    assert all(b["disabled"] for b in buttons(edited).values())
    log = (await ops.store.load_thread(request.thread_id)).events
    runs = [e for e in log if isinstance(e, ToolCalled) and e.tool == "deploy"]
    assert [(r.arguments["version"], r.approved_by) for r in runs] == [
        ("1.4.2", f"discord:{ALICE}")
    ]
    assert any(isinstance(e, ToolReturned) and e.call_id == runs[0].call_id for e in log)
    assert "1.4.2" in fake.posted_in(thread)[-1]["content"]  # the agent's answer, in the thread


async def test_a_disallowed_click_gets_an_ephemeral_refusal_and_changes_nothing(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client()
    _, thread = await ask(fake, client, ops, dispatcher, sender, DEPLOY)
    prompt = prompt_in(fake, thread)
    before = (len(fake.posted_in(thread)), json.dumps(fake.messages[prompt["id"]]))
    [request] = await ops.store.human_requests()

    approve = click(fake, prompt["id"], f"opsloop:approve:{request.id}", by=EVE)
    feed(client, "INTERACTION_CREATE", approve)
    await dispatcher.processed(2)
    calls_before_work = len(fake.calls)
    await drain(ops, dispatcher, sender)
    await settled()

    [refusal] = fake.followups(approve)
    assert refusal["flags"] == 64
    assert f"discord:{EVE} may not decide request {request.id}" in refusal["content"]
    assert (len(fake.posted_in(thread)), json.dumps(fake.messages[prompt["id"]])) == before
    assert [c.path for c in fake.calls[calls_before_work:]] == [
        f"/webhooks/{APP_ID}/{approve['token']}"
    ]  # the delivery of the refusal notice posted nothing in the thread
    assert (await ops.store.human_request(request.id)).status == "pending"


async def test_a_second_click_is_told_it_was_already_decided(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client()
    _, thread = await ask(fake, client, ops, dispatcher, sender, DEPLOY)
    prompt = prompt_in(fake, thread)
    [request] = await ops.store.human_requests()
    custom = f"opsloop:approve:{request.id}"

    first = click(fake, prompt["id"], custom, by=ALICE)
    feed(client, "INTERACTION_CREATE", first)
    await dispatcher.processed(2)
    await drain(ops, dispatcher, sender)
    second = click(fake, prompt["id"], custom, by=BOB)
    feed(client, "INTERACTION_CREATE", second)
    await dispatcher.processed(3)
    await drain(ops, dispatcher, sender)
    await settled()

    [told] = fake.followups(second)
    assert told["flags"] == 64
    assert f"request {request.id} was already approved by discord:{ALICE}" in told["content"]
    log = (await ops.store.load_thread(request.thread_id)).events
    assert len([e for e in log if isinstance(e, ToolCalled)]) == 1
    assert [e.actor.user_id for e in log if isinstance(e, HumanResponded)] == [ALICE]


async def test_a_button_posted_before_a_restart_works_with_a_new_client(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    before = await make_client()
    _, thread = await ask(fake, before, ops, dispatcher, sender, DEPLOY)
    prompt = prompt_in(fake, thread)
    [request] = await ops.store.human_requests()
    await before.close()

    after = await make_client()  # a new process: nothing in memory about the button
    approve = click(fake, prompt["id"], f"opsloop:approve:{request.id}", by=BOB)
    feed(after, "INTERACTION_CREATE", approve)
    await dispatcher.processed(2)
    await drain(ops, dispatcher, sender)
    await settled()

    assert fake.followups(approve)[0]["content"].startswith("✅ Approved")
    assert f"✅ **Approved** by <@{BOB}>" in fake.messages[prompt["id"]]["content"]
    assert (await ops.store.human_request(request.id)).decided_by == f"discord:{BOB}"


async def test_reject_asks_for_a_reason_in_a_modal_whose_answer_survives_a_restart(
    fake: FakeDiscord,
    make_client: Any,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
) -> None:
    client = await make_client()
    _, thread = await ask(fake, client, ops, dispatcher, sender, DEPLOY)
    prompt = prompt_in(fake, thread)
    [request] = await ops.store.human_requests()

    reject = click(fake, prompt["id"], f"opsloop:reject:{request.id}", by=ALICE)
    feed(client, "INTERACTION_CREATE", reject)
    await settled()
    [modal] = fake.callbacks(reject)
    assert modal["type"] == 9 and modal["data"]["custom_id"] == f"opsloop:reject:{request.id}"
    assert len(dispatcher.of("process")) == 1  # nothing ingested before the reason is given

    await client.close()
    restarted = await make_client()
    answer = submit(fake, modal["data"], prompt["id"], "freeze until Monday", by=ALICE)
    feed(restarted, "INTERACTION_CREATE", answer)
    [_, item_id] = await dispatcher.processed(2)
    await drain(ops, dispatcher, sender)
    await settled()

    event = await _inbox(ops, item_id)
    assert (event.decision, event.comment) == ("reject", "freeze until Monday")
    assert fake.followups(answer)[0]["content"].startswith("✅ Rejected")
    assert f"❌ **Rejected** by <@{ALICE}>" in fake.messages[prompt["id"]]["content"]
    assert "freeze until Monday" in fake.messages[prompt["id"]]["content"]
    log = (await ops.store.load_thread(request.thread_id)).events
    assert not [e for e in log if isinstance(e, ToolCalled)]
    [result] = [e for e in log if isinstance(e, ToolReturned)]
    assert isinstance(result.output, dict)
    assert (result.output["rejected"], result.output["reason"]) == (True, "freeze until Monday")
