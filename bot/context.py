"""Own the context window: the thread rendered by code as compact tagged blocks.

Each event becomes one block such as ``<tool_call tool="deploy" id="c_1">{...}</tool_call>``.
When the blocks exceed the token budget, :func:`compact` applies explicit rules, in order:

1. errors that were resolved (a later tool result or reply followed) are dropped;
2. tool output older than the last ``keep_recent_results`` results is trimmed;
3. the oldest blocks are dropped (the thread's first message is kept), leaving a marker
   that says how many were left out.

A log only grows and its events never change, so each event is rendered (whole, and
trimmed for tool output) once per log and kept with its token estimate, for the few hundred
logs rendered most lately; the rules read running totals of those estimates. Rendering a
thread one step longer costs its new events and the blocks kept, not the whole log again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from bot._log_memo import LogMemo
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


@dataclass(frozen=True)
class _Entry:
    """One visible event, rendered once: what never changes once it is in the log."""

    full: Block
    """The whole block."""
    trimmed: Block
    """The block with its tool output trimmed (the whole block for any other event)."""
    tokens: int
    """Estimated tokens of ``full``."""
    saving: int
    """Tokens trimming saves."""
    error: bool
    """An error: dropped once a later tool result or reply resolves it (rule 1)."""


class _Log:
    """One event log rendered so far, with running totals the rules read in constant time.

    Positions count visible events only. ``tokens[p]``, ``errors[p]``, ``error_count[p]``
    and ``savings[p]`` sum over the positions before ``p``.
    """

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.entries: list[_Entry] = []
        self.tokens = [0]
        self.errors = [0]
        self.error_count = [0]
        self.savings = [0]
        self.results: list[int] = []
        self.last_success = 0
        """The position of the last tool result or reply; errors before it are resolved."""
        self.requests: dict[str, HumanRequested] = {}
        self.edited: set[str] = set()
        """Requests an approval-with-changes block named: its text depends on them."""

    def extend(self, events: Sequence[Any]) -> bool:
        """Render the events after those seen; ``False`` if an earlier block would change."""
        new = events[len(self.seen) :]
        asked = [e for e in new if isinstance(e, HumanRequested)]
        if any(e.request_id in self.edited for e in asked):
            return False  # a later request of the same id: an edit note reads differently
        self.requests.update((e.request_id, e) for e in asked)
        for index, event in enumerate(new, start=len(self.seen)):
            text = render_event(event, requests=self.requests)
            if text is None:
                continue
            if isinstance(event, HumanResponded) and event.changes:
                self.edited.add(event.request_id)
            self._add(index, event, text)
        self.seen.extend(new)
        return True

    def _add(self, index: int, event: Any, text: str) -> None:
        full = Block(index=index, kind=event.kind, text=text)
        trimmed, tokens = full, estimate_tokens(text)
        result = isinstance(event, ToolReturned)
        if result:
            short = render_event(event, trim_output=True)
            if short is not None and short != text:
                trimmed = Block(index=index, kind=event.kind, text=short)
        saving = tokens - estimate_tokens(trimmed.text)
        error = isinstance(event, ErrorRaised)
        success = result or isinstance(event, AgentReply)
        position = len(self.entries)
        self.entries.append(_Entry(full, trimmed, tokens, saving, error))
        self.tokens.append(self.tokens[-1] + tokens)
        self.errors.append(self.errors[-1] + (tokens if error else 0))
        self.error_count.append(self.error_count[-1] + error)
        self.savings.append(self.savings[-1] + saving)
        if result:
            self.results.append(position)
        if success:
            self.last_success = position

    def compact(self, budget: int, keep_recent_results: int) -> list[Block]:
        """The module's rules, in order, on running totals: no block is summed twice."""
        entries, end = self.entries, len(self.entries)
        if self.tokens[end] <= budget:
            return [e.full for e in entries]
        # 1. Errors before the last result or reply are resolved.
        ok = self.last_success
        if self.tokens[end] - self.errors[ok] <= budget:
            return [e.full for p, e in enumerate(entries) if not (e.error and p < ok)]
        # 2. Results before the keep_recent_results-th newest are trimmed.
        results = self.results
        trim = results[-keep_recent_results] if len(results) >= keep_recent_results else 0

        def cost(start: int) -> int:
            """Tokens of the blocks from position ``start`` on, after rules 1 and 2."""
            resolved = max(0, self.errors[ok] - self.errors[start])
            saved = max(0, self.savings[trim] - self.savings[start])
            return self.tokens[end] - self.tokens[start] - resolved - saved

        if cost(0) <= budget:
            return self._blocks(0, ok, trim)
        # 3. Drop the oldest blocks after the first until the rest fits with a marker.
        head = next((p for p in range(end) if not (entries[p].error and p < ok)), end)
        if head == end:
            return []
        room = budget - 10 - (cost(head) - cost(head + 1))
        low, high = head + 1, end  # cost() never grows with start: the first start that fits
        while low < high:
            middle = (low + high) // 2
            if cost(middle) <= room:
                high = middle
            else:
                low = middle + 1
        start = low
        resolved = self.error_count[min(start, ok)] - self.error_count[min(head + 1, ok)]
        dropped = start - head - 1 - resolved
        kept = self._blocks(head, ok, trim, stop=head + 1)
        if dropped:
            kept.append(Block(index=-1, kind="compacted", text=f'<compacted events="{dropped}"/>'))
        return kept + self._blocks(start, ok, trim)

    def _blocks(self, start: int, ok: int, trim: int, stop: int | None = None) -> list[Block]:
        return [
            entry.trimmed if position < trim else entry.full
            for position, entry in enumerate(self.entries[start:stop], start=start)
            if not (entry.error and position < ok)
        ]


_LOGS: LogMemo[_Log] = LogMemo(_Log)
"""The logs rendered lately (a few hundred threads' worth)."""


def compact(
    events: Sequence[Any], *, budget_tokens: int, keep_recent_results: int = 2
) -> list[Block]:
    """Render ``events`` within ``budget_tokens``, applying the module's rules in order.

    Each event is rendered once: a log rendered before (the same event objects, maybe with
    more after them) costs only its new events plus the blocks kept.
    """
    with _LOGS.state(events) as log:
        return log.compact(budget_tokens, keep_recent_results)


def render_context(events: Sequence[Any], *, budget_tokens: int) -> str:
    """The thread as the model's one user turn."""
    return "\n".join(block.text for block in compact(events, budget_tokens=budget_tokens))
