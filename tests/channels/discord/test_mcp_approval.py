"""The done-when through Discord: an MCP server's read tool answers at once, its writes wait.

``mcp-server-git`` declared by file (see :mod:`tests.mcp_sources.scenario`); BOB, on call,
asks ``/ops`` for the repository's status, then asks in the thread opsloop opened to
commit. Each write is a message with buttons in that thread; BOB's own click is refused
(four-eyes), ALICE's (on call through her role) runs it, and the commit is in the repository.
"""

from __future__ import annotations

import pytest

from bot.events import ThreadStatus
from bot.model import Model
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.support import ALICE, BOB, Harness, Prompt, chat, feed, slash
from tests.mcp_sources.scenario import COMMIT, MESSAGE, STATUS, GitOps, git_make_ops, git_model
from tests.mcp_sources.servers import git_log

make_ops = git_make_ops  # the harness's opsloop, with the git server declared


@pytest.fixture
def model(make_ops: GitOps) -> Model:
    return git_model(make_ops.repo)


async def approve(harness: Harness, prompt: Prompt, *, by: str) -> str:
    """``by`` clicks Approve; what Discord shows them alone in answer."""
    pressed = await harness.press(prompt, "approve", by=by)
    await harness.settle()
    [verdict] = harness.fake.followups(pressed)
    assert verdict["flags"] == 64  # ephemeral
    return str(verdict["content"])


async def test_an_mcp_read_runs_at_once_and_its_writes_are_approved_by_another(
    fake: FakeDiscord, harness: Harness, make_ops: GitOps
) -> None:
    client = await harness.client(message_content=True)
    command = slash(fake, STATUS, by=BOB)
    await harness.ingest(client, "INTERACTION_CREATE", command)
    await harness.settle()
    thread = fake.original(command)["id"]
    [answer] = fake.posted_in(thread)
    assert "modified:   README.md" in answer["content"]  # git_status's own output
    assert await harness.ops.store.human_requests(status=None) == []

    feed(client, "THREAD_CREATE", {**fake.channels[thread], "newly_created": True})
    await harness.ingest(client, "MESSAGE_CREATE", chat(fake, COMMIT, by=BOB, channel_id=thread))
    await harness.work()
    add = await harness.prompt(client, thread)
    assert add.request.request.tool == "git_add"
    assert {b["label"] for row in add.message["components"] for b in row["components"]} >= {
        "Approve",
        "Reject",
    }

    refused = await approve(harness, add, by=BOB)  # the requester's own click
    assert f"four-eyes rule: discord:{BOB} may not approve" in refused
    assert (await harness.ops.store.human_request(add.request.id)).status == "pending"

    assert (await approve(harness, add, by=ALICE)).startswith("✅ Approved")
    assert git_log(make_ops.repo) == ["first"]  # staged; the commit waits for its own approval
    commit = await harness.prompt(client, thread, besides=add)
    assert commit.request.request.tool == "git_commit"
    assert (await approve(harness, commit, by=ALICE)).startswith("✅ Approved")

    done = await harness.ops.store.load_thread(commit.request.thread_id)
    make_ops.assert_committed(done.events, f"discord:{ALICE}")
    assert done.status == ThreadStatus.WAITING
    assert f"Committed: {MESSAGE}" in fake.posted_in(thread)[-1]["content"]
