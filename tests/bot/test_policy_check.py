"""The static policy check: which rules may decide each tool, and where the policy has gaps."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from pydantic import BaseModel, ConfigDict

from agents import DEPLOYER, INSPECTOR
from agents import plugin as shipped
from bot.agent import Agent
from bot.events import Identity
from bot.policy import Policy
from bot.policy_check import check_policy, tools_in_force
from bot.tools import Tool, ToolContext, tool

AGENTS = (INSPECTOR, DEPLOYER)
DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")


class PurgeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    """What to purge."""


class ScaleArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str
    """The service."""
    environment: str | None = None
    """Where; every environment when left out."""


@tool(tier="write")
async def purge_cache(ctx: ToolContext, args: PurgeArgs) -> dict[str, str]:
    """Purge a CDN path."""
    return {"purged": args.path}


@tool(tier="write", touches=("environment", "service"))
async def scale(ctx: ToolContext, args: ScaleArgs) -> dict[str, str]:
    """Scale a service."""
    return {"scaled": args.service}


PURGE = dataclasses.replace(purge_cache, source="plugin", origin="cdn")


def tools_with(*extra: Tool) -> dict[str, Tool]:
    return {t.name: t for t in (*shipped.tools, *extra)}


def make_policy(*rules: dict[str, object], **extra: object) -> Policy:
    return Policy.model_validate({"version": 1, "rules": list(rules), **extra})


PROD = {
    "name": "production changes need on-call approval",
    "tiers": ["write"],
    "environments": ["production"],
    "approval": "required",
}
BLIND = {"name": "other changes run at once", "tiers": ["write"], "approval": "none"}
READS = {"name": "reads are safe", "tiers": ["read"], "approval": "none"}


def test_the_default_policy_covers_every_shipped_tool(policy):
    report = check_policy(policy, tools_with(), AGENTS)

    assert report.warnings == ()
    by_name = {t.tool.name: t for t in report.tools}
    assert list(by_name) == sorted(by_name)
    deploy = by_name["deploy"]
    assert deploy.agents == ("deployer",)
    assert [(u.when, u.outcome) for u in deploy.rules] == [
        ("environment=production", "approval by role:oncall"),
        ("otherwise", "runs at once"),
    ]
    assert deploy.approval == (
        "environment=production → approval by role:oncall "
        "[production changes need on-call approval]; "
        "otherwise → runs at once [changes outside production run at once]"
    )
    assert by_name["service_status"].agents == ("inspector", "deployer")
    assert by_name["service_status"].approval == "always → runs at once [reads are always safe]"


def test_a_new_write_tool_no_rule_names_is_flagged_and_the_blind_rule_too():
    report = check_policy(make_policy(PROD, BLIND, READS), tools_with(PURGE), AGENTS)

    by_name = {t.tool.name: t for t in report.tools}
    purge = by_name["purge_cache"]
    assert purge.agents == ()
    assert purge.skipped == ("other changes run at once",)
    [only] = purge.rules
    assert (only.rule, only.index, only.approval) == (
        "default: unmatched changes need approval",
        None,
        "required",
    )
    [warning] = purge.warnings
    assert "write tool purge_cache (plugin cdn): no rule covers every call" in warning
    assert "'default: unmatched changes need approval' (approval by role:oncall)" in warning
    # The shipped tools reach the default outside production: the blind rule is skipped.
    deploy = by_name["deploy"]
    assert [u.when for u in deploy.rules] == ["environment=production", "otherwise"]
    assert deploy.rules[-1].index is None
    assert "its calls other than environment=production" in deploy.warnings[0]
    assert any(
        w.startswith("rule 'other changes run at once' allows changes without naming")
        for w in report.rule_warnings
    )
    assert by_name["list_services"].warnings == ()


def test_a_rule_that_names_the_tool_covers_it():
    named = {"name": "purges run at once", "tools": ["purge_cache"], "approval": "none"}

    report = check_policy(make_policy(PROD, named, READS), tools_with(PURGE), AGENTS)

    purge = next(t for t in report.tools if t.tool.name == "purge_cache")
    assert purge.warnings == ()
    assert [u.rule for u in purge.rules] == ["purges run at once"]
    assert purge.rules[0].when == "always"


def test_a_where_on_an_attribute_the_tool_does_not_declare_never_applies_to_it():
    anywhere = {"tiers": ["write"], "where": {"environment": ["*"]}, "approval": "none"}

    report = check_policy(make_policy(anywhere, READS), tools_with(PURGE), AGENTS)

    purge = next(t for t in report.tools if t.tool.name == "purge_cache")
    assert [u.rule for u in purge.rules] == ["default: unmatched changes need approval"]
    assert purge.warnings
    deploy = next(t for t in report.tools if t.tool.name == "deploy")
    assert [(u.rule, u.when) for u in deploy.rules] == [("rule #1", "always")]


def test_any_value_of_an_optional_attribute_is_still_a_condition():
    anywhere = {"tiers": ["write"], "where": {"environment": ["*"]}, "approval": "none"}

    report = check_policy(make_policy(anywhere, READS), {"scale": scale}, ())

    [scaled] = report.tools
    assert [u.when for u in scaled.rules] == ["environment given", "otherwise"]
    assert scaled.rules[-1].approval == "required"
    assert "its calls other than environment given" in scaled.warnings[0]


class DefaultedArgs(BaseModel):
    environment: str = "staging"


@tool(tier="write", touches=("environment",))
async def warm(ctx: ToolContext, args: DefaultedArgs) -> str:
    """Warm a cache."""
    return "warm"


def test_an_attribute_with_a_default_is_always_declared():
    """Regression: a touched argument with a default was taken as sometimes missing, and the
    check warned of a gap the policy does not have (rule_for picks the rule every time)."""
    anywhere = {"tiers": ["write"], "where": {"environment": ["*"]}, "approval": "none"}
    policy = make_policy(anywhere, READS)

    [warmed] = check_policy(policy, {"warm": warm}, ()).tools

    assert [u.when for u in warmed.rules] == ["always"] and warmed.warnings == ()
    attributes = warm.attributes(warm.validate({}))
    decided = policy.rule_for(
        tool="warm", tier="write", channel="cli", requester=DEV, attributes=attributes
    )
    assert decided.approval == "none"


def test_channels_and_requester_roles_make_a_rule_conditional():
    oncall = {
        "tools": ["purge_cache"],
        "requester_roles": ["oncall"],
        "channels": ["slack"],
        "approval": "none",
    }

    report = check_policy(
        make_policy(oncall, READS, roles={"oncall": ["oncall-1"]}), tools_with(PURGE), ()
    )

    purge = next(t for t in report.tools if t.tool.name == "purge_cache")
    assert purge.rules[0].when == "channel=slack and requester role=oncall"
    assert purge.rules[0].conditional
    assert purge.rules[1].rule == "default: unmatched changes need approval"
    assert purge.warnings


def test_rules_that_never_match_or_never_decide_are_reported():
    typo = {"name": "typo", "tools": ["purge_cahce"], "approval": "none"}
    undeclared = {
        "name": "by team",
        "tiers": ["write"],
        "where": {"team": ["a"]},
        "approval": "none",
    }
    shadowed = {"name": "too late", "tiers": ["read"], "approval": "required"}

    report = check_policy(
        make_policy(PROD, typo, undeclared, READS, shadowed), tools_with(PURGE), AGENTS
    )

    assert "rule 'typo' names tools that do not exist: purge_cahce" in report.rule_warnings
    assert "rule 'typo' can never match: no tool has the tools and tiers it names" in (
        report.rule_warnings
    )
    assert (
        "rule 'by team' can never match: no tool it names declares team (its where)"
        in report.rule_warnings
    )
    assert (
        "rule 'too late' never decides: earlier rules decide every tool it matches"
        in report.rule_warnings
    )
    assert not any("'production changes" in w for w in report.rule_warnings)
    assert not any("'reads are safe'" in w for w in report.rule_warnings)


def test_agents_tools_count_even_when_the_catalogue_is_empty(policy):
    report = check_policy(policy, {}, AGENTS)

    assert [t.tool.name for t in report.tools] == sorted(t.name for t in shipped.tools)
    assert "ask_human" not in tools_in_force({}, AGENTS)


def test_the_json_form_has_what_tools_list_promises():
    report = check_policy(make_policy(PROD, BLIND, READS), tools_with(PURGE), AGENTS)

    purge = next(t.as_json() for t in report.tools if t.tool.name == "purge_cache")
    assert purge["source"] == "plugin" and purge["origin"] == "cdn"
    assert purge["tier"] == "write" and purge["agents"] == [] and purge["declares"] == []
    assert purge["rules"][0]["approvers"] == ["role:oncall"]
    assert purge["skipped_rules"] == ["other changes run at once"]
    whole = report.as_json()
    assert whole["ok"] is False and whole["warnings"] == list(report.warnings)


POLICIES = {
    "default": None,
    "blind": make_policy(PROD, BLIND, READS),
    "roles": make_policy(
        {"tools": ["restart"], "requester_roles": ["oncall"], "approval": "none"},
        {"tiers": ["write"], "where": {"environment": ["stag*"]}, "approval": "none"},
        READS,
        roles={"oncall": ["oncall-1"]},
        people={"oncall-1": {"principals": ["cli:oncall-1"]}},
    ),
}


@pytest.mark.parametrize("name", list(POLICIES))
def test_the_rule_a_real_call_gets_is_always_one_the_report_lists(policy, name):
    chosen = POLICIES[name] or policy
    tools = tools_with(PURGE)
    report = {t.tool.name: t for t in check_policy(chosen, tools, AGENTS).tools}
    environments = ["production", "staging", "dev"]
    for (tool_name, found), environment, who, channel in itertools.product(
        tools.items(), environments, [DEV, ONCALL], ["cli", "slack"]
    ):
        attributes = {"environment": environment} if found.declares else {}
        decided = chosen.rule_for(
            tool=tool_name,
            tier=found.tier,
            channel=channel,
            requester=who,
            attributes=attributes,
        )
        listed = report[tool_name].rules
        names = [u.rule for u in listed]
        label = decided.name or f"rule #{chosen.rules.index(decided) + 1}"
        assert label in names, (tool_name, environment, who, channel, names)
        if decided.name.startswith("default:"):
            assert listed[-1].index is None
            assert (found.tier == "write") == bool(report[tool_name].warnings)


def test_an_agent_that_has_a_tool_is_named(policy):
    helper = Agent(name="cdn", description="CDN", prompt="inspector", tools=(PURGE,))

    report = check_policy(policy, tools_with(PURGE), (*AGENTS, helper))

    assert next(t for t in report.tools if t.tool.name == "purge_cache").agents == ("cdn",)
