"""Two approvals needed, through the console's session and API: progress on the card."""

from __future__ import annotations

import pytest

from bot.policy import ApprovalRule, Policy, load_policy
from tests.channels.web.test_console import (  # noqa: F401  (fixtures)
    MakeConsole,
    console_settings,
    make_console,
)


@pytest.fixture
def policy() -> Policy:
    """The default policy, with production changes needing two on-call people."""
    default = load_policy()
    two = ApprovalRule(
        name="production changes need two on-call people",
        tiers=("write",),
        environments=("production",),
        approval="required",
        approvers=("role:oncall",),
        min_approvals=2,
    )
    return default.model_copy(update={"rules": (two, *default.rules[1:])})


async def test_two_on_call_approvals_through_the_console(
    make_console: MakeConsole,  # noqa: F811  (the fixture imported above)
) -> None:
    console = await make_console()
    await console.login("dev-1")
    thread_id = await console.say("deploy checkout 1.4.2 to production")
    oncall_1, oncall_2 = console.browser(), console.browser()
    await oncall_1.login("oncall-1")
    await oncall_2.login("oncall-2")
    [request] = (await console.thread(thread_id))["pending_requests"]
    rid = request["request_id"]
    assert (request["mode"], request["min_approvals"]) == ("any", 2)
    assert request["approvals"] == []
    assert request["still_needed"] == ["2 more of role:oncall"]

    await oncall_1.decide(rid, "approve", comment="looks right")
    thread = await console.thread(thread_id)
    assert thread["status"] == "paused"
    [request] = thread["pending_requests"]
    assert [(a["actor"], a["comment"]) for a in request["approvals"]] == [
        ("web:oncall-1", "looks right")
    ]
    assert request["still_needed"] == ["1 more of role:oncall"]
    given = thread["events"][-1]
    assert given["kind"] == "approval_given"
    assert given["approved_by"] == ["web:oncall-1"]
    listed = (await console.client.get("/api/human-requests")).json()["requests"]
    assert [(r["request_id"], r["still_needed"]) for r in listed] == [
        (rid, ["1 more of role:oncall"])
    ]
    timeline = (await console.client.get(f"/threads/{thread_id}")).text
    assert 'class="event kind-approval_given"' in timeline
    assert '<span class="still-needed">1 more of role:oncall</span>' in timeline

    await oncall_1.decide(rid, "approve")  # again: refused, still pending
    thread = await console.thread(thread_id)
    assert thread["events"][-1]["kind"] == "decision_refused"
    assert "already approved by you" in thread["events"][-1]["reason"]
    assert thread["status"] == "paused"

    await oncall_2.decide(rid, "approve")
    thread = await console.thread(thread_id)
    assert thread["status"] == "waiting"
    calls = [e for e in thread["events"] if e["kind"] == "tool_call" and e["tool"] == "deploy"]
    assert [c["approved_by"] for c in calls] == ["web:oncall-1, web:oncall-2"]
    approved = (await console.client.get("/api/human-requests?status=approved")).json()
    [done] = approved["requests"]
    assert [a["actor"] for a in done["approvals"]] == ["web:oncall-1", "web:oncall-2"]
    assert done["still_needed"] == []
    assert await console.ops.store.count_outbound("failed") == 0
