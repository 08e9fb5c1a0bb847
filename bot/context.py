"""Own the context window: the thread rendered by code as compact tagged blocks.

Each event becomes one block such as ``<tool_call tool="deploy" id="c_1">{...}</tool_call>``.
When the blocks exceed the token budget, :func:`compact` applies explicit rules, in order:

1. errors that were resolved (a later tool result or reply followed) are dropped;
2. tool output older than the last ``keep_recent_results`` results is trimmed;
3. the oldest blocks are dropped (the thread's first message is kept), leaving a marker
   that says how many were left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from bot.events import (
    AgentReply,
    ApprovalGiven,
    ErrorRaised,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    ToolCalled,
    ToolReturned,
    UserMessage,
)

__all__ = ["PAYLOAD_CHARS", "Block", "compact", "estimate_tokens", "render_context", "render_event"]

TRIMMED_OUTPUT_CHARS = 300
PAYLOAD_CHARS = 2000
"""The most of a trigger's payload shown to the model (the rest is cut, with a marker)."""


@dataclass(frozen=True)
class Block:
    """One rendered event."""

    index: int
    """Position of the event in the thread."""
    kind: str
    """The event's kind."""
    text: str
    """The rendered block."""


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters a token), for budgeting only."""
    return len(text) // 4 + 1


def _attrs(**values: Any) -> str:
    return "".join(f' {k}="{escape(str(v))}"' for k, v in values.items() if v is not None)


def _json(value: Any) -> str:
    # Escaped like any text, so tool output cannot forge a tag such as </tool_result>.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return escape(text, quote=False)


def _payload(message: UserMessage) -> str:
    """A trigger's data, bounded and escaped, in a block the prompts say never to obey."""
    if not message.payload:
        return ""
    text = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False, default=str)
    cut = len(text) - PAYLOAD_CHARS
    shown = escape(text[:PAYLOAD_CHARS], quote=False) + (f"…[{cut} chars cut]" if cut > 0 else "")
    attrs = _attrs(**{"from": message.source, "trust": "untrusted data"})
    return f"\n<trigger_payload{attrs}>{shown}</trigger_payload>"


def _edit_note(event: HumanResponded, asked: HumanRequested | None) -> str:
    """What an approver changed, old -> new, so the model knows the call it asked for was edited."""
    before = (asked.arguments if asked else None) or {}

    def shown(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    changed = ", ".join(
        f"{key} {shown(before.get(key))} -> {shown(value)}"
        for key, value in (event.changes or {}).items()
    )
    by = event.actor.label if event.actor else "expiry"
    return f"<note>approved with changes by {escape(by)}: {escape(changed, quote=False)}</note>"


def render_event(
    event: Any, *, trim_output: bool = False, requests: Mapping[str, HumanRequested] | None = None
) -> str | None:
    """One event as a tagged block, or ``None`` for events the model need not see.

    ``requests`` (human requests by id) lets an approval with changes say what it changed.
    """
    if isinstance(event, UserMessage):
        who = event.source or event.sender.label
        block = f"<user_message{_attrs(**{'from': who})}>{escape(event.text)}</user_message>"
        return block + _payload(event)
    if isinstance(event, ToolCalled):
        attrs = _attrs(tool=event.tool, id=event.call_id, approved_by=event.approved_by)
        return f"<tool_call{attrs}>{_json(event.arguments)}</tool_call>"
    if isinstance(event, ToolReturned):
        output = _json(event.output)
        if trim_output and len(output) > TRIMMED_OUTPUT_CHARS:
            cut = len(output) - TRIMMED_OUTPUT_CHARS
            output = f"{output[:TRIMMED_OUTPUT_CHARS]}…[{cut} chars trimmed]"
        trust = "untrusted data" if event.untrusted else None
        attrs = _attrs(tool=event.tool, id=event.call_id, trust=trust)
        return f"<tool_result{attrs}>{output}</tool_result>"
    if isinstance(event, ErrorRaised):
        attrs = _attrs(source=event.source, tool=event.tool)
        return f"<error{attrs}>{escape(event.message)}</error>"
    if isinstance(event, HumanRequested):
        attrs = _attrs(id=event.request_id, type=event.type, tool=event.tool)
        return f"<human_request{attrs}>{escape(event.question)}</human_request>"
    if isinstance(event, HumanResponded):
        by = event.actor.label if event.actor else "expiry"
        attrs = _attrs(id=event.request_id, decision=event.decision.value, by=by)
        if event.decision == HumanDecision.ANSWER:
            return f"<human_response{attrs}>{escape(event.comment or '')}</human_response>"
        # A decision's comment explains the decision; it is never a request to act on.
        note = f"<note>{escape(event.comment)}</note>" if event.comment else ""
        if event.changes:
            note = _edit_note(event, (requests or {}).get(event.request_id)) + note
        return f"<human_response{attrs}>{note}</human_response>"
    if isinstance(event, ApprovalGiven):
        # One approval of several: still pending. The note is never a request to act on.
        attrs = _attrs(
            id=event.request_id, by=event.actor.label, still_needed="; ".join(event.still_needed)
        )
        note = f"<note>{escape(event.comment)}</note>" if event.comment else ""
        return f"<approval_given{attrs}>{note}</approval_given>"
    if isinstance(event, AgentReply):
        return f"<agent_reply>{escape(event.text)}</agent_reply>"
    return None


def _blocks(events: Sequence[Any], *, trim_before: int, drop: set[int]) -> list[Block]:
    blocks = []
    requests = {e.request_id: e for e in events if isinstance(e, HumanRequested)}
    for index, event in enumerate(events):
        if index in drop:
            continue
        text = render_event(event, trim_output=index < trim_before, requests=requests)
        if text is not None:
            blocks.append(Block(index=index, kind=event.kind, text=text))
    return blocks


def _total(blocks: Sequence[Block]) -> int:
    return sum(estimate_tokens(b.text) for b in blocks)


def compact(
    events: Sequence[Any], *, budget_tokens: int, keep_recent_results: int = 2
) -> list[Block]:
    """Render ``events`` within ``budget_tokens``, applying the module's rules in order."""
    blocks = _blocks(events, trim_before=0, drop=set())
    if _total(blocks) <= budget_tokens:
        return blocks

    # 1. Drop errors that something later resolved.
    last_success = max(
        (i for i, e in enumerate(events) if isinstance(e, ToolReturned | AgentReply)), default=-1
    )
    resolved = {i for i, e in enumerate(events) if isinstance(e, ErrorRaised) and i < last_success}
    blocks = _blocks(events, trim_before=0, drop=resolved)
    if _total(blocks) <= budget_tokens:
        return blocks

    # 2. Trim tool output older than the most recent results.
    results = [i for i, e in enumerate(events) if isinstance(e, ToolReturned)]
    trim_before = results[-keep_recent_results] if len(results) >= keep_recent_results else 0
    blocks = _blocks(events, trim_before=trim_before, drop=resolved)
    if _total(blocks) <= budget_tokens:
        return blocks

    # 3. Drop the oldest blocks, keeping the first message, until the rest fits.
    head, rest = blocks[:1], blocks[1:]
    dropped = 0
    while rest and _total(head) + _total(rest) + 10 > budget_tokens:
        rest.pop(0)
        dropped += 1
    marker = Block(index=-1, kind="compacted", text=f'<compacted events="{dropped}"/>')
    return [*head, marker, *rest] if dropped else [*head, *rest]


def render_context(events: Sequence[Any], *, budget_tokens: int) -> str:
    """The thread as the model's one user turn."""
    return "\n".join(block.text for block in compact(events, budget_tokens=budget_tokens))
