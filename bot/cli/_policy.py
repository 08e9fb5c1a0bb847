"""``opsloop policy check``: every tool with the rules that may decide it, and warnings."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from bot.app import Opsloop
from bot.cli._common import EXIT_USER, console, run
from bot.policy_check import PolicyReport, ToolReport, check_runtime, source_label

__all__ = ["policy_app", "policy_report"]

policy_app = typer.Typer(
    help="Check the policy file against the tools in force.", no_args_is_help=True
)


async def policy_report(ops: Opsloop) -> PolicyReport:
    """The report on the tools and policy ``ops`` runs with (as every process loads them)."""
    return check_runtime(ops.runtime)


def _heading(report: ToolReport) -> str:
    t = report.tool
    parts = [t.tier, source_label(t), f"agents: {', '.join(report.agents) or 'none'}"]
    if t.declares:
        parts.append(f"touches: {', '.join(t.declares)}")
    return f"[bold]{escape(t.name)}[/] ({escape(' · '.join(parts))})"


def print_report(report: PolicyReport) -> None:
    """Each tool, its deciding rules in order, and every warning."""
    for tool in report.tools:
        console.print(_heading(tool), soft_wrap=True)
        for use in tool.rules:
            console.print(f"  {escape(use.text)}", soft_wrap=True)
        for name in tool.skipped:
            console.print(
                f"  [dim]skipped: '{escape(name)}' (allows changes without naming them)[/]",
                soft_wrap=True,
            )
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if report.warnings:
        count = len(report.warnings)
        console.print(f"{count} warning{'' if count == 1 else 's'}")
    else:
        console.print("policy OK: a rule covers every call of every write tool")


@policy_app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> None:
    """List every tool with the rule(s) that decide its calls; warn where the policy has gaps.

    Warns for a write tool that can fall through to the fail-closed default (approval by
    role:oncall) because no rule covers it, for a rule that allows changes without naming
    a tool or what they touch (it is skipped for changes), and for rules that never match
    or never decide. Exit status: 0 clean, 1 warnings, 2 the policy or configuration is
    invalid, 3 the database could not be reached.
    """
    report = run(policy_report)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        print_report(report)
    if report.warnings:
        raise typer.Exit(EXIT_USER)
