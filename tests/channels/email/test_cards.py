"""Request cards by mail: ``email:`` notify places and escalation steps, over real SMTP/IMAP.

The request's thread is not an email thread (it came through the API), so the only mail
about it is the card: a reply to the card decides the request, once, and only from an
authenticated sender who may decide; a decision is told in every card's mail thread. The
runtime's clock is injected for escalation; nothing waits for real minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.events import (
    ConversationRef,
    HumanResponded,
    Identity,
    MessageReceived,
    ThreadStatus,
)
from bot.model.offline import OfflineModel
from bot.policy import ApprovalRule, Policy
from bot.store import Database, HumanRequest
from channels.email._inbound import idempotency_key
from tests.channels.email.conftest import ONCALL
from tests.channels.email.harness import Mail, bare, email_settings, human_mail, links_in, text_of
from tests.channels.email.servers import Dovecot, start_smtp
from tests.fakes import Clock
from workers.jobs import sweep

DEPLOY = "deploy checkout 1.4.2 to production"
LIST = "ops-list@example.com"
"""A notify address that is nobody's principal (a mailing list)."""
BOSS = "boss@example.com"
"""The engineering manager, asked by mail at the escalation step."""
INTERN = "intern@example.com"
"""Reads the list; may decide nothing."""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def card_policy(email_policy: Policy, request: pytest.FixtureRequest) -> Policy:
    """Production asks on-call, mails ONCALL and the list, and escalates to BOSS after 15m.

    With the parameter ``"two of on call"``: two of ONCALL and BOSS must approve, both are
    mailed a card, and nothing escalates.
    """
    roles = {**email_policy.roles, "eng-manager": (f"email:{BOSS}",)}
    if getattr(request, "param", None) == "two of on call":
        roles["oncall"] = (f"email:{ONCALL}", f"email:{BOSS}")
        two = ApprovalRule(
            name="production changes need two on-call people",
            tiers=("write",),
            environments=("production",),
            approval="required",
            approvers=("role:oncall",),
            min_approvals=2,
            notify=(f"email:{ONCALL}", f"email:{BOSS}"),
        )
        rules = (two, *email_policy.rules[1:])
        return email_policy.model_copy(update={"roles": roles, "rules": rules})
    production = ApprovalRule(
        name="production changes need on-call approval",
        tiers=("write",),
        environments=("production",),
        approval="required",
        approvers=("role:oncall",),
        notify=(f"email:{ONCALL}", f"email:{LIST}"),
        escalate_after="15m",
        escalate_to=("role:eng-manager",),
    )
    rules = (production, *email_policy.rules[1:])
    return email_policy.model_copy(update={"roles": roles, "rules": rules})


@pytest.fixture
async def mail(
    dovecot: Dovecot, mail_database: Database, make_ops: Any, card_policy: Policy, clock: Clock
) -> AsyncIterator[Mail]:
    """The email channel on a fresh mailbox, its watcher running, on the injected clock."""
    mailbox = f"t{uuid.uuid4().hex[:10]}"
    await dovecot.create(mailbox)
    smtp = await start_smtp()
    ops = await make_ops(mail_database, OfflineModel(), policy_=card_policy, clock=clock)
    harness = Mail(
        dovecot=dovecot,
        smtp=smtp,
        mailbox=mailbox,
        ops=ops,
        settings=email_settings(dovecot, smtp, mailbox),
    )
    await harness.start()
    yield harness
    await harness.stop()
    await smtp.close()


async def asked_through_the_api(mail: Mail) -> HumanRequest:
    """DEV asks for a production deploy through the API; the request is pending."""
    event = MessageReceived(
        idempotency_key=f"api:{uuid.uuid4().hex}",
        conversation=ConversationRef(channel="api", room="api", thread_key=uuid.uuid4().hex),
        sender=Identity(channel="web", user_id="dev-1"),
        text=DEPLOY,
    )
    await mail.context.accept(event)
    await mail.work()
    [request] = await mail.ops.store.human_requests()
    return request


def reply_to(card: Any, sender: str, body: str, **extra: Any) -> tuple[bytes, str]:
    card_id = bare(card["Message-ID"])
    return human_mail(
        sender,
        f"Re: {card['Subject']}",
        f"{body}\n\nOn Tue, opsloop wrote:\n> {text_of(card).splitlines()[0]}",
        in_reply_to=card_id,
        references=(card_id,),
        **extra,
    )


async def test_each_notify_address_gets_the_card_and_a_reply_approve_decides_once(
    mail: Mail,
) -> None:
    request = await asked_through_the_api(mail)
    [card] = await mail.sent_to(ONCALL)
    [listed] = await mail.sent_to(LIST)
    assert len(mail.sent) == 2  # one card each, nothing else: the thread is not by mail
    assert card["Subject"].startswith("Approval needed: ") and "checkout" in card["Subject"]
    assert card["In-Reply-To"] is None and card["Auto-Submitted"] == "auto-replied"
    text = text_of(card)
    assert "checkout" in text and "1.4.2" in text and f"Request: {request.id}" in text
    assert "APPROVE on the first line" in text and "REJECT: <your reason>" in text
    assert set(links_in(card)) == {"approve", "reject"}  # ONCALL may decide: signed links
    assert links_in(listed) == {}  # a link would decide as the list: none
    assert bare(card["Message-ID"]) != bare(listed["Message-ID"])
    refs = await mail.ops.store.message_refs(request.id, f"email:{ONCALL}")
    assert [r["message_id"] for r in refs] == [bare(card["Message-ID"])]

    raw, _ = reply_to(card, ONCALL, "APPROVE\nchecked the canary")
    await mail.deliver(raw)
    await mail.work()

    decided = await mail.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", f"email:{ONCALL}")
    assert decided.comment == "checked the canary"
    thread = await mail.ops.store.load_thread(request.thread_id)
    assert thread.status != ThreadStatus.PAUSED
    assert [e.approved_by for e in thread.events if e.kind == "tool_call"] == [f"email:{ONCALL}"]
    # Every card's mail thread is told, under the card.
    for address, mailed in ((ONCALL, card), (LIST, listed)):
        told = (await mail.sent_to(address, 2))[-1]
        assert told["In-Reply-To"] == mailed["Message-ID"]
        assert bare(mailed["Message-ID"]) in str(told["References"])
        assert told["Subject"] == f"Re: {mailed['Subject']}"
        assert f"Request {request.id} was approved by" in text_of(told)

    # A second approval by mail decides nothing more, and its sender hears why.
    again, _ = reply_to(card, ONCALL, "APPROVE")
    await mail.deliver(again)
    await mail.work()
    thread = await mail.ops.store.load_thread(request.thread_id)
    assert len([e for e in thread.events if isinstance(e, HumanResponded)]) == 1
    notice = (await mail.sent_to(ONCALL, 3))[-1]
    assert "already approved" in text_of(notice)
    assert notice["In-Reply-To"] != card["Message-ID"]  # it answers the second reply


@pytest.mark.parametrize("auth", [None, "fail", "forged"])
async def test_an_unauthenticated_reply_to_a_card_changes_nothing_and_mails_nobody(
    mail: Mail, auth: str | None
) -> None:
    request = await asked_through_the_api(mail)
    [card] = await mail.sent_to(ONCALL)
    sent_before, processed_before = len(mail.sent), len(mail.dispatcher.of("process"))
    raw, reply_id = reply_to(card, ONCALL, "APPROVE", auth=auth)
    await mail.deliver(raw)
    await mail.work()
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    assert len(mail.dispatcher.of("process")) == processed_before  # nothing enqueued
    assert len(mail.sent) == sent_before  # nobody is mailed, least of all the forger
    item = await mail.ops.store.inbox_item_by_key(idempotency_key(reply_id))
    assert item.status == "failed"
    assert f"approve of request {request.id} by {ONCALL} refused" in (item.error or "")
    assert item.thread_id == request.thread_id


async def test_a_card_reply_by_someone_who_may_not_decide_is_refused_with_a_mail(
    mail: Mail,
) -> None:
    request = await asked_through_the_api(mail)
    [listed] = await mail.sent_to(LIST)
    raw, _ = reply_to(listed, INTERN, "APPROVE")  # on the list, not on call
    await mail.deliver(raw)
    await mail.work()
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    [notice] = await mail.sent_to(INTERN)
    assert f"email:{INTERN} may not decide request {request.id}" in text_of(notice)

    chat, _ = reply_to(listed, ONCALL, "looks fine to me")  # not a decision either
    await mail.deliver(chat)
    await mail.work()
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    told = [m for m in await mail.sent_to(ONCALL, 2) if "did not decide" in text_of(m)]
    assert len(told) == 1 and "APPROVE" in text_of(told[0])


async def test_an_escalation_step_mails_its_people_and_their_reply_decides(
    mail: Mail, clock: Clock
) -> None:
    request = await asked_through_the_api(mail)
    clock.at(14)
    assert (await swept(mail))["escalated"] == 0
    assert [m for m in mail.sent if BOSS in str(m["To"])] == []

    clock.at(15)
    assert (await swept(mail))["escalated"] == 1
    assert (await swept(mail))["escalated"] == 0
    [card] = await mail.sent_to(BOSS)
    assert set(links_in(card)) == {"approve", "reject"}  # escalation made BOSS an approver
    thread = await mail.ops.store.load_thread(request.thread_id)
    [step] = [e for e in thread.events if e.kind == "request_escalated"]
    assert step.posted_to == (f"email:{BOSS}",)

    raw, _ = reply_to(card, BOSS, "REJECT: not during the freeze")
    await mail.deliver(raw)
    await mail.work()
    decided = await mail.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("rejected", f"email:{BOSS}")
    assert decided.comment == "not during the freeze"
    for address in (BOSS, ONCALL, LIST):
        told = (await mail.sent_to(address, 2))[-1]
        assert f"Request {request.id} was rejected by" in text_of(told)
        assert "not during the freeze" in text_of(told)


async def swept(mail: Mail) -> dict[str, int]:
    counts = await sweep(mail.ops, mail.dispatcher)
    assert counts is not None
    await mail.work()
    return counts


@pytest.mark.parametrize("card_policy", ["two of on call"], indirect=True)
async def test_one_approval_of_two_is_noted_in_every_card_thread_and_the_second_decides(
    mail: Mail,
) -> None:
    request = await asked_through_the_api(mail)
    [oncall_card] = await mail.sent_to(ONCALL)
    [boss_card] = await mail.sent_to(BOSS)

    raw, _ = reply_to(oncall_card, ONCALL, "APPROVE")
    await mail.deliver(raw)
    await mail.work()
    assert (await mail.ops.store.human_request(request.id)).status == "pending"
    for address, card in ((ONCALL, oncall_card), (BOSS, boss_card)):
        note = (await mail.sent_to(address, 2))[-1]
        assert note["In-Reply-To"] == card["Message-ID"]
        assert f"approved by email:{ONCALL}" in text_of(note) and "Still needed" in text_of(note)

    raw, _ = reply_to(boss_card, BOSS, "APPROVE")
    await mail.deliver(raw)
    await mail.work()
    decided = await mail.ops.store.human_request(request.id)
    assert decided.status == "approved"
    assert "was approved by" in text_of((await mail.sent_to(BOSS, 3))[-1])
