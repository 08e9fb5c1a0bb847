"""The offline model: phrasings to tool calls, summaries of results, and its notice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents import DEPLOYER, INSPECTOR
from bot.agent import Agent
from bot.events import (
    AgentReply,
    CallTool,
    ErrorRaised,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    Reply,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from bot.model import ModelRequest
from bot.model.offline import OFFLINE_NOTICE, OfflineModel

ANN = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")


def request(agent: Agent, *events) -> ModelRequest:
    return ModelRequest(
        agent=agent.name,
        system="",
        context="",
        tools=agent.specs,
        events=events,
    )


def ask(agent: Agent, text: str, *later) -> CallTool | Reply:
    return OfflineModel().decide(request(agent, UserMessage(sender=ANN, text=text), *later))


def called(tool: str, **arguments) -> ToolCalled:
    return ToolCalled(call_id="c_1", tool=tool, arguments=arguments, idempotency_key="t:2")


def returned(tool: str, output) -> ToolReturned:
    return ToolReturned(call_id="c_1", tool=tool, output=output)


# ---------------------------------------------------------------- phrasings


@pytest.mark.parametrize(
    ("agent", "text", "tool", "arguments"),
    [
        (INSPECTOR, "what is running in staging?", "list_services", {"environment": "staging"}),
        (INSPECTOR, "What is running?", "list_services", {}),
        (INSPECTOR, "list services", "list_services", {}),
        (
            DEPLOYER,
            "deploy checkout 1.4.2 to production",
            "deploy",
            {"service": "checkout", "version": "1.4.2", "environment": "production"},
        ),
        (
            DEPLOYER,
            "please Deploy search v0.18.1-rc.1 into staging",
            "deploy",
            {"service": "search", "version": "v0.18.1-rc.1", "environment": "staging"},
        ),
        (
            DEPLOYER,
            "restart search in staging",
            "restart",
            {"service": "search", "environment": "staging"},
        ),
        (
            DEPLOYER,
            "roll back payments in production",
            "rollback",
            {"service": "payments", "environment": "production"},
        ),
        (
            DEPLOYER,
            "rollback payments on production",
            "rollback",
            {"service": "payments", "environment": "production"},
        ),
        (INSPECTOR, "recent deploys of checkout", "recent_deploys", {"service": "checkout"}),
        (INSPECTOR, "show me the deploy history", "recent_deploys", {}),
        (
            INSPECTOR,
            "status of checkout in production",
            "service_status",
            {"service": "checkout", "environment": "production"},
        ),
        (
            DEPLOYER,
            "how is search in staging?",
            "service_status",
            {"service": "search", "environment": "staging"},
        ),
    ],
)
def test_phrasing_becomes_a_tool_call(agent, text, tool, arguments):
    assert ask(agent, text) == CallTool(tool=tool, arguments=arguments)


def test_the_latest_message_decides():
    decision = OfflineModel().decide(
        request(
            INSPECTOR,
            UserMessage(sender=ANN, text="status of checkout in production"),
            returned("service_status", {"ok": True}),
            AgentReply(text="fine", agent="inspector"),
            UserMessage(sender=ANN, text="what is running in staging?"),
        )
    )

    assert decision == CallTool(tool="list_services", arguments={"environment": "staging"})


def test_arguments_the_offline_model_picks_validate_against_the_tools():
    decision = ask(DEPLOYER, "deploy checkout 1.4.2 to production")

    assert isinstance(decision, CallTool)
    args = DEPLOYER.tool("deploy").validate(decision.arguments)
    assert args.model_dump() == {
        "service": "checkout",
        "version": "1.4.2",
        "environment": "production",
    }


def test_unknown_phrase_gets_help_and_the_offline_notice():
    decision = ask(INSPECTOR, "make me a sandwich")

    assert isinstance(decision, Reply)
    assert decision.text.endswith(OFFLINE_NOTICE)
    assert "'what is running in staging?'" in decision.text
    assert "ANTHROPIC_API_KEY" in decision.text
    assert "OPSLOOP_MODELS" in decision.text


def test_no_message_at_all_gets_help():
    decision = OfflineModel().decide(request(INSPECTOR))

    assert isinstance(decision, Reply)
    assert decision.text.startswith("I understand requests such as")


def test_tool_the_agent_lacks_is_refused():
    decision = ask(INSPECTOR, "deploy checkout 1.4.2 to production")

    assert decision == Reply(
        text=f"I (inspector) cannot run deploy; start a new thread for that.\n{OFFLINE_NOTICE}"
    )


def test_list_services_is_not_a_deployer_tool():
    decision = ask(DEPLOYER, "what is running in staging?")

    assert isinstance(decision, Reply)
    assert decision.text.startswith("I (deployer) cannot run list_services;")


# ---------------------------------------------------------------- after a tool ran


def test_tool_result_is_summarised():
    output = [
        {
            "service": "checkout",
            "environment": "staging",
            "version": "1.4.2",
            "health": "healthy",
            "replicas": 2,
        },
        {
            "service": "search",
            "environment": "staging",
            "version": "0.18.0",
            "health": "degraded",
            "replicas": 1,
        },
    ]

    decision = ask(
        INSPECTOR,
        "what is running in staging?",
        called("list_services", environment="staging"),
        returned("list_services", output),
    )

    assert decision == Reply(
        text="- checkout 1.4.2 in staging: healthy, 2 replicas\n"
        "- search 0.18.0 in staging: degraded, 1 replica\n"
        f"{OFFLINE_NOTICE}"
    )


def test_change_record_is_summarised_with_its_approver():
    record = {
        "id": 9,
        "action": "deploy",
        "service": "checkout",
        "environment": "production",
        "version": "1.4.2",
        "previous_version": "1.4.1",
        "requested_by": "cli:dev-1",
        "approved_by": "cli:oncall-1",
        "at": "2030-01-01T12:00:00+00:00",
    }

    decision = ask(
        DEPLOYER,
        "deploy checkout 1.4.2 to production",
        called("deploy", service="checkout", version="1.4.2", environment="production"),
        returned("deploy", record),
    )

    assert isinstance(decision, Reply)
    assert decision.text.splitlines()[0] == (
        "- deploy checkout 1.4.1 -> 1.4.2 in production at 2030-01-01T12:00:00+00:00, "
        "approved by cli:oncall-1"
    )
    assert decision.text.endswith(OFFLINE_NOTICE)


def test_empty_result_says_nothing_was_found():
    decision = ask(INSPECTOR, "recent deploys of nothing", returned("recent_deploys", []))

    assert decision == Reply(text=f"Nothing found.\n{OFFLINE_NOTICE}")


def test_rejection_names_who_rejected_and_why():
    rejection = {"rejected": True, "by": "cli:oncall-1", "reason": "change freeze until Monday"}

    decision = ask(
        DEPLOYER,
        "deploy checkout 1.4.2 to production",
        HumanRequested(
            request_id="hr_1",
            type="approval",
            tool="deploy",
            question="Approve?",
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        ),
        HumanResponded(
            request_id="hr_1",
            decision=HumanDecision.REJECT,
            actor=ONCALL,
            comment="change freeze until Monday",
        ),
        returned("deploy", rejection),
    )

    assert isinstance(decision, Reply)
    assert decision.text.splitlines()[0] == (
        "The change was rejected by cli:oncall-1: change freeze until Monday."
    )
    assert decision.text.endswith(OFFLINE_NOTICE)


@pytest.mark.parametrize("reason", ["", None])
def test_rejection_without_a_reason(reason):
    decision = ask(
        DEPLOYER,
        "restart search in staging",
        returned("restart", {"rejected": True, "by": "Olga", "reason": reason}),
    )

    assert isinstance(decision, Reply)
    assert decision.text.splitlines()[0] == "The change was rejected by Olga: no reason given."


def test_error_after_the_message_is_reported():
    decision = ask(
        INSPECTOR,
        "status of nope in production",
        called("service_status", service="nope", environment="production"),
        ErrorRaised(source="tool", message="no service 'nope'", tool="service_status"),
    )

    assert decision == Reply(text=f"That did not work: no service 'nope'\n{OFFLINE_NOTICE}")


def test_result_followed_by_a_reply_is_not_summarised_again():
    # After the agent replied, the last message decides again (here: help text).
    decision = ask(
        INSPECTOR,
        "hello",
        returned("list_services", []),
        AgentReply(text="Nothing found.", agent="inspector"),
    )

    assert isinstance(decision, Reply)
    assert decision.text.startswith("I understand requests such as")


async def test_request_labels_the_response_as_offline():
    response = await OfflineModel().request(
        request(DEPLOYER, UserMessage(sender=ANN, text="restart search in staging"))
    )

    assert response.provider == "offline"
    assert response.model == "offline-patterns"
    assert response.decision == CallTool(
        tool="restart", arguments={"service": "search", "environment": "staging"}
    )
    assert response.usage.input_tokens == response.usage.output_tokens == 0


def test_a_text_result_is_shown_as_written_not_as_a_json_string():
    """Regression: an MCP server's multi-line text came back as one quoted line with \\n."""
    text = "On branch master\nmodified:   README.md"
    reply = ask(INSPECTOR, "call list_services", called("list_services"), returned("x", text))
    assert isinstance(reply, Reply)
    assert reply.text.startswith(f"{text}\n")
