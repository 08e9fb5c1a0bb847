"""What the testing kit's recording channel saw: every outbound message, as plain text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from bot.events import ErrorRaised, HumanRequested, ToolCalled, ToolReturned
from bot.outbound import (
    DecisionNotice,
    OutboundReply,
    RequestProgress,
    RequestPrompt,
    RequestResolved,
    changes_text,
)

__all__ = ["Sent", "ToolUse", "render", "tool_uses"]


@dataclass(frozen=True)
class Sent:
    """One message opsloop would have sent out, as the recording channel got it."""

    thread_id: str
    """The thread it belongs to."""
    channel: str
    """The channel it goes to (``cli`` for the kit's conversations, ``slack`` for a
    ``notify = ["slack:#deploys"]`` card…)."""
    kind: str
    """``reply``, ``request`` (an approval or a question), ``resolved``, ``progress`` or
    ``notice`` (a refused decision, told to the person who tried)."""
    text: str
    """The message in words; a request's says its id (``hr_…``)."""
    message: Any
    """The :data:`bot.outbound.Outbound` message itself."""
    place: str | None = None
    """For a card posted outside the thread: where (``slack:#deploys``)."""


@dataclass(frozen=True)
class ToolUse:
    """One tool call and what came of it."""

    call: ToolCalled
    """The call, with its exact arguments (and who approved it)."""
    result: ToolReturned | ErrorRaised | None
    """Its result, its error, or ``None`` when it has not finished."""

    @property
    def output(self) -> JsonValue:
        """The tool's output.

        Raises:
            AssertionError: the call failed or has not finished (the message says which).
        """
        if isinstance(self.result, ToolReturned):
            return self.result.output
        if isinstance(self.result, ErrorRaised):
            raise AssertionError(f"{self.call.tool} failed: {self.result.message}")
        raise AssertionError(f"{self.call.tool} has no result yet")


def tool_uses(events: Any) -> list[ToolUse]:
    """Every tool call in ``events`` paired with its result (by call id), in call order."""
    results: dict[str, ToolReturned | ErrorRaised] = {}
    for event in events:
        if isinstance(event, ToolReturned | ErrorRaised) and event.call_id:
            results.setdefault(event.call_id, event)
    return [
        ToolUse(call=e, result=results.get(e.call_id)) for e in events if isinstance(e, ToolCalled)
    ]


def _request(asked: HumanRequested) -> str:
    if asked.type == "approval":
        by = f"; requested by {asked.requested_by}" if asked.requested_by else ""
        return (
            f"approval needed {asked.request_id}: {asked.question}"
            f" — may approve: {', '.join(asked.approvers)}{by}"
        )
    options = f" (options: {', '.join(asked.options)})" if asked.options else ""
    return f"question {asked.request_id}: {asked.question}{options}"


def render(message: Any) -> str:
    """An outbound message in words, as a plain-text channel would show it."""
    if isinstance(message, OutboundReply):
        return message.text
    if isinstance(message, RequestPrompt):
        return _request(message.request)
    if isinstance(message, RequestResolved):
        done = {"approve": "approved", "reject": "rejected", "answer": "answered"}
        how = done[message.decision.value] if message.actor else "expired"
        by = f" by {message.actor.label}" if message.actor else ""
        edit = f" with changes ({changes_text(message.changes)})" if message.changes else ""
        note = f": {message.comment}" if message.comment else ""
        return f"{how} {message.request_id}{edit}{by}{note}"
    if isinstance(message, RequestProgress):
        by = f" by {message.actor.label}" if message.actor else ""
        return (
            f"approved {message.request_id}{by} (so far: {', '.join(message.approved_by)};"
            f" still needed: {'; '.join(message.still_needed)})"
        )
    if isinstance(message, DecisionNotice):
        return f"to {message.to.label}: {message.text}"
    return str(message)
