"""How threads look in a terminal: a transcript, a table, or JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.events import (
    AgentReply,
    DecisionRefused,
    ErrorRaised,
    HumanRequested,
    HumanResponded,
    ModelCalled,
    StatusChanged,
    ToolCalled,
    ToolReturned,
    UserMessage,
    event_adapter,
)
from bot.store import Thread, ThreadSummary

__all__ = ["event_json_lines", "pending_requests", "print_events", "threads_table"]


def _args(arguments: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in (arguments or {}).items())


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def _line(event: Any, verbose: bool, decided: set[str]) -> str | None:
    if isinstance(event, UserMessage):
        # The thread view (verbose) says how each person was authenticated.
        who = event.sender.attested_label if verbose else event.sender.label
        return f"[bold cyan]{escape(event.source or who)}>[/] {escape(event.text)}"
    if isinstance(event, AgentReply):
        return f"[bold green]opsloop ({event.agent})>[/] {escape(event.text)}"
    if isinstance(event, ToolCalled):
        approved = (
            f" [dim](approved by {escape(event.approved_by)})[/]" if event.approved_by else ""
        )
        return f"  [yellow]→ {event.tool}({escape(_args(event.arguments))})[/]{approved}"
    if isinstance(event, ToolReturned):
        return f"  [dim]← {escape(_short(event.output))}[/]"
    if isinstance(event, ErrorRaised):
        return f"  [red]! {event.source} error: {escape(event.message)}[/]"
    if isinstance(event, HumanRequested):
        who = ", ".join(event.approvers)
        if event.request_id in decided:
            return f"[magenta]{event.type}[/] {event.request_id}: {escape(event.question)}"
        if event.type == "approval":
            return (
                f"[bold magenta]approval needed[/] {event.request_id}: "
                f"{event.tool}({escape(_args(event.arguments))}) — may approve: {escape(who)}\n"
                f"  opsloop approve {event.request_id} --as USER   |   "
                f'opsloop reject {event.request_id} --as USER --reason "..."'
            )
        options = f" (options: {', '.join(event.options)})" if event.options else ""
        return (
            f"[bold magenta]question[/] {event.request_id}: {escape(event.question)}{options}\n"
            f'  opsloop answer {event.request_id} "..." --as USER'
        )
    if isinstance(event, HumanResponded):
        by = escape(event.actor.attested_label) if event.actor else "expiry"
        note = f": {escape(event.comment)}" if event.comment else ""
        done = {"approve": "approved", "reject": "rejected", "answer": "answered"}
        return f"[bold]{done[event.decision.value]}[/] {event.request_id} by {by}{note}"
    if isinstance(event, DecisionRefused):
        who = escape(event.actor.attested_label)
        return f"[red]refused[/] {event.request_id} for {who}: " + escape(event.reason)
    if verbose and isinstance(event, ModelCalled):
        u = event.usage
        return (
            f"  [dim]model {event.provider}/{event.model} {event.latency_ms:.0f} ms "
            f"in={u.input_tokens} out={u.output_tokens} cached={u.cached_tokens} "
            f"${event.cost_usd:.5f}{' error: ' + escape(event.error) if event.error else ''}[/]"
        )
    if verbose and isinstance(event, StatusChanged):
        reason = f" ({escape(event.reason)})" if event.reason else ""
        return f"  [dim]status → {event.status.value}{reason}[/]"
    return None


def print_events(console: Console, events: Iterable[Any], *, verbose: bool = False) -> None:
    """Print events as a transcript."""
    events = list(events)
    decided = {e.request_id for e in events if isinstance(e, HumanResponded)}
    for event in events:
        line = _line(event, verbose, decided)
        if line is not None:
            console.print(line, soft_wrap=True)


def event_json_lines(thread: Thread, first_seq: int = 1) -> list[str]:
    """The thread's events from ``first_seq`` on, one JSON object a line."""
    return [
        json.dumps(
            {"thread_id": thread.id, "seq": seq, **event_adapter.dump_python(event, mode="json")}
        )
        for seq, event in enumerate(thread.events, start=1)
        if seq >= first_seq
    ]


def pending_requests(events: Sequence[Any]) -> list[HumanRequested]:
    """Requests in ``events`` that no later event answered."""
    answered = {e.request_id for e in events if isinstance(e, HumanResponded)}
    return [e for e in events if isinstance(e, HumanRequested) and e.request_id not in answered]


def threads_table(threads: Sequence[ThreadSummary]) -> Table:
    """Threads as a table; titles are cut short rather than squeezing every column."""
    table = Table(show_lines=False, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("agent", no_wrap=True)
    table.add_column("channel", no_wrap=True)
    table.add_column("events", no_wrap=True, justify="right")
    table.add_column("updated", no_wrap=True)
    table.add_column("title", no_wrap=True, overflow="ellipsis", min_width=8, ratio=1)
    for t in threads:
        table.add_row(
            t.id,
            t.status.value,
            t.agent or "-",
            t.conversation.channel,
            str(t.last_seq),
            f"{t.updated_at:%m-%d %H:%M}",
            escape(t.title),
        )
    return table
