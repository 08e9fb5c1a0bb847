"""The reducer and its loop: errors become events, budgets hold, crashes repeat nothing."""

from __future__ import annotations

import pytest

from bot.errors import ModelUnavailableError, NoDecisionError
from bot.events import (
    AgentReply,
    CallTool,
    ConversationRef,
    ErrorRaised,
    HumanRequested,
    Identity,
    ModelCalled,
    Reply,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
    Usage,
    UserMessage,
)
from bot.inventory import INVENTORY
from bot.model import FunctionModel, ModelRequest, ModelResponse, ScriptedModel
from bot.runtime import advance, step
from tests.fakes import message_event

DEV = Identity(channel="cli", user_id="dev-1")


def message(text: str):
    return message_event(text, sender=DEV)


def errors_of(events) -> list[ErrorRaised]:
    return [e for e in events if isinstance(e, ErrorRaised)]


async def test_malformed_arguments_go_back_to_the_model(sqlite_database, make_ops) -> None:
    model = ScriptedModel(
        [
            CallTool(tool="service_status", arguments={"service": "checkout", "env": "prod"}),
            Reply(text="sorry"),
        ]
    )
    ops = await make_ops(sqlite_database, model)
    outcome = await ops.submit(message("status of checkout"))
    [error] = errors_of(outcome.new_events)
    assert error.source == "validation" and error.tool == "service_status"
    assert "environment: Field required" in error.message
    assert "env: Extra inputs are not permitted" in error.message
    assert "<error" in model.requests[1].context
    assert "environment: Field required" in model.requests[1].context
    assert outcome.thread.status == ThreadStatus.WAITING


async def test_unknown_tool_lists_the_available_ones(sqlite_database, make_ops) -> None:
    model = ScriptedModel([CallTool(tool="drop_database", arguments={}), Reply(text="no")])
    ops = await make_ops(sqlite_database, model)
    outcome = await ops.submit(message("status of checkout"))
    [error] = errors_of(outcome.new_events)
    assert "unknown tool 'drop_database'" in error.message
    assert "list_services" in error.message


async def test_no_decision_is_an_error_the_model_sees(sqlite_database, make_ops) -> None:
    model = ScriptedModel([None, Reply(text="here")])
    ops = await make_ops(sqlite_database, model)
    outcome = await ops.submit(message("hello"))
    [error] = errors_of(outcome.new_events)
    assert error.source == "model" and "no decision" in error.message
    assert outcome.thread.events[-2] == AgentReply(
        text="here", agent="inspector", at=outcome.thread.events[-2].at
    )


async def test_three_errors_in_a_row_escalate_to_a_human(sqlite_database, make_ops) -> None:
    def broken(request: ModelRequest) -> CallTool:
        raise NoDecisionError("the model's arguments for tool x were not valid JSON")

    model = FunctionModel(broken)
    ops = await make_ops(sqlite_database, model)
    outcome = await ops.submit(message("status of checkout in production"))
    assert len(model.requests) == 3
    assert len(errors_of(outcome.new_events)) == 3
    escalation = outcome.thread.events[-2]
    assert isinstance(escalation, HumanRequested) and escalation.type == "question"
    assert "3 errors in a row" in escalation.question
    assert "not valid JSON" in escalation.question
    assert outcome.thread.status == ThreadStatus.PAUSED


async def test_provider_timeout_ends_the_run_with_a_clear_reply(database, make_ops) -> None:
    def down(request: ModelRequest) -> Reply:
        raise ModelUnavailableError("anthropic timed out after 60s", retry_after=None)

    ops = await make_ops(database, FunctionModel(down))
    outcome = await ops.submit(message("what is running in staging?"))
    assert outcome.thread.status == ThreadStatus.WAITING
    call = next(e for e in outcome.new_events if isinstance(e, ModelCalled))
    assert call.error == "anthropic timed out after 60s" and call.decision is None
    reply = outcome.thread.events[-2]
    assert isinstance(reply, AgentReply)
    assert "could not reach the language model" in reply.text
    assert "Nothing was changed" in reply.text
    # The store is consistent: the thread is free and the inbox item done.
    assert (await ops.store.inbox_item(outcome.item.id)).status == "done"
    assert await ops.store.acquire_lease(outcome.thread.id, "someone-else", 5)


async def test_step_budget_stops_a_looping_agent(sqlite_database, make_ops) -> None:
    model = FunctionModel(lambda r: CallTool(tool="list_services", arguments={}))
    ops = await make_ops(sqlite_database, model)
    outcome = await ops.submit(message("what is running?"))
    assert len(model.requests) == 5  # the inspector's budget
    budget = errors_of(outcome.new_events)[-1]
    assert budget.source == "budget"
    assert "stopped after 5 steps" in outcome.thread.events[-2].text


async def test_failing_tool_becomes_an_error_event(sqlite_database, make_ops) -> None:
    model = ScriptedModel(
        [
            CallTool(
                tool="service_status", arguments={"service": "nope", "environment": "staging"}
            ),
            Reply(text="no such service"),
        ]
    )
    ops = await make_ops(sqlite_database, model)
    outcome = await ops.submit(message("status of nope in staging"))
    [error] = errors_of(outcome.new_events)
    assert error.source == "tool"
    assert "no service 'nope' in 'staging'" in error.message
    assert "checkout" in error.message


async def test_model_call_records_usage_cost_and_prompt_hash(sqlite_database, make_ops) -> None:
    usage = Usage(input_tokens=1000, output_tokens=100, cached_tokens=2000)

    def fn(request: ModelRequest) -> ModelResponse:
        return ModelResponse(
            decision=Reply(text="ok"), provider="anthropic", model="claude-sonnet-4-5", usage=usage
        )

    ops = await make_ops(sqlite_database, FunctionModel(fn))
    outcome = await ops.submit(message("hello"))
    call = next(e for e in outcome.new_events if isinstance(e, ModelCalled))
    assert (call.provider, call.model, call.agent) == (
        "anthropic",
        "claude-sonnet-4-5",
        "inspector",
    )
    assert call.usage == usage
    # 1000 * 3 + 100 * 15 + 2000 * 0.3 per million.
    assert call.cost_usd == pytest.approx(0.0051)
    assert call.prompt_hash == ops.runtime.prompts.get("inspector").sha256
    assert call.latency_ms >= 0


async def test_step_is_a_pure_function_of_the_thread(sqlite_database, make_ops) -> None:
    ops = await make_ops(sqlite_database, FunctionModel(lambda r: Reply(text="same")))
    outcome = await ops.submit(message("hello"))
    thread = await ops.store.load_thread(outcome.thread.id)
    agent = ops.runtime.agents.get("inspector")
    first = await step(thread, agent, ops.runtime)
    second = await step(thread, agent, ops.runtime)
    strip = [e.model_dump(exclude={"at", "latency_ms"}) for e in first]
    assert strip == [e.model_dump(exclude={"at", "latency_ms"}) for e in second]
    assert (await ops.store.load_thread(thread.id)).last_seq == thread.last_seq


async def test_a_recorded_but_unanswered_call_runs_once_on_recovery(database, make_ops) -> None:
    """A worker that died after recording a call: the next one runs it under the same key."""
    model = ScriptedModel([Reply(text="restarted"), Reply(text="restarted")])
    ops = await make_ops(database, model)
    conversation = ConversationRef(channel="cli", thread_key="crash")
    thread_id = await ops.store.open_thread(conversation, title="restart")
    call = ToolCalled(
        call_id="call_1",
        tool="restart",
        arguments={"service": "search", "environment": "staging"},
        idempotency_key=f"{thread_id}:3",
    )
    events = [
        UserMessage(sender=DEV, text="restart search in staging"),
        StatusChanged(status=ThreadStatus.RUNNING, agent="deployer"),
        call,
    ]
    await ops.store.append(thread_id, expected_seq=0, events=events)
    thread = await advance(ops.store, thread_id, ops.runtime)
    assert [e.kind for e in thread.events[3:]] == [
        "tool_result",
        "model_call",
        "agent_reply",
        "status",
    ]
    # Simulate the same call being delivered again (a redelivered task): no second restart.
    await ops.store.append(
        thread_id,
        expected_seq=thread.last_seq,
        events=[StatusChanged(status=ThreadStatus.RUNNING), call],
    )
    again = await advance(ops.store, thread_id, ops.runtime)
    results = [e for e in again.events if isinstance(e, ToolReturned)]
    assert results[0].output == results[1].output
    inventory = ops.runtime.resources[INVENTORY]
    history = await inventory.recent_deploys("search", "staging", 10)
    assert [h["action"] for h in history].count("restart") == 1
