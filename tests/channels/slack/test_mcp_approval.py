"""The done-when through Slack: an MCP server's read tool answers at once, its writes wait.

``mcp-server-git`` declared by file (see :mod:`tests.mcp_sources.scenario`); an on-call
person mentions opsloop for the repository's status, then asks in the thread to commit.
Each write is an approval card with buttons in the thread; their own click is refused
(four-eyes), another on-call person's click runs it, and the commit is in the repository.
"""

from __future__ import annotations

from bot.events import ThreadStatus
from bot.store import HumanRequest
from tests.channels.slack import payloads
from tests.channels.slack.conftest import MakeSlack, SlackHarness
from tests.channels.slack.fake_slack import Call
from tests.channels.slack.payloads import TOP_TS
from tests.channels.slack.test_decisions import click
from tests.mcp_sources.scenario import COMMIT, MESSAGE, STATUS, GitOps, git_make_ops, git_model
from tests.mcp_sources.servers import git_log

make_ops = git_make_ops  # the harness's opsloop, with the git server declared


async def card_for(slack: SlackHarness, tool: str) -> tuple[HumanRequest, Call]:
    """The one pending request, for ``tool``, and the newest message: its card."""
    [request] = await slack.ops.store.human_requests()
    assert request.request.tool == tool
    card = slack.posted()[-1]
    assert card.params["thread_ts"] == TOP_TS
    [actions] = [b for b in card.params["blocks"] if b["type"] == "actions"]
    assert {e["action_id"] for e in actions["elements"]} >= {"opsloop_approve", "opsloop_reject"}
    return request, card


async def test_an_mcp_read_runs_at_once_and_its_writes_are_approved_by_another(
    make_slack: MakeSlack, make_ops: GitOps
) -> None:
    slack = await make_slack(git_model(make_ops.repo))

    await slack.event(payloads.app_mention(f"<@UBOT> {STATUS}", user="U_ONCALL"), event_id="Ev1")
    await slack.work()
    [answer] = slack.posted()
    assert answer.params["thread_ts"] == TOP_TS
    assert "modified:   README.md" in answer.params["text"]  # git_status's own output
    assert await slack.ops.store.human_requests(status=None) == []

    follow = payloads.message(COMMIT, user="U_ONCALL", ts="1700000000.000300", thread_ts=TOP_TS)
    await slack.event(follow, event_id="Ev2")
    await slack.work()
    request, card = await card_for(slack, "git_add")

    await slack.interact(click(card, "opsloop_approve", "U_ONCALL"))  # the requester's own
    await slack.work()
    [told] = slack.fake.of("chat.postEphemeral")
    assert told.params["user"] == "U_ONCALL"
    assert "four-eyes rule: slack:U_ONCALL may not approve" in told.params["text"]
    assert (await slack.ops.store.human_request(request.id)).status == "pending"

    await slack.interact(click(card, "opsloop_approve", "U_SRE", "1700000201.1"))  # via @sre
    await slack.work()
    assert git_log(make_ops.repo) == ["first"]  # staged; the commit waits for its own approval
    request, card = await card_for(slack, "git_commit")
    await slack.interact(click(card, "opsloop_approve", "U_SRE", "1700000202.1"))
    await slack.work()

    thread = await slack.ops.store.load_thread(request.thread_id)
    make_ops.assert_committed(thread.events, "slack:U_SRE")
    assert thread.status == ThreadStatus.WAITING
    assert f"Committed: {MESSAGE}" in slack.posted()[-1].params["text"]
