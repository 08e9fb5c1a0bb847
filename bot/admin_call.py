"""One tool call made by an admin, through the same policy and thread machinery as chat.

``opsloop tools run NAME --args JSON --as USER`` checks an integration without a language
model: a new terminal thread is opened as USER with the message ``call NAME {...}``, and
for this one run the model is :class:`AdminCallModel`, which decides exactly that call and
then replies with its result. Every step is recorded as if a model had decided it (the
thread says which: provider ``admin``, model ``tools-run``), so policy applies unchanged:
a change that needs approval pauses the thread with a request that ``opsloop approve``
decides like any other.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue, ValidationError

from bot.agent import Agent, AgentRegistry
from bot.app import Opsloop, Outcome
from bot.errors import BadInputError, NotFoundError
from bot.events import (
    CallTool,
    ConversationRef,
    ErrorRaised,
    Identity,
    MessageReceived,
    Reply,
    ToolReturned,
    new_id,
)
from bot.model import Model, ModelRequest, ModelResponse
from bot.policy import Policy
from bot.policy_check import tools_in_force
from bot.tools import Tool, format_validation_error

__all__ = ["AdminCallModel", "admin_call", "check_person", "find_tool"]


class AdminCallModel(Model):
    """The "model" of an admin's tool run: it decides one given call, then reports the result.

    It never reads what the thread says: the call is the admin's, fixed before the run.
    """

    provider = "admin"
    model_name = "tools-run"

    def __init__(self, call: CallTool) -> None:
        """Decide ``call`` first; reply with its outcome after."""
        self.call = call
        self._decided = False

    async def request(self, request: ModelRequest) -> ModelResponse:
        """The call, the first time; a reply with the last outcome, after."""
        decision: CallTool | Reply
        if not self._decided:
            self._decided = True
            decision = self.call
        else:
            decision = Reply(text=_outcome_text(self.call.tool, request.events))
        return ModelResponse(decision=decision, provider=self.provider, model=self.model_name)


def _outcome_text(tool: str, events: Any) -> str:
    for event in reversed(events):
        if isinstance(event, ToolReturned):
            shown = json.dumps(event.output, ensure_ascii=False)
            return f"{tool} returned: {shown[:4000]}" + ("…" if len(shown) > 4000 else "")
        if isinstance(event, ErrorRaised):
            return f"{tool} did not run: {event.message}"
    return f"{tool}: nothing to report"


def find_tool(ops: Opsloop, name: str) -> Tool:
    """The tool in force called ``name``.

    Raises:
        NotFoundError: there is none; the message lists the known tools.
    """
    tools = tools_in_force(ops.runtime.tools, ops.runtime.agents.agents)
    found = tools.get(name)
    if found is None:
        raise NotFoundError(f"unknown tool {name!r}; known tools: {', '.join(tools) or 'none'}")
    return found


def check_person(policy: Policy, who: Identity) -> None:
    """Refuse a requester the policy does not know (the run is about what policy says of them).

    Raises:
        NotFoundError: no person or role in the policy has ``who``'s principal.
    """
    if who.principal not in policy.known_principals():
        raise NotFoundError(
            f"unknown person {who.user_id!r}: the policy names no {who.principal} "
            "(add it to a person's principals or to a role)"
        )


def _agent_for(registry: AgentRegistry, tool: Tool) -> Agent:
    """The first agent with ``tool``; else the default agent, given the tool for this run.

    The thread is that agent's, so a later approval (in any process) continues it there;
    the runtime runs an approved call of any tool in force.
    """
    for agent in registry.agents:
        if agent.tool(tool.name) is not None:
            return agent
    first = registry.agents[0]
    return dataclasses.replace(first, tools=(*first.tools, tool))


async def admin_call(
    ops: Opsloop, tool: Tool, arguments: Mapping[str, JsonValue], sender: Identity
) -> Outcome:
    """Call ``tool`` with ``arguments`` as ``sender`` in a new terminal thread.

    Returns:
        The outcome: the thread, paused on an approval request, or with the tool's result
        (or error) and a reply.

    Raises:
        BadInputError: the arguments are not valid for the tool (nothing was recorded).
        NotFoundError: the policy does not know ``sender``.
    """
    check_person(ops.runtime.policy, sender)
    try:
        valid = tool.validate(arguments)
    except ValidationError as exc:
        raise BadInputError(format_validation_error(tool.name, exc)) from None
    decided = valid.model_dump(mode="json")
    agent = _agent_for(ops.runtime.agents, tool)
    agents = ops.runtime.agents
    registry = AgentRegistry(
        agents=tuple(agent if a.name == agent.name else a for a in agents.agents),
        router=agents.router,
    )
    model = AdminCallModel(CallTool(tool=tool.name, arguments=decided))
    runtime = dataclasses.replace(ops.runtime, agents=registry, models={"default": model})
    message = MessageReceived(
        idempotency_key=f"cli:{new_id('msg')}",
        conversation=ConversationRef(channel="cli", room="terminal", thread_key=uuid.uuid4().hex),
        sender=sender,
        text=f"call {tool.name} {json.dumps(decided, ensure_ascii=False)}",
        agent=agent.name,
    )
    return await Opsloop(ops.store, runtime).submit(message)
