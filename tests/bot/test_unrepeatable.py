"""A change that cannot tell a repeat (an MCP server's, a runbook's) runs at most once.

The worker dies after such a call started and before its result was recorded. The next
worker finds the call unanswered; a built-in change would run again under its key (and
make the change once), but this tool cannot be asked whether it acted: it must not run
again, and the thread must say so.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from bot.agent import Agent, AgentRegistry
from bot.app import Opsloop
from bot.config import Settings
from bot.events import CallTool, ErrorRaised, Identity, Reply, ThreadStatus, ToolReturned
from bot.model import FunctionModel, ModelRequest
from bot.policy import ApprovalRule, Policy
from bot.prompts import PromptLibrary
from bot.runtime import Runtime
from bot.store import Database, Store
from bot.tools import ToolContext, tool
from tests.fakes import message_event

DEV = Identity(channel="cli", user_id="dev-1")
COMMITS: list[str] = []
CRASH_AFTER_EFFECT: list[bool] = []


class Crash(BaseException):
    """The worker process dies here (nothing after it runs, nothing catches it)."""


class CommitArgs(BaseModel):
    message: str


@tool(tier="write")
async def commit(ctx: ToolContext, args: CommitArgs) -> str:
    """Commit (like a git server's tool: it cannot be asked whether it committed already)."""
    COMMITS.append(args.message)
    if CRASH_AFTER_EFFECT:
        CRASH_AFTER_EFFECT.pop()
        raise Crash
    return "committed"


def model(request: ModelRequest) -> CallTool | Reply:
    if "<tool_result" in request.context or "<error" in request.context:
        return Reply(text="done or not, see above")
    return CallTool(tool="commit", arguments={"message": "notes"})


async def _ops(database: Database, settings: Settings, *, repeatable: bool) -> Opsloop:
    import dataclasses

    agent = Agent(
        name="git",
        description="commits",
        prompt="assistant",
        tools=(dataclasses.replace(commit, repeatable=repeatable),),
    )
    policy = Policy(
        version=1,
        rules=(ApprovalRule(name="commits run", tools=("commit",), approval="none"),),
    )
    runtime = Runtime(
        settings=settings,
        policy=policy,
        prompts=PromptLibrary(),
        agents=AgentRegistry(agents=(agent,)),
        models={"default": FunctionModel(model)},
    )
    return Opsloop(Store(database), runtime)


@pytest.fixture(autouse=True)
def _fresh() -> Any:
    COMMITS.clear()
    CRASH_AFTER_EFFECT.clear()
    yield
    COMMITS.clear()


async def _crash_then_resume(ops: Opsloop) -> Any:
    CRASH_AFTER_EFFECT.append(True)
    item = await ops.ingest(message_event("commit the notes", sender=DEV, thread="t1"))
    assert item is not None
    with pytest.raises(Crash):
        await ops.process(item.id)
    assert COMMITS == ["notes"], "the effect happened; its result was never recorded"
    thread_id = (await ops.store.inbox_item(item.id)).thread_id
    assert thread_id is not None
    return await ops.resume(thread_id)  # the next worker takes the thread over


async def test_a_started_call_that_cannot_tell_a_repeat_is_not_run_again(
    database: Database, settings: Settings
) -> None:
    ops = await _ops(database, settings, repeatable=False)
    thread = await _crash_then_resume(ops)

    assert COMMITS == ["notes"], "committed once, not twice"
    [error] = [e for e in thread.events if isinstance(e, ErrorRaised)]
    assert error.tool == "commit" and error.call_id is not None
    assert "was started before under this call's key" in error.message
    assert "may or may not have taken effect" in error.message
    assert not any(isinstance(e, ToolReturned) for e in thread.events)
    assert thread.status == ThreadStatus.WAITING  # the model was told, and replied


async def test_a_repeatable_call_is_run_again_after_the_same_crash(
    database: Database, settings: Settings
) -> None:
    """The contrast: a tool that honours its key is simply finished (it dedupes itself)."""
    ops = await _ops(database, settings, repeatable=True)
    thread = await _crash_then_resume(ops)

    assert COMMITS == ["notes", "notes"]
    assert [e.output for e in thread.events if isinstance(e, ToolReturned)] == ["committed"]


async def test_an_unrepeatable_call_runs_normally_when_nothing_crashed(
    database: Database, settings: Settings
) -> None:
    ops = await _ops(database, settings, repeatable=False)
    outcome = await ops.submit(message_event("commit the notes", sender=DEV, thread="t1"))

    assert COMMITS == ["notes"]
    assert [e.output for e in outcome.new_events if isinstance(e, ToolReturned)] == ["committed"]


def test_declared_changes_run_at_most_once_and_declared_reads_may_repeat():
    from pathlib import Path

    from bot.declared import load_declared

    examples = Path(__file__).resolve().parents[2] / "examples" / "runbooks"
    tools = {t.name: t for t in load_declared(examples).tools}
    assert tools["trigger_workflow"].repeatable is False  # a far side that may not dedupe
    assert tools["service-health"].repeatable is True
