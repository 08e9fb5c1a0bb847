"""One approval of several, by mail: a short note in the same thread says who is still needed."""

from __future__ import annotations

import pytest

from bot.events import HumanDecision, Identity, ThreadStatus, ToolCalled
from bot.policy import ApprovalRule, Policy
from tests.channels.email.conftest import DEV, ONCALL
from tests.channels.email.harness import bare, human_mail, text_of
from tests.channels.email.test_approvals import paused_on_deploy
from tests.fakes import action_event


@pytest.fixture
def email_policy(policy: Policy) -> Policy:
    """On call by mail, and production changes needing two on-call people."""
    roles = dict(policy.roles)
    roles["oncall"] = (*roles["oncall"], f"email:{ONCALL}")
    two = ApprovalRule(
        name="production changes need two on-call people",
        tiers=("write",),
        environments=("production",),
        approval="required",
        approvers=("role:oncall",),
        min_approvals=2,
    )
    return policy.model_copy(update={"roles": roles, "rules": (two, *policy.rules[1:])})


async def test_a_partial_approval_by_reply_is_noted_in_the_thread(mail):
    first_id, request, ask = await paused_on_deploy(mail)
    reply, _ = human_mail(
        ONCALL,
        "Re: deploy please",
        "APPROVE",
        in_reply_to=bare(ask["Message-ID"]),
        references=(first_id, bare(ask["Message-ID"])),
    )
    await mail.deliver(reply)
    await mail.work()

    pending = await mail.ops.store.human_request(request.id)
    assert pending.status == "pending"
    assert [a.actor.principal for a in pending.approvals] == [f"email:{ONCALL}"]
    note = next(m for m in await mail.sent_to(DEV, 2) if "Still needed" in text_of(m))
    assert f"approved by email:{ONCALL}" in text_of(note)
    assert "Still needed: 1 more of role:oncall." in text_of(note)
    assert first_id in str(note["References"]) and note["Subject"] == "Re: deploy please"
    assert ONCALL in str(note["Cc"])  # the approvers asked by mail see it too

    oncall = Identity(channel="cli", user_id="oncall-1")
    done = await mail.ops.submit(action_event(request.id, HumanDecision.APPROVE, oncall))
    assert done.thread.status == ThreadStatus.WAITING
    [call] = [e for e in done.thread.events if isinstance(e, ToolCalled)]
    assert call.approved_by == f"email:{ONCALL}, cli:oncall-1"
