"""``opsloop tools``: every tool in force, and one call of a tool without a model."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from bot.admin_call import admin_call, find_tool
from bot.app import Opsloop
from bot.cli._common import console, default_user, errors, fail, identity, run
from bot.cli._policy import policy_report
from bot.cli._render import pending_requests
from bot.events import ErrorRaised, HumanRequested, ToolReturned
from bot.policy_check import PolicyReport, source_label

__all__ = ["tools_app"]

tools_app = typer.Typer(
    help="The tools in force (built-in, plugins, runbooks, MCP servers) and trying one out.",
    no_args_is_help=True,
)


def _table(report: PolicyReport, width: int) -> Table:
    # Name, tier and the rules fit 80 columns; where each came from and its agents join
    # in a wider terminal (everything is in --json).
    wide = width >= 110
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("tool", no_wrap=True)
    table.add_column("tier", no_wrap=True)
    table.add_column("source", overflow="fold", max_width=22)
    if wide:
        table.add_column("agents", overflow="fold")
    table.add_column("approval", overflow="fold", ratio=1)
    for tool in report.tools:
        t = tool.tool
        source = source_label(t)
        rules = "\n".join(
            ("! " if tool.warnings and use.index is None else "") + use.text for use in tool.rules
        )
        row = [escape(t.name), t.tier, escape(source)]
        if wide:
            row.append(escape(", ".join(tool.agents) or "-"))
        table.add_row(*row, escape(rules))
    return table


@tools_app.command("list")
def list_tools(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list: one object a tool, with its rules.")
    ] = False,
) -> None:
    """List every tool: its source, tier and the approval rule(s) that decide its calls."""
    report = run(policy_report)
    if as_json:
        typer.echo(json.dumps([t.as_json() for t in report.tools], indent=2, ensure_ascii=False))
        return
    console.print(_table(report, console.width))
    for warning in (*report.source_warnings, *(w for t in report.tools for w in t.warnings)):
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def _arguments(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--args is not valid JSON: {exc.msg} at character {exc.pos}")
    if not isinstance(found, dict):
        fail('--args must be a JSON object, e.g. --args \'{"environment": "staging"}\'')
    return found


@tools_app.command("run")
def run_tool(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The tool's name.")],
    args: Annotated[
        str, typer.Option("--args", metavar="JSON", help="The arguments, a JSON object.")
    ] = "{}",
    user: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="USER",
            help="Who asks: a user the policy knows as cli:USER "
            "(default: $OPSLOOP_USER, then $USER, else 'operator').",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Call one tool without a model, through the same policy as a chat message.

    A new terminal thread records the call as if a model had decided it (provider
    'admin'). Prints the result as JSON; or, when policy asks for approval, the request's
    id and how to approve it. Exits 1 for an unknown tool or person, invalid JSON or
    arguments, or a tool that fails.
    """
    arguments = _arguments(args)
    sender = identity(user or default_user())

    async def body(ops: Opsloop) -> None:
        tool = find_tool(ops, name)
        outcome = await admin_call(ops, tool, arguments, sender)
        await ops.store.mark_thread_delivered(outcome.thread.id, channel="cli")
        thread = outcome.thread
        errors.print(f"thread {thread.id} · {thread.status.value}", soft_wrap=True)
        pending = pending_requests(outcome.new_events)
        if pending:
            _print_request(pending[0])
            return
        for event in outcome.new_events:
            if isinstance(event, ToolReturned):
                typer.echo(json.dumps(event.output, indent=2, ensure_ascii=False))
                return
            if isinstance(event, ErrorRaised):
                fail(event.message)
        fail(f"{name} did not run; see opsloop threads show {thread.id}")

    run(body)


def _print_request(request: HumanRequested) -> None:
    who = ", ".join(request.approvers)
    typer.echo(request.request_id)
    errors.print(
        f"approval needed ({escape(request.question)}); may approve: {escape(who)}\n"
        f"approve with: opsloop approve {request.request_id} --as APPROVER",
        soft_wrap=True,
    )
