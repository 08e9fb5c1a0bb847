"""Escalation through Discord: each step's people get the card in a DM, edited once decided.

The runtime's clock is injected: the test moves it past each escalation step and runs the
sweep as the scheduler would; nothing waits for real minutes.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.app import Opsloop
from bot.events import RequestEscalated, ThreadStatus
from bot.model import Model
from bot.policy import ApprovalRule, Policy
from bot.store import Database
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import ONCALL_ROLE
from tests.channels.discord.support import BOB, Harness, OpsloopClient, buttons, member
from tests.fakes import Clock
from workers.jobs import sweep

DEPLOY = "deploy checkout 1.4.2 to production"
SECOND = "1100000000000000021"
"""On call second: asked in a DM at the first escalation step."""
BOSS = "1100000000000000022"
"""The engineering manager: asked in a DM at the second step."""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def oncall_policy(policy: Policy) -> Policy:
    """On call in Discord; production escalates every 15 minutes to people on Discord."""
    roles = {
        **policy.roles,
        "oncall": (f"discord-group:{ONCALL_ROLE}", f"discord:{BOB}"),
        "oncall-secondary": (f"discord:{SECOND}",),
        "eng-manager": (f"discord:{BOSS}",),
    }
    production = ApprovalRule(
        name="production changes need on-call approval",
        tiers=("write",),
        environments=("production",),
        approval="required",
        approvers=("role:oncall",),
        escalate_after="15m",
        escalate_to=("role:oncall-secondary", "role:eng-manager"),
    )
    return policy.model_copy(update={"roles": roles, "rules": (production, *policy.rules[1:])})


@pytest.fixture
async def ops(
    sqlite_database: Database, make_ops: Any, oncall_policy: Policy, model: Model, clock: Clock
) -> Opsloop:
    ops: Opsloop = await make_ops(sqlite_database, model, policy_=oncall_policy, clock=clock)
    return ops


async def swept(harness: Harness) -> int:
    counts = await sweep(harness.ops, harness.dispatcher)
    assert counts is not None
    await harness.work()
    return counts["escalated"]


def dm_card(fake: FakeDiscord, person: str) -> dict[str, Any]:
    """The one message with buttons in the DM the bot opened with ``person``."""
    [card] = [m for m in fake.posted_in(fake.dms[person]) if m["components"]]
    return card


async def click_in_dm(
    harness: Harness, client: OpsloopClient, card: dict[str, Any], *, by: str, name: str
) -> None:
    """``by`` clicks Approve on a card in their DM (a user, no guild), worked through."""
    [approve] = [b for b in buttons(card) if b["custom_id"].startswith("opsloop:approve:")]
    data = {"custom_id": approve["custom_id"], "component_type": 2}
    pressed = harness.fake.interaction(
        3,
        data,
        by=member(by, name),
        channel_id=card["channel_id"],
        message=copy.deepcopy(card),
    )
    await harness.ingest(client, "INTERACTION_CREATE", pressed)
    await harness.settle()


async def test_each_step_asks_its_people_in_a_dm_and_every_card_is_edited_once_decided(
    fake: FakeDiscord, harness: Harness, clock: Clock
) -> None:
    prompt = await harness.prompted(DEPLOY)
    request = prompt.request
    assert not fake.find("POST", r"/users/@me/channels")

    clock.at(14)
    assert await swept(harness) == 0
    assert not fake.find("POST", r"/users/@me/channels")

    clock.at(15)
    assert await swept(harness) == 1
    assert await swept(harness) == 0  # a second sweep takes no step twice
    thread = await harness.ops.store.load_thread(request.thread_id)
    [first] = [e for e in thread.events if isinstance(e, RequestEscalated)]
    assert (first.level, first.to, first.posted_to) == (
        1,
        ("role:oncall-secondary",),
        (f"discord:@{SECOND}",),
    )
    [opened] = fake.find("POST", r"/users/@me/channels")
    assert opened.body == {"recipient_id": SECOND}
    second_card = dm_card(fake, SECOND)
    assert "checkout" in second_card["content"] and "1.4.2" in second_card["content"]
    assert await harness.ops.store.message_refs(request.id, f"discord:@{SECOND}") == [
        {"channel_id": fake.dms[SECOND], "message_id": second_card["id"]}
    ]

    clock.at(30)
    assert await swept(harness) == 1
    boss_card = dm_card(fake, BOSS)
    assert [c.body for c in fake.find("POST", r"/users/@me/channels")] == [
        {"recipient_id": SECOND},
        {"recipient_id": BOSS},
    ]

    await click_in_dm(harness, prompt.client, boss_card, by=BOSS, name="boss")

    decided = await harness.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", f"discord:{BOSS}")
    thread = await harness.ops.store.load_thread(request.thread_id)
    assert thread.status != ThreadStatus.PAUSED
    assert [e.approved_by for e in thread.events if e.kind == "tool_call"] == [f"discord:{BOSS}"]
    edited = {c.path for c in fake.find("PATCH", r"/channels/\d+/messages/\d+")}
    assert edited == {
        f"/channels/{prompt.message['channel_id']}/messages/{prompt.message['id']}",
        f"/channels/{fake.dms[SECOND]}/messages/{second_card['id']}",
        f"/channels/{fake.dms[BOSS]}/messages/{boss_card['id']}",
    }
    for card in (prompt.message, second_card, boss_card):
        now = fake.messages[card["id"]]
        assert all(b["disabled"] for b in buttons(now)), now
        assert "approved" in now["content"].lower()


async def test_a_click_in_a_dm_before_that_step_is_taken_decides_nothing(
    fake: FakeDiscord, harness: Harness, clock: Clock
) -> None:
    prompt = await harness.prompted(DEPLOY)
    clock.at(15)
    assert await swept(harness) == 1
    # The manager's step is not due yet: a card they were never sent cannot make them one.
    await click_in_dm(harness, prompt.client, dm_card(fake, SECOND), by=BOSS, name="boss")
    assert (await harness.ops.store.human_request(prompt.request.id)).status == "pending"
    await click_in_dm(harness, prompt.client, dm_card(fake, SECOND), by=SECOND, name="second")
    decided = await harness.ops.store.human_request(prompt.request.id)
    assert (decided.status, decided.decided_by) == ("approved", f"discord:{SECOND}")


async def test_a_person_who_takes_no_dms_fails_that_card_for_good_and_holds_nothing_back(
    fake: FakeDiscord, harness: Harness, clock: Clock
) -> None:
    fake.closed_dms.add(SECOND)
    prompt = await harness.prompted(DEPLOY)
    clock.at(15)
    assert await swept(harness) == 1
    assert fake.posted_in(fake.dms[SECOND]) == []
    assert await harness.ops.store.message_refs(prompt.request.id) == []
    assert await harness.ops.store.count_outbound("failed") == 1
    assert await harness.ops.store.pending_outbound(due_only=False) == []

    # the thread's own card still works, and is still edited once decided
    await harness.press(prompt, "approve", by=BOB)
    assert (await harness.ops.store.human_request(prompt.request.id)).status == "approved"
    [edit] = fake.find("PATCH", r"/channels/\d+/messages/\d+")
    assert edit.path.endswith(f"/messages/{prompt.message['id']}")
