"""The whole core, in-process: messages, tools, approvals, rejections, expiry, bad input."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from bot.errors import BadInputError, DecisionRefusedError, NotFoundError
from bot.events import (
    AgentReply,
    CallTool,
    DecisionRefused,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    Reply,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
    utcnow,
)
from bot.inventory import INVENTORY
from bot.model import FunctionModel, ModelRequest, ScriptedModel
from bot.model.offline import OfflineModel
from bot.policy import Policy
from bot.store import Database
from bot.testing import Testbot
from tests.fakes import action_event as action
from tests.fakes import message_event

DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")
DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)


def message(text: str, *, sender: Identity = DEV, thread: str = "t1", **extra: Any):
    return message_event(text, sender=sender, thread=thread, **extra)


def kinds(events) -> list[str]:
    return [e.kind for e in events]


async def test_safe_tool_runs_and_agent_replies(database: Database, make_ops) -> None:
    model = ScriptedModel(
        [CallTool(tool="list_services", arguments={"environment": "staging"}), Reply(text="4 up")]
    )
    ops = await make_ops(database, model)
    outcome = await ops.submit(message("what is running in staging?"))
    assert outcome.thread.status == ThreadStatus.WAITING
    assert outcome.thread.agent == "inspector"
    assert kinds(outcome.new_events) == [
        "user_message",
        "status",
        "model_call",
        "tool_call",
        "tool_result",
        "model_call",
        "agent_reply",
        "status",
    ]
    result = outcome.new_events[4]
    assert isinstance(result, ToolReturned)
    assert {s["service"] for s in result.output} == {
        "checkout",
        "payments",
        "search",
        "notifications",
    }
    # The second model call saw the tool result in its context.
    assert "<tool_result" in model.requests[1].context
    pending = await ops.store.pending_outbound(channel="cli")
    assert [p.message.text for p in pending] == ["4 up"]


async def test_risky_tool_pauses_then_approval_runs_exact_arguments(database, make_ops) -> None:
    model = ScriptedModel([DEPLOY, Reply(text="deployed")])
    ops = await make_ops(database, model)
    outcome = await ops.submit(message("deploy checkout 1.4.2 to production"))
    assert outcome.thread.status == ThreadStatus.PAUSED
    request = outcome.thread.events[-2]
    assert isinstance(request, HumanRequested)
    assert request.type == "approval"
    assert request.tool == "deploy"
    assert request.arguments == {
        "service": "checkout",
        "environment": "production",
        "version": "1.4.2",
    }
    assert request.requested_by == "cli:dev-1"
    assert request.approvers == ("role:oncall",)
    stored = await ops.store.human_request(request.request_id)
    assert stored.status == "pending"
    assert len(model.requests) == 1  # nothing else was asked while paused

    resumed = await ops.submit(action(request.request_id, HumanDecision.APPROVE, ONCALL, "ok"))
    assert resumed.thread.status == ThreadStatus.WAITING
    call = next(e for e in resumed.new_events if isinstance(e, ToolCalled))
    assert call.arguments == request.arguments
    assert call.call_id == request.call_id
    assert call.approved_by == "cli:oncall-1"
    # The approved call ran without asking the model again; the model was asked once more
    # only to report the result.
    assert len(model.requests) == 2
    status = await ops.runtime.resources[INVENTORY].service_status("checkout", "production")
    assert status["version"] == "1.4.2"
    decided = await ops.store.human_request(request.request_id)
    assert (decided.status, decided.decided_by, decided.comment) == (
        "approved",
        "cli:oncall-1",
        "ok",
    )
    pending = await ops.store.pending_outbound(channel="cli")
    assert [p.message.kind for p in pending] == ["request", "resolved", "reply"]


async def test_rejection_reason_goes_to_the_model(database, make_ops) -> None:
    ops = await make_ops(database, OfflineModel())
    outcome = await ops.submit(message("deploy checkout 1.4.2 to production"))
    request_id = outcome.thread.events[-2].request_id
    resumed = await ops.submit(action(request_id, HumanDecision.REJECT, ONCALL, "freeze"))
    result = next(e for e in resumed.new_events if isinstance(e, ToolReturned))
    assert result.output == {"rejected": True, "by": "cli:oncall-1", "reason": "freeze"}
    reply = resumed.thread.events[-2]
    assert isinstance(reply, AgentReply)
    assert "oncall-1" in reply.text and "freeze" in reply.text
    status = await ops.runtime.resources[INVENTORY].service_status("checkout", "production")
    assert status["version"] == "1.4.1"


async def test_four_eyes_refuses_self_approval(database, make_ops, policy: Policy) -> None:
    roles = dict(policy.roles) | {"oncall": (*policy.roles["oncall"], "cli:dev-1")}
    ops = await make_ops(
        database, ScriptedModel([DEPLOY]), policy_=policy.model_copy(update={"roles": roles})
    )
    outcome = await ops.submit(message("deploy checkout 1.4.2 to production"))
    request_id = outcome.thread.events[-2].request_id
    with pytest.raises(DecisionRefusedError, match="four-eyes"):
        await ops.submit(action(request_id, HumanDecision.APPROVE, DEV))
    thread = await ops.store.load_thread(outcome.thread.id)
    assert thread.status == ThreadStatus.PAUSED
    refused = thread.events[-1]
    assert isinstance(refused, DecisionRefused) and refused.actor == DEV
    assert (await ops.store.human_request(request_id)).status == "pending"
    # Rejecting your own request is allowed: only approval needs a second pair of eyes.


async def test_unauthorised_and_second_decisions_change_nothing(database, make_ops) -> None:
    ops = await make_ops(database, ScriptedModel([DEPLOY, Reply(text="done")]))
    outcome = await ops.submit(message("deploy checkout 1.4.2 to production"))
    request_id = outcome.thread.events[-2].request_id
    stranger = Identity(channel="cli", user_id="visitor")
    with pytest.raises(DecisionRefusedError, match="may not decide"):
        await ops.submit(action(request_id, HumanDecision.APPROVE, stranger))
    await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))
    before = await ops.store.load_thread(outcome.thread.id)
    with pytest.raises(DecisionRefusedError, match="already approved"):
        await ops.submit(action(request_id, HumanDecision.REJECT, ONCALL, "too late"))
    after = await ops.store.load_thread(outcome.thread.id)
    assert kinds(after.events[before.last_seq :]) == ["decision_refused"]
    deploys = await ops.runtime.resources[INVENTORY].recent_deploys("checkout", "production", 10)
    assert sum(d["version"] == "1.4.2" for d in deploys) == 1


async def test_expired_request_counts_as_rejected(database, make_ops) -> None:
    now = [utcnow()]
    ops = await make_ops(database, OfflineModel(), clock=lambda: now[0])
    outcome = await ops.submit(message("restart search in production"))
    request_id = outcome.thread.events[-2].request_id
    now[0] += timedelta(hours=2)
    assert await ops.expire_requests() == [request_id]
    thread = await ops.store.load_thread(outcome.thread.id)
    response = next(e for e in thread.events if isinstance(e, HumanResponded))
    assert response.decision == HumanDecision.REJECT and response.actor is None
    assert "expired" in (response.comment or "")
    assert (await ops.store.human_request(request_id)).status == "expired"
    assert thread.status == ThreadStatus.WAITING
    with pytest.raises(DecisionRefusedError, match="already expired"):
        await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))


async def test_ask_human_pauses_and_the_answer_resumes(database, make_ops) -> None:
    model = ScriptedModel(
        [
            CallTool(
                tool="ask_human",
                arguments={"question": "Which environment?", "options": ["staging", "production"]},
            ),
            Reply(text="ok, staging"),
        ]
    )
    ops = await make_ops(database, model)
    outcome = await ops.submit(message("restart checkout"))
    question = outcome.thread.events[-2]
    assert isinstance(question, HumanRequested) and question.type == "question"
    assert question.options == ("staging", "production")
    resumed = await ops.submit(action(question.request_id, HumanDecision.ANSWER, DEV, "staging"))
    assert resumed.thread.status == ThreadStatus.WAITING
    assert '<human_response id="' in model.requests[1].context
    assert "staging</human_response>" in model.requests[1].context


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("x" * 1_000_000, "limit"),
        ("bad \udcff bytes", "UTF-8"),
        ("nul\x00byte", "NUL"),
    ],
)
async def test_bad_messages_are_refused_and_nothing_is_stored(
    sqlite_database, make_ops, text: str, error: str
) -> None:
    ops = await make_ops(sqlite_database, ScriptedModel([]))
    with pytest.raises(BadInputError, match=error):
        await ops.submit(message(text))
    assert await ops.store.list_threads() == []


async def test_unknown_agent_is_refused() -> None:
    async with Testbot(shipped_agents=True, model=ScriptedModel([])) as bot:
        with pytest.raises(
            NotFoundError, match="unknown agent 'wizard'; known agents: deployer, inspector"
        ):
            await bot.send("hello", agent="wizard")
        assert await bot.ops.store.list_threads() == []


async def test_duplicate_event_is_processed_once(database, make_ops) -> None:
    ops = await make_ops(database, ScriptedModel([Reply(text="hi")]))
    event = message("hello")
    item = await ops.ingest(event)
    assert item is not None
    assert await ops.ingest(event) is None
    with pytest.raises(BadInputError, match="already received"):
        await ops.submit(event)
    outcome = await ops.process(item.id)
    assert kinds(outcome.thread.events).count("user_message") == 1
    assert (await ops.store.inbox_item(item.id)).status == "done"


async def test_unknown_request_id_is_a_clear_error(sqlite_database, make_ops) -> None:
    ops = await make_ops(sqlite_database, ScriptedModel([]))
    with pytest.raises(NotFoundError, match="no human request 'hr_nope'"):
        await ops.submit(action("hr_nope", HumanDecision.APPROVE, ONCALL))


async def test_message_to_a_paused_thread_is_kept_for_later() -> None:
    async with Testbot(shipped_agents=True, model=ScriptedModel([DEPLOY])) as bot:
        await bot.send("deploy checkout 1.4.2 to production")
        turn = await bot.send("any news?")
        assert turn.status == ThreadStatus.PAUSED
        assert kinds(turn.events) == ["user_message"]
        assert turn.sent == (), "nothing is said while the thread waits for a person"


async def test_function_model_sees_the_rendered_thread() -> None:
    def fn(request: ModelRequest) -> Reply:
        assert request.agent == "inspector"
        assert '<user_message from="dev-1">how is checkout?</user_message>' in request.context
        assert {t.name for t in request.tools} == {
            "list_services",
            "service_status",
            "recent_deploys",
            "ask_human",
        }
        return Reply(text="fine")

    async with Testbot(shipped_agents=True, model=FunctionModel(fn)) as bot:
        turn = await bot.send("how is checkout?")
        assert turn.events[-2] == AgentReply(text="fine", agent="inspector", at=turn.events[-2].at)


async def test_a_follow_up_for_another_agent_moves_the_thread() -> None:
    async with Testbot(shipped_agents=True, model=OfflineModel()) as bot:
        first = await bot.send("what is running in staging?")
        assert first.thread.agent == "inspector"
        second = await bot.send("deploy checkout 1.4.2 to production")
        assert second.thread.id == first.thread.id
        assert second.thread.agent == "deployer"
        assert second.status == ThreadStatus.PAUSED
        assert second.request is not None and second.request.tool == "deploy"


async def test_a_decision_that_loses_a_race_is_refused_and_recorded(
    sqlite_database, make_ops, monkeypatch
) -> None:
    ops = await make_ops(sqlite_database, ScriptedModel([DEPLOY, Reply(text="done")]))
    outcome = await ops.submit(message("deploy checkout 1.4.2 to production"))
    request_id = outcome.thread.events[-2].request_id
    stale = await ops.store.human_request(request_id)  # read before the approval commits
    await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))

    real_claim = ops.store.claim

    async def as_read_before(*args, **kwargs):
        # The worker's lease lapsed after it read the request, and the approval won.
        return dataclasses.replace(await real_claim(*args, **kwargs), request=stale)

    monkeypatch.setattr(ops.store, "claim", as_read_before)
    late = Identity(channel="cli", user_id="oncall-2")
    with pytest.raises(DecisionRefusedError, match="already decided"):
        await ops.submit(action(request_id, HumanDecision.REJECT, late, "too late"))
    thread = await ops.store.load_thread(outcome.thread.id)
    refused = thread.events[-1]
    assert isinstance(refused, DecisionRefused) and refused.actor == late
    assert [e.kind for e in thread.events].count("human_response") == 1
