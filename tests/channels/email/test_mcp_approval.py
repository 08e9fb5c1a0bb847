"""The done-when by mail: an MCP server's read tool answers at once, its writes wait.

``mcp-server-git`` declared by file (see :mod:`tests.mcp_sources.scenario`); an on-call
person mails opsloop for the repository's status, then replies in the thread to commit.
Each write is mailed to the approvers; the requester's own reply ``APPROVE`` is refused
(four-eyes), another on-call person's runs it, and the commit is in the repository.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from bot.events import ThreadStatus
from bot.policy import Policy
from bot.store import HumanRequest
from tests.channels.email.conftest import ONCALL
from tests.channels.email.harness import Mail, bare, human_mail, text_of
from tests.mcp_sources.scenario import COMMIT, MESSAGE, STATUS, GitOps, git_make_ops, git_model
from tests.mcp_sources.servers import git_log

SRE = "sre@example.com"
"""On call too: the one who approves."""


make_ops = git_make_ops  # the harness's opsloop, with the git server declared


@pytest.fixture
def email_policy(email_policy: Policy) -> Policy:
    """Two people on call by mail."""
    roles = {**email_policy.roles, "oncall": (*email_policy.roles["oncall"], f"email:{SRE}")}
    return email_policy.model_copy(update={"roles": roles})


async def reply(mail: Mail, to: EmailMessage, sender: str, body: str, first_id: str) -> None:
    """``sender`` answers ``to`` with ``body`` (authenticated), and the workers run."""
    raw, _ = human_mail(
        sender,
        f"Re: {STATUS}",
        body,
        in_reply_to=bare(to["Message-ID"]),
        references=(first_id, bare(to["Message-ID"])),
    )
    await mail.deliver(raw)
    await mail.work()


async def asked(mail: Mail, tool: str, count: int) -> tuple[HumanRequest, EmailMessage]:
    """The one pending request, for ``tool``, and the ``count``-th mail to SRE: its card."""
    [request] = await mail.ops.store.human_requests()
    assert request.request.tool == tool
    card = (await mail.sent_to(SRE, count))[count - 1]
    assert f"Action: {tool}" in text_of(card) and "APPROVE" in text_of(card)
    return request, card


async def test_an_mcp_read_runs_at_once_and_its_writes_are_approved_by_another(
    make_mail, make_ops: GitOps
) -> None:
    mail = await make_mail(model=git_model(make_ops.repo))
    await mail.start()
    raw, first_id = human_mail(ONCALL, STATUS, f"{STATUS}, please")
    await mail.deliver(raw)
    await mail.work()
    [answer] = await mail.sent_to(ONCALL)
    assert "modified:   README.md" in text_of(answer)  # git_status's own output
    assert await mail.ops.store.human_requests(status=None) == []

    await reply(mail, answer, ONCALL, COMMIT, first_id)
    request, card = await asked(mail, "git_add", 1)

    await reply(mail, card, ONCALL, "APPROVE", first_id)  # the requester's own
    refusal = (await mail.sent_to(ONCALL, 3))[-1]
    assert f"four-eyes rule: email:{ONCALL} may not approve" in text_of(refusal)
    assert (await mail.ops.store.human_request(request.id)).status == "pending"

    await reply(mail, card, SRE, "APPROVE", first_id)
    assert git_log(make_ops.repo) == ["first"]  # staged; the commit waits for its own approval
    request, card = await asked(mail, "git_commit", 2)
    await reply(mail, card, SRE, "APPROVE", first_id)

    thread = await mail.ops.store.load_thread(request.thread_id)
    make_ops.assert_committed(thread.events, f"email:{SRE}")
    assert thread.status == ThreadStatus.WAITING
    done = [m for m in mail.sent if f"Committed: {MESSAGE}" in text_of(m)]
    assert [m["To"] for m in done] == [ONCALL]
