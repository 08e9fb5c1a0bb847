"""A runbook in a whole opsloop: routed, paused for approval, run against a stand-in."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import Opsloop
from bot.catalogue import build_catalogue
from bot.config import Settings
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
from bot.inventory import INVENTORY, SqlInventory
from bot.model import ScriptedModel
from bot.policy import Policy
from bot.runtime import Runtime
from bot.store import Database, Store
from tests.bot.runbooks.conftest import EXAMPLES, SECRET, StandIn
from tests.fakes import action_event, message_event

DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")
TRIGGER = CallTool(
    tool="trigger_workflow",
    arguments={"owner": "acme", "repo": "shop", "workflow": "deploy.yml", "ref": "release"},
)


@pytest.fixture
def tools_dir(tmp_path: Path, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tools"
    folder.mkdir()
    shutil.copy(EXAMPLES / "ci-workflow.toml", folder)
    monkeypatch.setenv("OPSLOOP_VAR_GITHUB_API", stand_in.url)
    monkeypatch.setenv("OPSLOOP_SECRET_GITHUB_TOKEN", SECRET)
    return folder


async def opsloop(
    database: Database, settings: Settings, policy: Policy, tools_dir: Path, model: ScriptedModel
) -> Opsloop:
    settings = settings.model_copy(update={"tools_dir": tools_dir})
    catalogue = build_catalogue(settings)
    inventory = SqlInventory(database)
    await inventory.prepare()
    runtime = Runtime(
        settings=settings,
        policy=policy,
        prompts=catalogue.prompts,
        agents=catalogue.registry,
        models={"default": model},
        resources={INVENTORY: inventory},
        tools=catalogue.tools,
    )
    return Opsloop(Store(database), runtime)


async def everything_said(ops: Opsloop, thread_id: str) -> str:
    thread = await ops.store.load_thread(thread_id)
    events = "\n".join(e.model_dump_json() for e in thread.events)
    outbound = await ops.store.pending_outbound(thread_id=thread_id, due_only=False)
    return events + "\n".join(p.message.model_dump_json() for p in outbound)


async def test_a_write_runbook_waits_for_approval_then_runs_without_showing_its_secret(
    sqlite_database: Database,
    settings: Settings,
    policy: Policy,
    tools_dir: Path,
    stand_in: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    model = ScriptedModel([TRIGGER, Reply(text="started the deploy workflow")])
    ops = await opsloop(sqlite_database, settings, policy, tools_dir, model)

    outcome = await ops.submit(message_event("call trigger_workflow for shop", sender=DEV))

    assert outcome.thread.agent == "deployer"  # the runbook was added to it
    assert outcome.thread.status == ThreadStatus.PAUSED  # no rule names it: fail closed
    request = outcome.thread.events[-2]
    assert isinstance(request, HumanRequested) and request.type == "approval"
    assert request.tool == "trigger_workflow"
    assert request.approvers == ("role:oncall",)
    assert stand_in.seen == []  # nothing ran before approval

    resumed = await ops.submit(action_event(request.request_id, HumanDecision.APPROVE, ONCALL))

    assert resumed.thread.status == ThreadStatus.WAITING
    called = next(e for e in resumed.new_events if isinstance(e, ToolCalled))
    returned = next(e for e in resumed.new_events if isinstance(e, ToolReturned))
    assert returned.output == {"status": 204}
    [seen] = stand_in.seen
    assert seen.path == "/repos/acme/shop/actions/workflows/deploy.yml/dispatches"
    assert seen.headers["Authorization"] == f"Bearer {SECRET}"  # the secret reached it
    assert seen.headers["Idempotency-Key"] == called.idempotency_key
    assert seen.json() == {"ref": "release"}
    said = await everything_said(ops, outcome.thread.id)
    assert "trigger_workflow" in said and "started the deploy workflow" in said
    assert SECRET not in said
    assert SECRET not in caplog.text


async def test_a_failing_runbook_reports_an_error_without_its_secret(
    sqlite_database: Database,
    settings: Settings,
    policy: Policy,
    tools_dir: Path,
    stand_in: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stand_in.answer = lambda seen: web.json_response(
        {"message": "Bad credentials", "you_sent": seen.headers["Authorization"]}, status=401
    )
    model = ScriptedModel([TRIGGER, Reply(text="the token was refused")])
    ops = await opsloop(sqlite_database, settings, policy, tools_dir, model)
    outcome = await ops.submit(message_event("call trigger_workflow for shop", sender=DEV))
    request = outcome.thread.events[-2]

    resumed = await ops.submit(action_event(request.request_id, HumanDecision.APPROVE, ONCALL))

    [error] = [e for e in resumed.new_events if isinstance(e, ErrorRaised)]
    assert error.source == "tool" and error.tool == "trigger_workflow"
    assert "answered 401, expected 204" in error.message
    assert "Bearer ***" in error.message
    assert len(stand_in.seen) == 1
    said = await everything_said(ops, outcome.thread.id)
    assert "the token was refused" in said
    assert SECRET not in said
    assert SECRET not in caplog.text
