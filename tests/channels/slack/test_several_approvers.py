"""Two approvals needed, from Slack: the request message shows progress, then the outcome."""

from __future__ import annotations

import json

import pytest

from bot.policy import ApprovalRule, Policy
from bot.store import Database
from tests.channels.slack.conftest import MakeSlack
from tests.channels.slack.payloads import CHANNEL
from tests.channels.slack.test_decisions import asked, click, tool_events


@pytest.fixture
def oncall_policy(policy: Policy) -> Policy:
    """Slack people on call, and production changes needing two of them."""
    oncall = (*policy.roles["oncall"], "slack:U_ONCALL", "slack:U_ONCALL2")
    two = ApprovalRule(
        name="production changes need two on-call people",
        tiers=("write",),
        environments=("production",),
        approval="required",
        approvers=("role:oncall",),
        min_approvals=2,
    )
    return policy.model_copy(
        update={"roles": {**policy.roles, "oncall": oncall}, "rules": (two, *policy.rules[1:])}
    )


async def test_the_first_approval_updates_the_message_and_the_second_runs_it(
    make_slack: MakeSlack, database: Database
) -> None:
    slack = await make_slack(database=database)
    request, prompt = await asked(slack)

    await slack.interact(click(prompt, "opsloop_approve", "U_ONCALL"))
    await slack.work()
    [update] = slack.fake.of("chat.update")
    assert (update.params["channel"], update.params["ts"]) == (CHANNEL, prompt.answer["ts"])
    blocks = update.params["blocks"]
    contexts = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert "Approved by <@U_ONCALL> · still needed: 1 more of role:oncall" in contexts[-1]
    # The buttons stay, exactly as they were: others must still decide.
    [buttons] = [b for b in blocks if b["type"] == "actions"]
    assert buttons == next(b for b in prompt.params["blocks"] if b["type"] == "actions")
    assert (await slack.ops.store.human_request(request.id)).status == "pending"
    assert tool_events(await slack.ops.store.load_thread(request.thread_id)) == ([], [])

    # The same person again: told privately, nothing changes.
    await slack.interact(click(prompt, "opsloop_approve", "U_ONCALL", "1700000201.1"))
    await slack.work()
    [notice] = slack.fake.of("chat.postEphemeral")
    assert notice.params["user"] == "U_ONCALL"
    assert "already approved by you" in notice.params["text"]
    assert len(slack.fake.of("chat.update")) == 1

    await slack.interact(click(prompt, "opsloop_approve", "U_ONCALL2", "1700000202.1"))
    await slack.work()
    decided = await slack.ops.store.human_request(request.id)
    assert (decided.status, decided.decided_by) == ("approved", "slack:U_ONCALL2")
    calls, results = tool_events(await slack.ops.store.load_thread(request.thread_id))
    assert [c.approved_by for c in calls] == ["slack:U_ONCALL, slack:U_ONCALL2"]
    assert len(results) == 1
    final = slack.fake.of("chat.update")[-1]
    assert final.params["ts"] == prompt.answer["ts"]
    assert final.params["text"].startswith(":white_check_mark: *Approved* by <@U_ONCALL2>")
    assert all(b["type"] != "actions" for b in final.params["blocks"])
    assert '\\"version\\": \\"1.4.2\\"' in json.dumps(final.params["blocks"])
