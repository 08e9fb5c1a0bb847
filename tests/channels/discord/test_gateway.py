"""End to end: real discord.py clients fed recorded-shape gateway dispatches, a real opsloop
(store, policy, runtime, offline model), the workers' jobs, and the fake Discord's record."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from bot.events import ActionReceived, HumanResponded, MessageReceived, ToolCalled, ToolReturned
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import APP_ID, CHANNEL_ID, GUILD_ID, ONCALL_ROLE
from tests.channels.discord.support import (
    ALICE,
    BOB,
    DEV,
    EVE,
    Harness,
    buttons,
    feed,
    settled,
    slash,
    submit,
)

DEPLOY = "deploy checkout 1.4.2 to production"


async def test_a_slash_command_is_deferred_then_answered_in_a_thread_from_its_response(
    fake: FakeDiscord, harness: Harness
) -> None:
    client = await harness.client()
    [sync] = fake.find("PUT", rf"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    assert [c["name"] for c in sync.body] == ["ops"]

    payload, thread = await harness.ask(client, "status of checkout in production")

    # Acknowledged first (deferred, public), then the response became the request message.
    calls = [c.path for c in fake.calls if payload["token"] in c.path]
    assert calls[0].endswith("/callback") and fake.callbacks(payload) == [{"type": 5}]
    assert fake.original(payload)["content"] == (
        f"<@{DEV}> asked: status of checkout in production"
    )
    [item_id] = harness.dispatcher.of("process")
    event = await harness.inbox(item_id)
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
    harness: Harness,
) -> None:
    prompt = await harness.prompted(DEPLOY)

    content, rid = prompt.message["content"], prompt.request.id
    assert f"`{rid}`" in content and "Action `deploy`" in content
    shown = content.split("```json\n")[1].split("\n```")[0]
    assert json.loads(shown) == {
        "service": "checkout",
        "version": "1.4.2",
        "environment": "production",
    }
    assert "Who may decide: `role:oncall`" in content
    assert {b["label"]: (b["custom_id"], b["style"]) for b in buttons(prompt.message)} == {
        "Approve": (f"opsloop:approve:{rid}", 3),
        "Approve with changes…": (f"opsloop:edit:{rid}", 2),
        "Reject": (f"opsloop:reject:{rid}", 4),
    }
    assert prompt.request.message_ref == {
        "channel_id": prompt.thread,
        "message_id": prompt.message["id"],
    }


async def test_an_allowed_click_resumes_the_thread_runs_the_action_once_and_edits_the_message(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)

    # ALICE is on call through her guild role.
    approve = harness.click(prompt, "approve", by=ALICE)
    item_id = await harness.ingest(prompt.client, "INTERACTION_CREATE", approve)
    assert fake.callbacks(approve) == [{"type": 5, "data": {"flags": 64}}]  # ephemeral, at once
    event = await harness.inbox(item_id)
    assert isinstance(event, ActionReceived) and event.actor.groups == (ONCALL_ROLE,)
    await harness.settle()

    [verdict] = fake.followups(approve)
    assert verdict["flags"] == 64 and verdict["content"].startswith("✅ Approved")
    edited = fake.messages[prompt.message["id"]]
    assert f"✅ **Approved** by <@{ALICE}>" in edited["content"]
    assert all(b["disabled"] for b in buttons(edited))
    log = await harness.log(prompt.request)
    runs = [e for e in log if isinstance(e, ToolCalled) and e.tool == "deploy"]
    assert [(r.arguments["version"], r.approved_by) for r in runs] == [
        ("1.4.2", f"discord:{ALICE}")
    ]
    assert any(isinstance(e, ToolReturned) and e.call_id == runs[0].call_id for e in log)
    # the agent's answer, in the thread
    assert "1.4.2" in fake.posted_in(prompt.thread)[-1]["content"]


async def test_a_disallowed_click_gets_an_ephemeral_refusal_and_changes_nothing(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)
    shown = prompt.message["id"]
    before = (len(fake.posted_in(prompt.thread)), json.dumps(fake.messages[shown]))

    approve = harness.click(prompt, "approve", by=EVE)
    await harness.ingest(prompt.client, "INTERACTION_CREATE", approve)
    calls_before_work = len(fake.calls)
    await harness.settle()

    [refusal] = fake.followups(approve)
    assert refusal["flags"] == 64
    assert f"discord:{EVE} may not decide request {prompt.request.id}" in refusal["content"]
    assert (len(fake.posted_in(prompt.thread)), json.dumps(fake.messages[shown])) == before
    assert [c.path for c in fake.calls[calls_before_work:]] == [
        f"/webhooks/{APP_ID}/{approve['token']}"
    ]  # the delivery of the refusal notice posted nothing in the thread
    assert (await harness.ops.store.human_request(prompt.request.id)).status == "pending"


async def test_a_second_click_is_told_it_was_already_decided(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)

    await harness.press(prompt, "approve", by=ALICE)
    second = await harness.press(prompt, "approve", by=BOB)
    await settled()

    [told] = fake.followups(second)
    assert told["flags"] == 64
    rid = prompt.request.id
    assert f"request {rid} was already approved by discord:{ALICE}" in told["content"]
    log = await harness.log(prompt.request)
    assert len([e for e in log if isinstance(e, ToolCalled)]) == 1
    assert [e.actor.user_id for e in log if isinstance(e, HumanResponded)] == [ALICE]


async def test_a_button_posted_before_a_restart_works_with_a_new_client(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)
    await prompt.client.close()

    after = await harness.client()  # a new process: nothing in memory about the button
    approve = await harness.press(prompt, "approve", by=BOB, client=after)
    await settled()

    assert fake.followups(approve)[0]["content"].startswith("✅ Approved")
    assert f"✅ **Approved** by <@{BOB}>" in fake.messages[prompt.message["id"]]["content"]
    decided = await harness.ops.store.human_request(prompt.request.id)
    assert decided.decided_by == f"discord:{BOB}"


async def test_reject_asks_for_a_reason_in_a_modal_whose_answer_survives_a_restart(
    fake: FakeDiscord, harness: Harness
) -> None:
    prompt = await harness.prompted(DEPLOY)
    rid = prompt.request.id

    modal = await harness.open_modal(prompt, "reject", by=ALICE)
    assert modal["type"] == 9 and modal["data"]["custom_id"] == f"opsloop:reject:{rid}"
    # nothing ingested before the reason is given
    assert len(harness.dispatcher.of("process")) == 1

    await prompt.client.close()
    restarted = await harness.client()
    answer = submit(fake, modal["data"], prompt.message["id"], "freeze until Monday", by=ALICE)
    item_id = await harness.ingest(restarted, "INTERACTION_CREATE", answer)
    await harness.settle()

    event = await harness.inbox(item_id)
    assert (event.decision, event.comment) == ("reject", "freeze until Monday")
    assert fake.followups(answer)[0]["content"].startswith("✅ Rejected")
    edited = fake.messages[prompt.message["id"]]["content"]
    assert f"❌ **Rejected** by <@{ALICE}>" in edited
    assert "freeze until Monday" in edited
    log = await harness.log(prompt.request)
    assert not [e for e in log if isinstance(e, ToolCalled)]
    [result] = [e for e in log if isinstance(e, ToolReturned)]
    assert isinstance(result.output, dict)
    assert (result.output["rejected"], result.output["reason"]) == (True, "freeze until Monday")


async def test_a_role_is_read_from_the_click_even_before_discord_sent_the_guild(
    fake: FakeDiscord, harness: Harness
) -> None:
    """Regression: roles were read from discord.py's guild cache, which is empty until the
    guild's data arrives; a role-based approver clicking then was refused."""
    prompt = await harness.prompted(DEPLOY)
    fresh = await harness.client(guild=False)  # just reconnected

    approve = await harness.press(prompt, "approve", by=ALICE, client=fresh)
    await settled()

    [item_id] = harness.dispatcher.of("process")[-1:]
    event = await harness.inbox(item_id)
    assert isinstance(event, ActionReceived) and event.actor.groups == (ONCALL_ROLE,)
    assert fake.followups(approve)[0]["content"].startswith("✅ Approved")
    decided = await harness.ops.store.human_request(prompt.request.id)
    assert decided.decided_by == f"discord:{ALICE}"


async def test_an_interaction_is_acknowledged_before_a_slow_ingest_finishes(
    fake: FakeDiscord, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow database (or enqueue) must not make the acknowledgement late: Discord drops
    an interaction not acknowledged within 3 seconds (10062 Unknown interaction)."""
    client = await harness.client()
    fake.ack_window = 1.0  # the fake refuses anything slower, with 10062
    ingest = harness.ops.ingest

    async def slow(event: Any) -> Any:
        await asyncio.sleep(fake.ack_window + 0.5)  # a database that takes its time
        return await ingest(event)

    monkeypatch.setattr(harness.ops, "ingest", slow)
    command = slash(fake, "status of checkout in production")
    feed(client, "INTERACTION_CREATE", command)
    await harness.dispatcher.processed(1)
    await settled()

    assert fake.callbacks(command) == [{"type": 5}]
    assert fake.original(command)["content"].endswith("asked: status of checkout in production")


async def test_the_fake_refuses_a_late_acknowledgement_and_an_oversized_form(
    fake: FakeDiscord,
) -> None:
    """The fake refuses what Discord refuses, so the suite fails where production would."""
    late = slash(fake, "status")
    fake.skew += 3.5
    async with aiohttp.ClientSession() as http:
        base = fake.url
        path = f"{base}/interactions/{late['id']}/{late['token']}/callback"
        async with http.post(path, json={"type": 5}) as answer:
            assert (answer.status, (await answer.json())["code"]) == (404, 10062)
        too_long = {"content": "x" * 2001, "components": [{"type": 1, "components": []}] * 6}
        async with http.post(f"{base}/channels/{CHANNEL_ID}/messages", json=too_long) as answer:
            refused = await answer.json()
        assert (answer.status, refused["code"]) == (400, 50035)
        assert set(refused["errors"]) == {"content", "components"}
    assert fake.posted_in(CHANNEL_ID) == []
