"""Which policy rule can decide each tool, found without making a call.

A rule can decide a call of a tool when its ``tools`` and ``tiers`` take the tool in and the
tool declares every attribute its ``where`` names (:attr:`bot.tools.Tool.declares`). Which
of those rules decides a real call then depends on what the call touches, where it came
from and who asked; the first rule that holds whatever the call (no ``where`` beyond
attributes it always declares, no channels, no requester roles) ends the list. A write
tool with no such rule can reach the fail-closed default, so :func:`check_policy` warns:
a tool added after the policy was written asks for approval until a rule names it.

``opsloop policy check``, ``opsloop tools list`` and ``GET /api/tools`` show this report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.agent import Agent
from bot.mcp import MCP_HUB, McpHub
from bot.policy import ApprovalRule, Policy, default_rule
from bot.tools import ASK_HUMAN, Tool

if TYPE_CHECKING:
    from bot.runtime import Runtime

__all__ = [
    "PolicyReport",
    "RuleUse",
    "ToolReport",
    "check_policy",
    "check_runtime",
    "source_label",
    "tools_in_force",
]


@dataclass(frozen=True)
class RuleUse:
    """One rule that may decide a tool's calls, and when."""

    rule: str
    """The rule's name, or ``rule #N`` (its place in the file) when it has none."""
    index: int | None
    """Its place among the policy's rules (from 0); ``None`` for the built-in default."""
    when: str
    """When it decides: ``environment=production``, ``otherwise``, ``always``."""
    conditional: bool
    """Whether it decides only some calls (the next rules may decide the others)."""
    approval: str
    """``required`` or ``none``."""
    approvers: tuple[str, ...]
    """Who may approve (for ``required``)."""
    outcome: str
    """What happens, in words: ``runs at once``, ``approval by role:oncall``."""

    @property
    def text(self) -> str:
        """``when → outcome [rule]``."""
        return f"{self.when} → {self.outcome} [{self.rule}]"

    def as_json(self) -> dict[str, Any]:
        """The use as a JSON object."""
        return {
            "rule": self.rule,
            "index": self.index,
            "when": self.when,
            "conditional": self.conditional,
            "approval": self.approval,
            "approvers": list(self.approvers),
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class ToolReport:
    """One tool, where it came from, and the rules that may decide its calls."""

    tool: Tool
    """The tool."""
    agents: tuple[str, ...]
    """The agents that have it."""
    rules: tuple[RuleUse, ...]
    """The rules that may decide, in the order they are tried; the last one always holds."""
    skipped: tuple[str, ...] = ()
    """Rules that would have allowed it without naming it (skipped for changes)."""
    warnings: tuple[str, ...] = ()
    """What an admin should look at."""

    @property
    def approval(self) -> str:
        """The rules as one line: ``environment=production → approval by role:oncall; …``."""
        return "; ".join(use.text for use in self.rules)

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object (``opsloop tools list --json``, ``GET /api/tools``)."""
        t = self.tool
        return {
            "name": t.name,
            "description": t.description,
            "source": t.source,
            "origin": t.origin,
            "tier": t.tier,
            "agents": list(self.agents),
            "declares": list(t.declares),
            "approval": self.approval,
            "rules": [use.as_json() for use in self.rules],
            "skipped_rules": list(self.skipped),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class PolicyReport:
    """Every tool's report and what is wrong with the rules themselves."""

    tools: tuple[ToolReport, ...]
    """One report a tool, by name."""
    rule_warnings: tuple[str, ...] = field(default=())
    """Rules skipped for changes, rules that match no tool, rules that never decide."""
    source_warnings: tuple[str, ...] = field(default=())
    """Tool sources that could not be read (an MCP server down), so their tools are missing."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every warning: the sources' first, then the tools', then the rules'."""
        return (
            *self.source_warnings,
            *(w for t in self.tools for w in t.warnings),
            *self.rule_warnings,
        )

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object (``opsloop policy check --json``)."""
        return {
            "ok": not self.warnings,
            "tools": [t.as_json() for t in self.tools],
            "warnings": list(self.warnings),
        }


def tools_in_force(tools: Mapping[str, Tool], agents: Iterable[Agent]) -> dict[str, Tool]:
    """Every tool by name: ``tools`` and any agent's own (``ask_human`` aside)."""
    found = dict(tools)
    for agent in agents:
        for tool in agent.tools:
            found.setdefault(tool.name, tool)
    found.pop(ASK_HUMAN.name, None)
    return dict(sorted(found.items()))


def _label(rule: ApprovalRule, index: int | None) -> str:
    if rule.name:
        return rule.name
    return f"rule #{index + 1}" if index is not None else "default"


def _can_apply(rule: ApprovalRule, tool: Tool) -> bool:
    return (
        (not rule.tools or tool.name in rule.tools)
        and (not rule.tiers or tool.tier in rule.tiers)
        and all(key in tool.declares for key in rule.conditions)
    )


def _always_declared(tool: Tool, key: str) -> bool:
    # A declared attribute named after an optional argument is missing when it is left out,
    # unless the argument has a default to stand in for it.
    known = tool.args.model_fields.get(key)
    return known is None or known.is_required() or known.default is not None


def _when(rule: ApprovalRule, tool: Tool) -> list[str]:
    parts = []
    for key, patterns in rule.conditions.items():
        if "*" in patterns and _always_declared(tool, key):
            continue
        shown = "|".join(patterns)
        parts.append(f"{key}={shown}" if "*" not in patterns else f"{key} given")
    if rule.channels:
        parts.append(f"channel={'|'.join(rule.channels)}")
    if rule.requester_roles:
        parts.append(f"requester role={'|'.join(rule.requester_roles)}")
    return parts


def _outcome(rule: ApprovalRule) -> str:
    if rule.approval == "none":
        return "runs at once"
    who = ", ".join(rule.approvers) or "nobody"
    if rule.mode == "all":
        who = f"each of {who}"
    if rule.min_approvals > 1:
        who += f" ({rule.min_approvals} people)"
    return f"approval by {who}"


def _use(rule: ApprovalRule, index: int | None, when: list[str], before: int) -> RuleUse:
    return RuleUse(
        rule=_label(rule, index),
        index=index,
        when=" and ".join(when) if when else ("otherwise" if before else "always"),
        conditional=bool(when),
        approval=rule.approval,
        approvers=rule.approvers if rule.approval == "required" else (),
        outcome=_outcome(rule),
    )


def _report(policy: Policy, tool: Tool, agents: tuple[str, ...]) -> ToolReport:
    uses: list[RuleUse] = []
    skipped: list[str] = []
    for index, rule in enumerate(policy.rules):
        if not _can_apply(rule, tool):
            continue
        if tool.tier == "write" and rule.allows_writes_blindly:
            skipped.append(_label(rule, index))
            continue
        when = _when(rule, tool)
        uses.append(_use(rule, index, when, len(uses)))
        if not when:
            break
    warnings = []
    if not uses or uses[-1].conditional:
        fallback = default_rule(tool.tier)
        uses.append(_use(fallback, None, [], len(uses)))
        if tool.tier == "write":
            which = (
                "its calls other than " + " or ".join(u.when for u in uses[:-1])
                if len(uses) > 1
                else "every call"
            )
            warnings.append(
                f"write tool {tool.name} ({source_label(tool)}): no rule covers {which}; "
                f"they fall through to '{fallback.name}' (approval by "
                f"{', '.join(fallback.approvers)}): add a rule that names it or what it touches"
            )
    return ToolReport(
        tool=tool,
        agents=agents,
        rules=tuple(uses),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
    )


def source_label(tool: Tool) -> str:
    """Where ``tool`` came from, in words: ``built-in``, ``plugin acme``, ``mcp git``."""
    if tool.source == "built-in" or not tool.origin:
        return tool.source
    return f"{tool.source} {tool.origin}"


def _rule_warnings(
    policy: Policy, tools: Sequence[Tool], reports: Sequence[ToolReport]
) -> list[str]:
    warnings = []
    deciding = {use.index for report in reports for use in report.rules}
    names = {t.name for t in tools}
    for index, rule in enumerate(policy.rules):
        label = _label(rule, index)
        if rule.allows_writes_blindly and (not rule.tiers or "write" in rule.tiers):
            warnings.append(
                f"rule '{label}' allows changes without naming a tool or what they touch "
                "(where): it is skipped for write tools, which fall through to later rules"
            )
        unknown = [name for name in rule.tools if name not in names]
        if unknown:
            warnings.append(f"rule '{label}' names tools that do not exist: {', '.join(unknown)}")
        if not any(_can_apply(rule, t) for t in tools):
            warnings.append(f"rule '{label}' can never match: {_why_not(rule, tools)}")
        elif index not in deciding and not _skipped_everywhere(rule, tools):
            warnings.append(
                f"rule '{label}' never decides: earlier rules decide every tool it matches"
            )
    return warnings


def _skipped_everywhere(rule: ApprovalRule, tools: Sequence[Tool]) -> bool:
    # Already reported as skipped for changes: not worth a second warning.
    return rule.allows_writes_blindly and all(
        t.tier == "write" for t in tools if _can_apply(rule, t)
    )


def _why_not(rule: ApprovalRule, tools: Sequence[Tool]) -> str:
    if not tools:
        return "there are no tools"
    candidates = [t for t in tools if (not rule.tools or t.name in rule.tools)]
    candidates = [t for t in candidates if not rule.tiers or t.tier in rule.tiers]
    if not candidates:
        return "no tool has the tools and tiers it names"
    missing = sorted({k for k in rule.conditions for t in candidates if k not in t.declares})
    return f"no tool it names declares {', '.join(missing)} (its where)"


def check_policy(
    policy: Policy, tools: Mapping[str, Tool], agents: Sequence[Agent]
) -> PolicyReport:
    """Which rules may decide each of ``tools`` (and any tool of ``agents``), and warnings.

    Args:
        policy: the policy in force.
        tools: every tool in force by name (``Catalogue.tools``, ``Runtime.tools``).
        agents: the agents, for which of them has each tool.

    Returns:
        One report a tool, sorted by name, and the warnings about the rules themselves.
    """
    every = tools_in_force(tools, agents)
    reports = [
        _report(policy, tool, tuple(a.name for a in agents if a.tool(name) is not None))
        for name, tool in every.items()
    ]
    return PolicyReport(
        tools=tuple(reports),
        rule_warnings=tuple(_rule_warnings(policy, list(every.values()), reports)),
    )


def check_runtime(rt: Runtime) -> PolicyReport:
    """:func:`check_policy` for what a process runs with, warning about missing sources.

    An MCP server that could not be reached leaves its tools out of the catalogue, so
    nothing about them could be checked: that is a warning too, never a silent pass.
    """
    report = check_policy(rt.policy, rt.tools, rt.agents.agents)
    hub = rt.resources.get(MCP_HUB)
    down = hub.unavailable() if isinstance(hub, McpHub) else {}
    return dataclasses.replace(
        report,
        source_warnings=tuple(
            f"MCP server {name} is unavailable, so its tools are missing and unchecked: {why}"
            for name, why in sorted(down.items())
        ),
    )
