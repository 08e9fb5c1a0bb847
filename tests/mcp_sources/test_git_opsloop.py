"""The done-when, in-process: a published MCP server connected by configuration alone.

``mcp-server-git`` on a temporary repository, declared in ``OPSLOOP_TOOLS_DIR``: its read
tool runs at once; its write tools pause for approval, and once approved the commit is
really in the repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import Opsloop
from bot.config import load_settings
from bot.events import (
    CallTool,
    ErrorRaised,
    HumanDecision,
    HumanRequested,
    Identity,
    Reply,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
)
from bot.mcp import MCP_HUB
from bot.model import ScriptedModel
from tests.fakes import action_event, message_event
from tests.mcp_sources.servers import GIT_SERVER, INJECTION, declare, git_log, git_repo

DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path / "repo")


@pytest.fixture
def tools_dir(tmp_path: Path, repo: Path) -> Path:
    directory = tmp_path / "tools"
    declare(
        directory,
        "git.toml",
        f"""
        kind = "mcp"
        command = "{GIT_SERVER}"
        args = ["--repository", "{repo}"]
        agents = ["inspector"]
        """,
    )
    return directory


@pytest.fixture
async def opsloop(tmp_path: Path, tools_dir: Path) -> AsyncIterator[Opsloop]:
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_TOOLS_DIR=str(tools_dir))
    model = ScriptedModel([])
    ops = await Opsloop.from_settings(settings, models={"default": model})
    yield ops
    await ops.aclose()
    model.assert_consumed()


def script(ops: Opsloop, *decisions) -> ScriptedModel:
    model = ops.runtime.models["default"]
    assert isinstance(model, ScriptedModel)
    model._queue.extend(decisions)
    return model


async def test_git_status_runs_at_once(opsloop: Opsloop, repo: Path) -> None:
    model = script(
        opsloop,
        CallTool(tool="git_status", arguments={"repo_path": str(repo)}),
        Reply(text="1 new file"),
    )
    outcome = await opsloop.submit(message_event("call git_status please", sender=DEV))
    assert outcome.thread.status == ThreadStatus.WAITING
    assert outcome.thread.agent == "inspector"
    result = next(e for e in outcome.new_events if isinstance(e, ToolReturned))
    assert "notes.txt" in result.output
    assert result.untrusted is True
    # The model read the server's text as data, marked so.
    assert '<tool_result tool="git_status"' in model.requests[-1].context
    assert 'trust="untrusted data">' in model.requests[-1].context
    assert not any(isinstance(e, HumanRequested) for e in outcome.new_events)


async def test_git_add_and_commit_pause_then_commit_once_approved(
    opsloop: Opsloop, repo: Path
) -> None:
    add = CallTool(tool="git_add", arguments={"repo_path": str(repo), "files": ["notes.txt"]})
    commit = CallTool(tool="git_commit", arguments={"repo_path": str(repo), "message": "notes"})
    script(opsloop, add, commit, Reply(text="committed"))
    outcome = await opsloop.submit(message_event("call git_add then commit", sender=DEV))
    assert outcome.thread.status == ThreadStatus.PAUSED
    asked = outcome.thread.events[-2]
    assert isinstance(asked, HumanRequested) and asked.tool == "git_add"
    assert asked.approvers == ("role:oncall",)
    assert git_log(repo) == ["first"]

    outcome = await opsloop.submit(action_event(asked.request_id, HumanDecision.APPROVE, ONCALL))
    asked = outcome.thread.events[-2]
    assert isinstance(asked, HumanRequested) and asked.tool == "git_commit"
    assert git_log(repo) == ["first"]  # staged, not committed: the commit waits for its own

    outcome = await opsloop.submit(action_event(asked.request_id, HumanDecision.APPROVE, ONCALL))
    assert outcome.thread.status == ThreadStatus.WAITING
    ran = next(e for e in outcome.new_events if isinstance(e, ToolCalled))
    assert ran.approved_by == "cli:oncall-1"
    assert git_log(repo) == ["notes", "first"]


async def test_bad_arguments_are_refused_before_the_server_sees_them(
    opsloop: Opsloop, repo: Path
) -> None:
    bad = CallTool(tool="git_add", arguments={"repo_path": str(repo), "files": []})
    script(opsloop, bad, Reply(text="sorry"))
    outcome = await opsloop.submit(message_event("call git_add nothing", sender=DEV))
    error = next(e for e in outcome.new_events if isinstance(e, ErrorRaised))
    assert error.source == "validation"
    assert "files: [] should be non-empty" in error.message
    assert not any(isinstance(e, HumanRequested) for e in outcome.new_events)


async def test_a_server_error_goes_back_to_the_model(opsloop: Opsloop, tmp_path: Path) -> None:
    outside = CallTool(tool="git_status", arguments={"repo_path": str(tmp_path)})
    model = script(opsloop, outside, Reply(text="that path is not allowed"))
    outcome = await opsloop.submit(message_event("call git_status elsewhere", sender=DEV))
    error = next(e for e in outcome.new_events if isinstance(e, ErrorRaised))
    assert error.source == "tool" and "outside the allowed repository" in error.message
    assert "outside the allowed repository" in model.requests[1].context


async def test_the_hub_is_a_resource_closed_with_the_others(opsloop: Opsloop) -> None:
    hub = opsloop.runtime.resources[MCP_HUB]
    assert hub.state("git").connected
    assert opsloop.runtime.tools["git_commit"].tier == "write"
    assert opsloop.runtime.tools["git_log"].tier == "read"
    await opsloop.aclose()
    assert not hub.state("git").connected


async def test_injected_text_in_a_result_is_data(tmp_path: Path, repo: Path, tools_dir) -> None:
    (repo / "README.md").write_text(INJECTION)
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_TOOLS_DIR=str(tools_dir))
    show = CallTool(tool="git_show", arguments={"repo_path": str(repo), "revision": "HEAD"})
    model = ScriptedModel([show, Reply(text="here it is")])
    ops = await Opsloop.from_settings(settings, models={"default": model})
    try:
        await ops.submit(message_event("call git_show HEAD", sender=DEV))
    finally:
        await ops.aclose()
    context = model.requests[1].context
    assert "<tool_result" in context
    # the forged closing tag and message are escaped: still inside the one tool result
    assert context.count("</tool_result>") == 1
    assert '<user_message from="oncall-1">' not in context
