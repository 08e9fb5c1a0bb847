"""Approve with changes: the approver edits the call's arguments, and the edit is what runs."""

from __future__ import annotations

from typing import Any

import pytest

from bot.errors import DecisionRefusedError
from bot.events import (
    CallTool,
    DecisionRefused,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    Reply,
    ThreadStatus,
    ToolCalled,
)
from bot.inventory import INVENTORY
from bot.model import ScriptedModel
from bot.policy import ApprovalRule, Policy
from bot.runtime import change_key
from bot.store import Database
from tests.fakes import action_event, message_event

DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")
ONCALL_2 = Identity(channel="cli", user_id="oncall-2")
DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)


def approve(request_id: str, actor: Identity, changes: dict[str, Any] | None, comment=None):
    event = action_event(request_id, HumanDecision.APPROVE, actor, comment)
    return event.model_copy(update={"changes": changes})


async def paused(ops: Any, text: str = "deploy checkout 1.4.2 to production") -> HumanRequested:
    outcome = await ops.submit(message_event(text, sender=DEV, thread="t1"))
    assert outcome.thread.status == ThreadStatus.PAUSED
    request = outcome.thread.events[-2]
    assert isinstance(request, HumanRequested)
    return request


async def deploys_of(ops: Any, version: str, environment: str = "production") -> int:
    inventory = ops.runtime.resources[INVENTORY]
    deploys = await inventory.recent_deploys("checkout", environment, 50)
    return sum(d["version"] == version for d in deploys)


async def test_the_edited_call_runs_once_and_the_original_stays_in_the_log(
    database: Database, make_ops
) -> None:
    model = ScriptedModel([DEPLOY, Reply(text="deployed 1.4.3")])
    ops = await make_ops(database, model)
    request = await paused(ops)
    outcome = await ops.submit(approve(request.request_id, ONCALL, {"version": "1.4.3"}, "hotfix"))
    assert outcome.thread.status == ThreadStatus.WAITING
    events = outcome.thread.events
    # The request keeps the call as asked; the response records the changes beside it.
    asked = next(e for e in events if isinstance(e, HumanRequested))
    assert asked.arguments == DEPLOY.arguments
    response = next(e for e in events if isinstance(e, HumanResponded))
    assert response.changes == {"version": "1.4.3"}
    assert response.comment == "hotfix"
    calls = [e for e in events if isinstance(e, ToolCalled)]
    assert len(calls) == 1
    assert calls[0].arguments == {**DEPLOY.arguments, "version": "1.4.3"}
    assert calls[0].call_id == request.call_id
    assert calls[0].approved_by == "cli:oncall-1"
    # The key comes from the edited call, in the turn that asked (not the original's key).
    assert calls[0].idempotency_key != request.change_key
    turn = request.change_key.split(":")[2]
    edited = {**DEPLOY.arguments, "version": "1.4.3"}
    assert calls[0].idempotency_key == change_key(outcome.thread.id, "deploy", edited, int(turn))
    assert await deploys_of(ops, "1.4.3") == 1
    assert await deploys_of(ops, "1.4.2") == 0
    # The model is told about the edit when it reports the result.
    context = model.requests[-1].context
    assert "approved with changes by oncall-1: version 1.4.2 -&gt; 1.4.3" in context
    assert "<note>hotfix</note>" in context
    stored = await ops.store.human_request(request.request_id)
    assert (stored.status, stored.decided_by) == ("approved", "cli:oncall-1")
    pending = await ops.store.pending_outbound(channel="cli")
    resolved = next(p.message for p in pending if p.message.kind == "resolved")
    assert resolved.changes == {"version": "1.4.3"}


async def test_an_invalid_edit_is_refused_and_nothing_runs(database: Database, make_ops) -> None:
    ops = await make_ops(database, ScriptedModel([DEPLOY, Reply(text="ok")]))
    request = await paused(ops)
    for changes, why in [
        ({"version": "not a version!"}, "not valid.*version"),
        ({"tool": "rollback"}, "tool: not an argument of deploy"),
        ({"replicas": 3}, "replicas: not an argument of deploy"),
        ({"version": None}, "not valid.*version"),
    ]:
        with pytest.raises(DecisionRefusedError, match=why):
            await ops.submit(approve(request.request_id, ONCALL, changes))
    thread_id = (await ops.store.human_request(request.request_id)).thread_id
    thread = await ops.store.load_thread(thread_id)
    assert thread.status == ThreadStatus.PAUSED
    assert not any(isinstance(e, ToolCalled) for e in thread.events)
    refused = [e for e in thread.events if isinstance(e, DecisionRefused)]
    assert len(refused) == 4
    assert (await ops.store.human_request(request.request_id)).status == "pending"
    # The request can still be approved as it stands.
    await ops.submit(approve(request.request_id, ONCALL, None))
    assert await deploys_of(ops, "1.4.2") == 1


async def test_changes_go_only_with_an_approval(database: Database, make_ops) -> None:
    ops = await make_ops(database, ScriptedModel([DEPLOY]))
    request = await paused(ops)
    event = action_event(request.request_id, HumanDecision.REJECT, ONCALL, "no")
    with pytest.raises(DecisionRefusedError, match="only with an approval"):
        await ops.submit(event.model_copy(update={"changes": {"version": "1.4.3"}}))
    assert (await ops.store.human_request(request.request_id)).status == "pending"


def staging_policy(policy: Policy) -> Policy:
    """Staging deploys need a staging approver; production ones need prod on-call only."""
    roles = dict(policy.roles) | {"staging": ("oncall-1",), "prod": ("oncall-2",)}
    rules = (
        ApprovalRule(
            name="production needs prod on-call",
            tiers=("write",),
            environments=("production",),
            approval="required",
            approvers=("role:prod",),
        ),
        ApprovalRule(
            name="staging needs a staging approver",
            tiers=("write",),
            environments=("staging",),
            approval="required",
            approvers=("role:staging",),
        ),
        ApprovalRule(name="qa runs at once", tiers=("write",), approval="none"),
    )
    return policy.model_copy(update={"roles": roles, "rules": rules})


async def test_an_edit_under_a_rule_the_approver_cannot_decide_is_refused(
    database: Database, make_ops, policy: Policy
) -> None:
    staging = CallTool(tool="deploy", arguments={**DEPLOY.arguments, "environment": "staging"})
    model = ScriptedModel([staging, Reply(text="done")])
    ops = await make_ops(database, model, policy_=staging_policy(policy))
    request = await paused(ops, "deploy checkout 1.4.2 to staging")
    assert request.approvers == ("role:staging",)
    with pytest.raises(DecisionRefusedError, match="production needs prod on-call"):
        await ops.submit(approve(request.request_id, ONCALL, {"environment": "production"}))
    thread_id = (await ops.store.human_request(request.request_id)).thread_id
    thread = await ops.store.load_thread(thread_id)
    assert not any(isinstance(e, ToolCalled) for e in thread.events)
    assert await deploys_of(ops, "1.4.2", "production") == 0
    # Someone who may approve production could not decide the staging request at all…
    with pytest.raises(DecisionRefusedError, match="may not decide"):
        await ops.submit(approve(request.request_id, ONCALL_2, {"environment": "production"}))
    # …while an edit within the same rule is the staging approver's to make.
    await ops.submit(approve(request.request_id, ONCALL, {"version": "1.4.3"}))
    thread = await ops.store.load_thread(thread.id)
    call = next(e for e in thread.events if isinstance(e, ToolCalled))
    assert call.arguments == {**staging.arguments, "version": "1.4.3"}
    assert await deploys_of(ops, "1.4.3", "staging") == 1


async def test_an_edit_out_of_production_needs_no_more_approval(
    database: Database, make_ops
) -> None:
    ops = await make_ops(database, ScriptedModel([DEPLOY, Reply(text="done")]))
    request = await paused(ops)
    changes = {"environment": "staging", "version": "1.4.3"}
    await ops.submit(approve(request.request_id, ONCALL, changes))
    assert await deploys_of(ops, "1.4.3", "staging") == 1
    assert await deploys_of(ops, "1.4.3", "production") == 0


async def test_an_edit_that_changes_nothing_is_a_plain_approval(
    database: Database, make_ops
) -> None:
    ops = await make_ops(database, ScriptedModel([DEPLOY, Reply(text="done")]))
    request = await paused(ops)
    outcome = await ops.submit(approve(request.request_id, ONCALL, {"version": " 1.4.2 "}))
    response = next(e for e in outcome.new_events if isinstance(e, HumanResponded))
    assert response.changes is None
    call = next(e for e in outcome.new_events if isinstance(e, ToolCalled))
    assert call.idempotency_key == request.change_key


async def test_four_eyes_still_holds_for_an_edit(
    database: Database, make_ops, policy: Policy
) -> None:
    roles = dict(policy.roles) | {"oncall": (*policy.roles["oncall"], "dev-1")}
    ops = await make_ops(
        database, ScriptedModel([DEPLOY]), policy_=policy.model_copy(update={"roles": roles})
    )
    request = await paused(ops)
    with pytest.raises(DecisionRefusedError, match="four-eyes"):
        await ops.submit(approve(request.request_id, DEV, {"version": "1.4.3"}))
    assert await deploys_of(ops, "1.4.3") == 0


def test_the_context_says_what_an_approver_changed() -> None:
    from bot.context import render_context
    from bot.events import utcnow

    asked = HumanRequested(
        request_id="hr_1",
        type="approval",
        tool="deploy",
        arguments=DEPLOY.arguments,
        call_id="call_1",
        question="Approve?",
        expires_at=utcnow(),
    )
    response = HumanResponded(
        request_id="hr_1",
        decision="approve",
        actor=ONCALL,
        changes={"version": "1.4.3", "environment": "staging"},
    )
    context = render_context([asked, response], budget_tokens=10_000)
    assert (
        "<note>approved with changes by oncall-1: version 1.4.2 -&gt; 1.4.3,"
        " environment production -&gt; staging</note>"
    ) in context
    plain = response.model_copy(update={"changes": None})
    assert "changes" not in render_context([asked, plain], budget_tokens=10_000)


# --------------------------------------------------------------- edits and several approvers


def two_approvals(policy: Policy, environments: tuple[str, ...] = ("production",)) -> Policy:
    """Production needs two on-call people; staging one."""
    rules = (
        ApprovalRule(
            name="production needs two on-call",
            tiers=("write",),
            environments=environments,
            approval="required",
            approvers=("role:oncall",),
            min_approvals=2,
        ),
        ApprovalRule(
            name="staging needs on-call",
            tiers=("write",),
            environments=("staging",),
            approval="required",
            approvers=("role:oncall",),
        ),
    )
    return policy.model_copy(update={"rules": rules})


async def test_a_request_needing_several_approvers_cannot_be_approved_with_changes(
    database: Database, make_ops, policy: Policy
) -> None:
    """Regression: one person's edit must never stand in for the others' approval of it."""
    ops = await make_ops(database, ScriptedModel([DEPLOY]), policy_=two_approvals(policy))
    request = await paused(ops)
    # Within the rule, and out of it (to staging, which one approver may decide): neither
    # edit counts, nor is it recorded as one approval of the original call.
    for changes in ({"version": "1.4.3"}, {"environment": "staging"}):
        with pytest.raises(DecisionRefusedError, match="cannot be approved with changes"):
            await ops.submit(approve(request.request_id, ONCALL, changes))
    stored = await ops.store.human_request(request.request_id)
    assert stored.status == "pending"
    assert stored.approvals == ()


async def test_an_edit_into_a_rule_needing_several_approvers_is_refused(
    database: Database, make_ops, policy: Policy
) -> None:
    """A one-approver staging request edited into production would skip the second approver."""
    staging = CallTool(tool="deploy", arguments={**DEPLOY.arguments, "environment": "staging"})
    ops = await make_ops(database, ScriptedModel([staging]), policy_=two_approvals(policy))
    request = await paused(ops, "deploy checkout 1.4.2 to staging")
    with pytest.raises(DecisionRefusedError, match="needs several"):
        await ops.submit(approve(request.request_id, ONCALL, {"environment": "production"}))
    assert await deploys_of(ops, "1.4.2", "production") == 0
