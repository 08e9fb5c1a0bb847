"""The done-when as the channel tests act it out: a git repository served by ``mcp-server-git``.

Each channel's harness builds its opsloop with the ``make_ops`` fixture; a channel test
module that overrides it (``make_ops = git_make_ops``: pytest names a fixture after the
module attribute) gets, on the harness's own database and policy, an opsloop assembled from
settings alone, where the only extra is a ``kind = "mcp"`` declaration of the published git
server (its tools offered to the ``inspector`` agent).

The model is :func:`git_model`, written as code: asked for the status it calls
``git_status`` and answers with what the tool returned; asked to commit it calls
``git_add`` and then ``git_commit``. Both of those are write tools (the server does not
hint them read-only), so each waits for its own approval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.app import Opsloop
from bot.config import load_settings
from bot.events import CallTool, Reply, ToolCalled, ToolReturned, UserMessage
from bot.model import FunctionModel, Model, ModelRequest
from bot.policy import Policy
from bot.store import Database
from tests.mcp_sources.servers import declare_git, git_log, git_repo

__all__ = ["COMMIT", "MESSAGE", "STATUS", "GitOps", "git_make_ops", "git_model"]

STATUS = "call git_status on the ops repo"
"""What a person asks to see the repository's state (read: runs at once)."""
COMMIT = "call git_add for README.md and commit it"
"""What a person asks to commit the change (write: two approvals, add then commit)."""
MESSAGE = "readme-updated-through-chat"
"""The commit's subject (one word: `git_log` splits on whitespace)."""


def git_model(repo: Path) -> FunctionModel:
    """The model of the scenario, deciding from the thread's last message or tool result."""
    where = {"repo_path": str(repo)}

    def decide(request: ModelRequest) -> CallTool | Reply:
        said = (e for e in reversed(request.events) if isinstance(e, UserMessage | ToolReturned))
        last = next(said)
        if isinstance(last, UserMessage) and last.text.startswith("call git_status"):
            return CallTool(tool="git_status", arguments=where)
        if isinstance(last, UserMessage) and last.text.startswith("call git_add"):
            return CallTool(tool="git_add", arguments={**where, "files": ["README.md"]})
        if isinstance(last, ToolReturned) and last.tool == "git_status":
            return Reply(text=f"The repository:\n{last.output}")
        if isinstance(last, ToolReturned) and last.tool == "git_add":
            return CallTool(tool="git_commit", arguments={**where, "message": MESSAGE})
        if isinstance(last, ToolReturned) and last.tool == "git_commit":
            return Reply(text=f"Committed: {MESSAGE}")
        raise AssertionError(f"the scenario has no decision after {last!r}")

    return FunctionModel(decide)


@dataclass
class GitOps:
    """A ``make_ops`` stand-in: builds opsloops with the git server declared, and closes them."""

    home: Path
    repo: Path
    tools: Path
    built: list[Opsloop] = field(default_factory=list)

    async def __call__(
        self, database: Database, model: Model, *, policy_: Policy | None = None, **unused: Any
    ) -> Opsloop:
        """An opsloop on ``database`` with ``model`` and ``policy_``, assembled from settings."""
        assert not any(unused.values()), f"not supported here: {unused}"
        settings = load_settings(
            OPSLOOP_HOME=str(self.home),
            DATABASE_URL=database.url,
            OPSLOOP_TOOLS_DIR=str(self.tools),
        )
        ops = await Opsloop.from_settings(settings, models={"default": model}, policy=policy_)
        self.built.append(ops)
        return ops

    @property
    def model(self) -> FunctionModel:
        """The model of the (one) opsloop built."""
        [ops] = self.built
        model = ops.runtime.models["default"]
        assert isinstance(model, FunctionModel)
        return model

    def assert_committed(self, events: Sequence[Any], approver: str) -> None:
        """The commit is in the repository, made after ``approver``'s two approvals."""
        assert git_log(self.repo) == [MESSAGE, "first"]
        runs = [(e.tool, e.approved_by) for e in events if isinstance(e, ToolCalled)]
        assert runs == [("git_status", None), ("git_add", approver), ("git_commit", approver)]
        assert len(self.model.requests) == 5  # each decision asked for once


@pytest.fixture
async def git_make_ops(tmp_path: Path) -> AsyncIterator[GitOps]:
    """A repository with a changed README.md, the declaration of its server, and the builder."""
    repo = git_repo(tmp_path / "repo")
    (repo / "README.md").write_text("hello, and what changed\n")
    tools = tmp_path / "tools"
    declare_git(tools, repo)
    home = tmp_path / "home"
    home.mkdir()
    made = GitOps(home=home, repo=repo, tools=tools)
    yield made
    for ops in made.built:
        await ops.aclose()
