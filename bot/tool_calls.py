"""Running committed tool calls: the one that is unanswered, the tool it names, its result.

A call is committed (a :class:`~bot.events.ToolCalled` event) before it runs, so a crash
leaves at most one call unanswered, and it is always finished before the model is asked
anything else: run again under its idempotency key, which the tool honours, or, for a tool
that cannot tell a repeat, reported as possibly done (:class:`~bot.store.Store`'s ledger of
started calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot._log_memo import LogMemo
from bot.errors import ToolError
from bot.events import (
    ErrorRaised,
    HumanResponded,
    Identity,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from bot.tools import Tool, ToolContext

if TYPE_CHECKING:
    from bot.agent import Agent
    from bot.runtime import Runtime
    from bot.store import Store, Thread

__all__ = [
    "last_requester",
    "requesters",
    "run_tool",
    "tool_in_force",
    "unresolved_call",
]


def last_requester(events: Sequence[Any]) -> Identity | None:
    """Who wrote the thread's last message."""
    for event in reversed(events):
        if isinstance(event, UserMessage):
            return event.sender
    return None


class _Calls:
    """A log's committed calls that no later result or error answers yet, oldest first."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.open: dict[int, ToolCalled] = {}
        """By position in the log: insertion order is log order."""
        self.by_id: dict[str, list[int]] = {}

    def extend(self, events: Sequence[Any]) -> bool:
        for index, event in enumerate(events[len(self.seen) :], start=len(self.seen)):
            if isinstance(event, ToolCalled):
                self.open[index] = event
                self.by_id.setdefault(event.call_id, []).append(index)
            elif isinstance(event, ToolReturned) or (
                isinstance(event, ErrorRaised) and event.call_id
            ):
                for answered in self.by_id.pop(event.call_id or "", ()):
                    del self.open[answered]
            self.seen.append(event)
        return True


_CALLS: LogMemo[_Calls] = LogMemo(_Calls)


class _Speakers:
    """Who spoke since the last decision (and who commented on decisions since), per log."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.first = -1
        """Where the messages since the decision before them begin (-1: none yet)."""
        self.senders: list[Identity] = []
        """Who sent them, each once, the latest sender last."""
        self.commenters: list[Identity] = []
        """Deciders who commented since the last message."""
        self.decided = False
        """A decision came after the last message."""

    def extend(self, events: Sequence[Any]) -> bool:
        for index, event in enumerate(events[len(self.seen) :], start=len(self.seen)):
            if isinstance(event, UserMessage):
                if self.decided or self.first < 0:
                    self.first, self.senders = index, []
                if event.sender in self.senders:  # a handful of people: a short list
                    self.senders.remove(event.sender)
                self.senders.append(event.sender)
                self.decided, self.commenters = False, []
            elif isinstance(event, HumanResponded):
                self.decided = True
                if event.actor is not None and event.comment:
                    self.commenters.append(event.actor)
            self.seen.append(event)
        return True


_SPEAKERS: LogMemo[_Speakers] = LogMemo(_Speakers)


def requesters(events: Sequence[Any]) -> tuple[list[Identity], int]:
    """Everyone whose words led to what the agent does next, and the turn it belongs to.

    That is every sender of a message since the last decision, and every decider whose
    comment the agent has read since (a comment is never a request, but whoever wrote it
    may not approve what followed it). When nobody has spoken since the last decision, the
    run carries on from it, so the people behind that decision's request count too.
    Worked out once per log and kept, like :func:`unresolved_call`.

    Returns:
        The identities (latest first, repeats kept out) and the sequence number of the
        earliest message among them: the turn an approved change is keyed to.
    """
    with _SPEAKERS.state(events) as speakers:
        found: list[Identity] = []
        for who in [*reversed(speakers.commenters), *reversed(speakers.senders)]:
            if who not in found:
                found.append(who)
        turn = speakers.first + 1
    return found, turn


def unresolved_call(events: Sequence[Any]) -> ToolCalled | None:
    """The earliest committed tool call with no result yet (its run was cut short).

    Worked out once per log and kept: a later call with the log grown looks only at the
    events added since.
    """
    with _CALLS.state(events) as calls:
        index = next(iter(calls.open), None)
    return None if index is None else events[index]  # this log's own object


def tool_in_force(rt: Runtime, name: str, agent: Agent | None = None) -> Tool | None:
    """The tool ``name``: ``agent``'s own, else any in force.

    An admin's ``opsloop tools run`` may have called a tool the thread's agent does not
    list; its call was put to policy like any other.
    """
    own = agent.tool(name) if agent is not None else None
    if own is not None:
        return own
    found = rt.tools.get(name)
    if found is not None:
        return found
    return next((t for a in rt.agents.agents if (t := a.tool(name)) is not None), None)


async def run_tool(
    thread: Thread, agent: Agent, call: ToolCalled, rt: Runtime, store: Store | None = None
) -> Any:
    """Run a committed call that has no result yet; its result or error, as one event.

    A tool that cannot tell a repeat (:attr:`~bot.tools.Tool.repeatable` false) is claimed in
    ``store`` first: a call claimed before (its run was cut short, or an earlier approval of
    the same change ran it) is not run again but reported, for a person to check.
    """
    tool = tool_in_force(rt, call.tool, agent)
    if tool is None:
        return ErrorRaised(
            source="tool", message=f"tool {call.tool!r} is gone", call_id=call.call_id
        )
    if not tool.repeatable and store is not None:
        started = not await store.claim_tool_run(
            call.idempotency_key, thread_id=thread.id, tool=tool.name
        )
        if started:
            message = (
                f"{tool.name} was started before under this call's key and cannot tell a "
                "repeat, so it was not run again: it may or may not have taken effect (opsloop "
                "was interrupted, or the same change ran already). Check before asking again."
            )
            return ErrorRaised(source="tool", message=message, tool=tool.name, call_id=call.call_id)
    ctx = ToolContext(
        thread_id=thread.id,
        idempotency_key=call.idempotency_key,
        requested_by=last_requester(thread.events),
        approved_by=call.approved_by,
        resources=rt.resources,
    )
    try:
        output = await tool.run(ctx, tool.validate(call.arguments))
    except Exception as exc:  # a tool's failure is the model's to read, not a crash
        # A tool's own error says what went wrong; anything else is named by its type.
        why = str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
        message = f"{tool.name} failed: {why}"[:500]
        return ErrorRaised(source="tool", message=message, tool=tool.name, call_id=call.call_id)
    return ToolReturned(
        call_id=call.call_id, tool=tool.name, output=output, untrusted=tool.untrusted_output
    )
