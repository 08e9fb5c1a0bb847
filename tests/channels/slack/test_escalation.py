"""Escalation and notify places through Slack: cards in a room and in DMs, all updated once decided.

The runtime's clock is injected: the test moves it past each escalation step and runs the
sweep as the scheduler would; nothing waits for real minutes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.events import RequestEscalated, ThreadStatus, utcnow
from bot.policy import ApprovalRule, Policy
from bot.store import HumanRequest
from bot.store._tables import OutboxRow
from tests.channels.slack import payloads
from tests.channels.slack.conftest import MakeSlack, SlackHarness
from tests.channels.slack.fake_slack import Call
from tests.channels.slack.payloads import CHANNEL, TOP_TS
from tests.channels.slack.test_decisions import DEPLOY, button
from tests.fakes import Clock
from workers.jobs import sweep

ROOM = "#deploys"


@pytest.fixture
def oncall_policy(policy: Policy) -> Policy:
    """On call in Slack; production asks #deploys too and escalates every 15 minutes."""
    roles = {
        **policy.roles,
        "oncall": (*policy.roles["oncall"], "slack:U_ONCALL", "slack:U_ONCALL2"),
        "oncall-secondary": ("slack:U_SECOND",),
        "eng-manager": ("slack:U_BOSS",),
    }
    production = ApprovalRule(
        name="production changes need on-call approval",
        tiers=("write",),
        environments=("production",),
        approval="required",
        approvers=("role:oncall",),
        escalate_after="15m",
        escalate_to=("role:oncall-secondary", "role:eng-manager"),
        notify=(f"slack:{ROOM}",),
    )
    return policy.model_copy(update={"roles": roles, "rules": (production, *policy.rules[1:])})


def click_card(card: Call, user: str, action_ts: str, action: str = "opsloop_approve") -> dict:
    """``user`` clicking a button of a card posted outside the thread (its own thread)."""
    ts, channel = card.answer["ts"], card.answer["channel"]
    return payloads.block_actions(
        {**button(card, action), "action_ts": action_ts},
        user=user,
        message_ts=ts,
        thread_ts=ts,
        channel=channel,
        message_text=card.params["text"],
    )


async def swept(slack: SlackHarness) -> dict[str, int]:
    counts = await sweep(slack.ops, slack.dispatcher)
    assert counts is not None
    await slack.work()
    return counts


def escalations(thread: object) -> list[RequestEscalated]:
    return [e for e in thread.events if isinstance(e, RequestEscalated)]  # type: ignore[attr-defined]


async def test_a_notify_room_gets_the_card_a_click_there_decides_once_and_every_card_is_updated(
    make_slack: MakeSlack,
) -> None:
    slack = await make_slack()
    request, _ = await asked_with_room(slack)
    [thread_card, room_card] = slack.posted()
    assert (thread_card.params["channel"], thread_card.params["thread_ts"]) == (CHANNEL, TOP_TS)
    assert room_card.params["channel"] == ROOM
    assert "thread_ts" not in room_card.params  # a card of its own in the room
    assert request.id in str(room_card.params["blocks"])

    approve = click_card(room_card, "U_ONCALL", "1700000300.1")
    await slack.interact(approve)
    await slack.interact(approve)  # Slack redelivers: one decision still
    await slack.interact(click_card(room_card, "U_ONCALL2", "1700000301.1"))
    await slack.work()

    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", "slack:U_ONCALL")
    thread = await slack.ops.store.load_thread(request.thread_id)
    assert [e.approved_by for e in thread.events if e.kind == "tool_call"] == ["slack:U_ONCALL"]
    updated = {(u.params["channel"], u.params["ts"]) for u in slack.fake.of("chat.update")}
    assert updated == {
        (CHANNEL, thread_card.answer["ts"]),
        (ROOM, room_card.answer["ts"]),
    }
    assert len(slack.fake.of("chat.update")) == 2
    assert all(":white_check_mark:" in u.params["text"] for u in slack.fake.of("chat.update"))
    [told] = slack.fake.of("chat.postEphemeral")  # the second approver: already decided
    assert told.params["user"] == "U_ONCALL2" and "already approved" in told.params["text"]


async def asked_with_room(slack: SlackHarness) -> tuple[HumanRequest, Call]:
    await slack.event(payloads.app_mention(DEPLOY), event_id="Ev1")
    await slack.work()
    request = await slack.only_request()
    return request, slack.posted()[0]


async def test_an_undecided_request_escalates_step_by_step_to_dms_and_the_new_approver_decides(
    make_slack: MakeSlack,
) -> None:
    clock = Clock()
    slack = await make_slack(clock=clock)
    request, _ = await asked_with_room(slack)
    assert len(slack.posted()) == 2

    clock.at(14)
    assert (await swept(slack))["escalated"] == 0
    await slack.interact(click_card(slack.posted()[1], "U_SECOND", "1700000400.1"))
    await slack.work()
    assert (await slack.ops.store.human_request(request.id)).status == "pending"  # not yet theirs

    clock.at(15)
    assert (await swept(slack))["escalated"] == 1
    assert (await swept(slack))["escalated"] == 0  # a second sweep takes no step twice
    thread = await slack.ops.store.load_thread(request.thread_id)
    [first] = escalations(thread)
    assert (first.level, first.to, first.posted_to) == (
        1,
        ("role:oncall-secondary",),
        ("slack:U_SECOND",),
    )
    assert first.next_at == clock.start + timedelta(minutes=30)
    [opened] = slack.fake.of("conversations.open")
    assert opened.params["users"] == "U_SECOND"
    dm_second = slack.posted()[-1]
    assert dm_second.params["channel"] == "DU_SECOND"
    stored = await slack.ops.store.human_request(request.id)
    assert stored.escalation_level == 1 and stored.next_escalation_at == first.next_at

    clock.at(30)
    assert (await swept(slack))["escalated"] == 1
    thread = await slack.ops.store.load_thread(request.thread_id)
    assert [(e.level, e.to) for e in escalations(thread)] == [
        (1, ("role:oncall-secondary",)),
        (2, ("role:eng-manager",)),
    ]
    dm_boss = slack.posted()[-1]
    assert dm_boss.params["channel"] == "DU_BOSS"
    clock.at(45)
    assert (await swept(slack))["escalated"] == 0  # the chain is used up; expiry is next

    await slack.interact(click_card(dm_boss, "U_DEV", "1700000500.1"))  # outside every step
    await slack.work()
    assert (await slack.ops.store.human_request(request.id)).status == "pending"
    await slack.interact(click_card(dm_boss, "U_BOSS", "1700000501.1"))
    await slack.work()

    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", "slack:U_BOSS")
    assert await slack.thread_status(decided) != ThreadStatus.PAUSED
    updated = {(u.params["channel"], u.params["ts"]) for u in slack.fake.of("chat.update")}
    assert updated == {
        (c.answer["channel"], c.answer["ts"]) for c in [*slack.posted()[:2], dm_second, dm_boss]
    }


async def test_after_the_last_step_the_request_still_expires_when_it_always_did(
    make_slack: MakeSlack,
) -> None:
    clock = Clock()
    slack = await make_slack(clock=clock)
    request, _ = await asked_with_room(slack)
    for minutes in (15, 30):
        clock.at(minutes)
        await swept(slack)
    clock.at(59)
    assert (await swept(slack))["expired"] == 0
    clock.at(61)
    counts = await swept(slack)
    assert (counts["expired"], counts["escalated"]) == (1, 0)
    expired = await slack.ops.store.human_request(request.id)
    assert expired.status == "expired"
    assert len(slack.fake.of("chat.update")) == 4  # thread, room and both DMs
    assert all("xpired" in u.params["text"] for u in slack.fake.of("chat.update"))


class Crash(BaseException):
    """The delivering process dies here (nothing after it runs, nothing catches it)."""


async def test_a_crash_between_posting_a_card_and_recording_it_decides_once(
    make_slack: MakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room card is posted, then the process dies before its ref is stored.

    The retry posts the card again (the first is not found: it is only in Slack). A click on
    either decides the request once; the change is made once, and the card that was recorded
    is updated. The stray first card stays behind with live buttons, whose clicks are refused.
    """
    slack = await make_slack()
    real = slack.ops.store.add_message_ref
    crashed: list[str] = []

    async def add_message_ref(request_id: str, place: str, ref: dict) -> bool:
        if not crashed:
            crashed.append(place)
            raise Crash
        return await real(request_id, place, ref)

    monkeypatch.setattr(slack.ops.store, "add_message_ref", add_message_ref)
    await slack.event(payloads.app_mention(DEPLOY), event_id="Ev1")
    with pytest.raises(Crash):
        await slack.work()
    assert crashed == [f"slack:{ROOM}"]
    # The claim of the dead sender lapses (as it would after its hold), and the sweep
    # hands the card back for delivery.
    async with slack.ops.store.db.session() as session:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.status == "sending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    assert await slack.ops.store.release_stuck_outbound() == 1
    await slack.work()  # the delivery is tried again
    request = await slack.only_request()
    stray, kept = [c for c in slack.posted() if c.params["channel"] == ROOM]
    assert await slack.ops.store.message_refs(request.id, f"slack:{ROOM}") == [
        {"team": payloads.TEAM, "channel": ROOM, "ts": kept.answer["ts"]}
    ]

    await slack.interact(click_card(stray, "U_ONCALL", "1700000300.1"))
    await slack.interact(click_card(kept, "U_ONCALL2", "1700000301.1"))
    await slack.work()
    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", "slack:U_ONCALL")
    thread = await slack.ops.store.load_thread(request.thread_id)
    assert [e.approved_by for e in thread.events if e.kind == "tool_call"] == ["slack:U_ONCALL"]
    updated = {(u.params["channel"], u.params["ts"]) for u in slack.fake.of("chat.update")}
    assert (ROOM, kept.answer["ts"]) in updated
