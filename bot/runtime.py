"""The stateless reducer: ``step(thread) -> new events``, and the loop that drives it.

:func:`step` is a function of its inputs (the thread, the agent, the model, the policy and
the clock): it renders the context, asks the model for one decision, validates it and says
what happens next as events. It runs nothing. :func:`advance` is the plain-Python control
flow around it: it runs the tool a step chose (once, under an idempotency key), commits each
step's events with their outbound messages, and stops at a reply, a human request or the
step budget.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.agent import Agent, AgentRegistry, system_prompt
from bot.config import Settings
from bot.context import render_context
from bot.decisions import change_key
from bot.errors import ModelError, ModelUnavailableError, NoDecisionError
from bot.events import (
    AgentReply,
    CallTool,
    ErrorRaised,
    HumanRequested,
    HumanResponded,
    Identity,
    ModelCalled,
    Reply,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    UserMessage,
    new_id,
    utcnow,
)
from bot.model import Model, ModelRequest
from bot.model.pricing import cost_usd
from bot.policy import ApprovalRule, Policy
from bot.prompts import PromptLibrary
from bot.store import Store, Thread
from bot.tool_calls import (
    last_requester,
    requesters,
    run_tool,
    tool_in_force,
    unresolved_call,
)
from bot.tools import (
    ASK_HUMAN,
    AskHumanArgs,
    Resource,
    Tool,
    format_validation_error,
)
from bot.turn import Turn, commit

__all__ = [
    "Runtime",
    "Turn",
    "advance",
    "change_key",
    "requesters",
    "step",
    "tool_in_force",
    "unresolved_call",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """What steps need besides the thread: fixed for the life of a process."""

    settings: Settings
    """Budgets and prices."""
    policy: Policy
    """Approval rules and roles."""
    prompts: PromptLibrary
    """Prompt templates."""
    agents: AgentRegistry
    """The agents."""
    models: Mapping[str, Model]
    """Model chains by route; ``default`` must be present."""
    resources: Mapping[Resource[Any], object] = field(default_factory=dict)
    """Shared services for tools, by their typed keys."""
    tools: Mapping[str, Tool] = field(default_factory=dict)
    """Every tool in force by name (the agents' and any no agent uses), for admin runs."""
    clock: Callable[[], datetime] = utcnow
    """The time, injectable for tests."""

    def model_for(self, agent: Agent) -> Model:
        """The model chain for ``agent``'s route (falling back to ``default``)."""
        return self.models.get(agent.model_route) or self.models["default"]


def rule_for_call(
    policy: Policy, thread: Thread, events: Sequence[Any], tool: Tool, args: BaseModel
) -> ApprovalRule:
    """The policy rule for ``tool`` called with validated ``args`` after ``events`` of ``thread``.

    The model's call and an approver's edit of it are both put to the policy this way.
    """
    people, _ = requesters(events)
    return policy.rule_for(
        tool=tool.name,
        tier=tool.tier,
        channel=thread.conversation.channel,
        requester=last_requester(events),
        requesters=people,
        attributes=_attributes(tool, args),
    )


def _attributes(tool: Tool, args: BaseModel) -> dict[str, str]:
    """What the call touches; nothing (so only rules naming the tool match) if that fails."""
    try:
        return tool.attributes(args)
    except Exception:  # a broken risk function must not let a change through
        log.exception("tool %s: its risk function failed; no rule's where matches", tool.name)
        return {}


def _steps_this_run(events: Sequence[Any]) -> int:
    count = 0
    for event in reversed(events):
        if isinstance(event, UserMessage | HumanResponded):
            break
        if isinstance(event, ModelCalled):
            count += 1
    return count


def _errors_in_a_row(events: Sequence[Any]) -> list[ErrorRaised]:
    errors: list[ErrorRaised] = []
    for event in reversed(events):
        if isinstance(event, ErrorRaised):
            errors.append(event)
        elif not isinstance(event, ModelCalled | StatusChanged):
            break
    return errors


def _describe_call(tool: str, arguments: Mapping[str, Any]) -> str:
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{tool}({args})"


async def step(thread: Thread, agent: Agent, rt: Runtime) -> list[Any]:
    """Decide the thread's next events. Runs no tool and writes nothing."""
    now = rt.clock()
    events = thread.events
    errors = _errors_in_a_row(events)
    if len(errors) >= rt.settings.max_consecutive_errors:
        return _escalate(thread, errors, rt, now)
    if _steps_this_run(events) >= agent.max_steps:
        text = (
            f"I stopped after {agent.max_steps} steps without finishing. "
            "Tell me how to continue, or narrow the request."
        )
        return [
            ErrorRaised(source="budget", message=f"step budget of {agent.max_steps} used up"),
            AgentReply(text=text, agent=agent.name),
            StatusChanged(status=ThreadStatus.WAITING, reason="step budget used up"),
        ]

    system, prompt = system_prompt(agent, rt.prompts)
    request = ModelRequest(
        agent=agent.name,
        system=system,
        context=render_context(events, budget_tokens=rt.settings.context_tokens),
        tools=agent.specs,
        events=events,
    )
    model = rt.model_for(agent)
    started = time.perf_counter()
    try:
        response = await model.request(request)
    except NoDecisionError as exc:
        return [
            _model_called(agent, model, prompt.sha256, started, error=str(exc)),
            ErrorRaised(source="model", message=str(exc)),
        ]
    except ModelError as exc:
        reason = str(exc)
        reply = (
            "I could not reach the language model just now "
            f"({reason}). Nothing was changed; please try again in a little while."
            if isinstance(exc, ModelUnavailableError)
            else f"The language model refused the request ({reason}). Nothing was changed."
        )
        return [
            _model_called(agent, model, prompt.sha256, started, error=reason),
            ErrorRaised(source="model", message=reason),
            AgentReply(text=reply, agent=agent.name),
            StatusChanged(status=ThreadStatus.WAITING, reason="model unavailable"),
        ]
    latency = (time.perf_counter() - started) * 1000
    called = ModelCalled(
        agent=agent.name,
        provider=response.provider,
        model=response.model,
        prompt_hash=prompt.sha256,
        usage=response.usage,
        cost_usd=cost_usd(response.usage, response.model, rt.settings.prices),
        latency_ms=round(latency, 3),
        decision=response.decision,
    )
    decision = response.decision
    if decision is None:
        message = "no decision: answer with a reply, or call exactly one tool"
        return [called, ErrorRaised(source="model", message=message)]
    if isinstance(decision, Reply):
        if not decision.text.strip():
            return [called, ErrorRaised(source="model", message="empty reply")]
        return [
            called,
            AgentReply(text=decision.text, agent=agent.name),
            StatusChanged(status=ThreadStatus.WAITING),
        ]
    return [called, *_decide_call(thread, agent, decision, rt, now)]


def _decide_call(
    thread: Thread, agent: Agent, decision: CallTool, rt: Runtime, now: datetime
) -> list[Any]:
    tool = agent.tool(decision.tool)
    if tool is None:
        known = ", ".join(t.name for t in agent.all_tools)
        message = f"unknown tool {decision.tool!r}; available tools: {known}"
        return [ErrorRaised(source="validation", message=message, tool=decision.tool)]
    try:
        args = tool.validate(decision.arguments)
    except ValidationError as exc:
        message = format_validation_error(tool.name, exc)
        return [ErrorRaised(source="validation", message=message, tool=tool.name)]
    arguments = args.model_dump(mode="json")
    requester = last_requester(thread.events)
    people, turn = requesters(thread.events)
    expires = now + timedelta(seconds=rt.policy.approval.expires_in_seconds)
    if tool is ASK_HUMAN:
        assert isinstance(args, AskHumanArgs)
        return [
            HumanRequested(
                request_id=new_id("hr"),
                type="question",
                question=args.question,
                options=tuple(args.options),
                approvers=_question_audience(requester),
                requested_by=None,
                expires_at=expires,
            ),
            StatusChanged(status=ThreadStatus.PAUSED, reason="waiting for an answer"),
        ]
    call_id = new_id("call")
    rule = rule_for_call(rt.policy, thread, thread.events, tool, args)
    if rule.approval == "required":
        return [
            HumanRequested(
                at=now,  # escalation steps count from here, on the same clock as expiry
                request_id=new_id("hr"),
                type="approval",
                tool=tool.name,
                arguments=arguments,
                call_id=call_id,
                question=f"Approve {_describe_call(tool.name, arguments)}? ({rule.name})",
                approvers=rule.approvers,
                requested_by=requester.principal if requester else None,
                requesters=tuple(
                    dict.fromkeys(rt.policy.person_of(who.principal) for who in people)
                ),
                change_key=change_key(thread.id, tool.name, arguments, turn),
                four_eyes=rt.policy.approval.four_eyes,
                mode=rule.mode,
                min_approvals=rule.min_approvals,
                expires_at=expires,
                escalate_after=rule.escalate_after,
                escalate_to=rule.escalate_to,
                notify=rule.notify,
            ),
            StatusChanged(status=ThreadStatus.PAUSED, reason="waiting for approval"),
        ]
    return [
        ToolCalled(
            call_id=call_id,
            tool=tool.name,
            arguments=arguments,
            idempotency_key=f"{thread.id}:{thread.last_seq + 2}",
        )
    ]


def _question_audience(requester: Identity | None) -> tuple[str, ...]:
    # A clarifying question goes to the person who asked; anyone on call may also answer.
    return (requester.principal, "role:oncall") if requester else ("role:oncall",)


def _escalate(thread: Thread, errors: list[ErrorRaised], rt: Runtime, now: datetime) -> list[Any]:
    summary = "; ".join(e.message for e in reversed(errors))[:600]
    question = (
        f"I hit {len(errors)} errors in a row and stopped instead of looping: {summary}. "
        "How should I proceed?"
    )
    requester = last_requester(thread.events)
    return [
        HumanRequested(
            request_id=new_id("hr"),
            type="question",
            question=question,
            approvers=_question_audience(requester),
            expires_at=now + timedelta(seconds=rt.policy.approval.expires_in_seconds),
        ),
        StatusChanged(status=ThreadStatus.PAUSED, reason="escalated after repeated errors"),
    ]


def _model_called(
    agent: Agent, model: Model, prompt_hash: str, started: float, *, error: str
) -> ModelCalled:
    return ModelCalled(
        agent=agent.name,
        provider=model.provider,
        model=model.model_name,
        prompt_hash=prompt_hash,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        error=error,
    )


async def advance(
    store: Store,
    thread_id: str,
    rt: Runtime,
    *,
    thread: Thread | None = None,
    turn: Turn | None = None,
) -> Thread:
    """Drive a running thread until it replies, pauses or fails; return it.

    The caller holds the thread's lease (named in ``turn``, with the inbound event's own
    events still to commit, if any). Every step commits before the next begins, so a
    crash loses at most the step in flight. A tool call committed but not answered (its
    worker died, or later events arrived first) is always resolved before the model is
    asked anything: run again under its idempotency key, which the tool honours.

    Args:
        store: the store.
        thread_id: the thread.
        rt: the runtime.
        thread: the thread as committed, if the caller has just read it.
        turn: what the turn carries; a plain one (nothing carried, no lease) by default.
    """
    turn = turn or Turn()
    # Read once: each step's events extend it in memory, as the store's fence guarantees
    # nobody else appended in between (else the append fails and nothing is lost).
    thread = thread or await store.load_thread(thread_id)
    while (view := turn.view(thread)).status == ThreadStatus.RUNNING:
        agent = rt.agents.get(view.agent or "")
        call = unresolved_call(view.events)
        if call is not None and turn.carrying:
            # The decision that allows a tool is committed before the tool runs.
            thread = await commit(store, thread, [], turn)
            continue
        if call is not None:
            new: list[Any] = [await run_tool(view, agent, call, rt, store)]
        else:
            new = await step(view, agent, rt)
        thread = await commit(store, thread, new, turn)
    if turn.carrying:  # nothing ran (the thread is paused or waiting): commit what came in
        thread = await commit(store, thread, [], turn)
    return thread
