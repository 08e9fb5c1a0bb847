"""``opsloop tools list|run`` and ``opsloop policy check``, as an admin types them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.events import HumanRequested, ModelCalled, ToolCalled, ToolReturned
from bot.store import Database, HumanRequest, Store, Thread

PLUGIN = '''
"""A team's plugin: a CDN purge (a change) no rule names, and a read."""
from pydantic import BaseModel, ConfigDict

from bot.plugins import Plugin
from bot.tools import ToolContext, tool


class PurgeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


@tool(tier="write")
async def purge_cache(ctx: ToolContext, args: PurgeArgs) -> dict[str, str]:
    """Purge a path from the CDN."""
    return {"purged": args.path, "by": ctx.approved_by or "-"}


@tool()
async def cdn_health(ctx: ToolContext, args: PurgeArgs) -> dict[str, str]:
    """The CDN's health at a path."""
    raise RuntimeError("the CDN API answered 503")


plugin = Plugin(name="cdn", tools=(purge_cache, cdn_health))
'''

BLIND_POLICY = """
version = 1
[people.dev-1]
principals = ["cli:dev-1"]
[people.oncall-1]
principals = ["cli:oncall-1"]
[roles]
oncall = ["oncall-1"]

[[rules]]
name = "production changes need on-call approval"
tiers = ["write"]
environments = ["production"]
approval = "required"

[[rules]]
name = "other changes run at once"
tiers = ["write"]
approval = "none"

[[rules]]
name = "reads are safe"
tiers = ["read"]
approval = "none"
"""


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The team's plugin next to where opsloop runs, and a policy with a blind rule."""
    (tmp_path / "team_cdn_plugin.py").write_text(PLUGIN)
    policy = tmp_path / "policy.toml"
    policy.write_text(BLIND_POLICY)
    monkeypatch.setenv("OPSLOOP_PLUGINS", "team_cdn_plugin")
    monkeypatch.setenv("OPSLOOP_POLICY_FILE", str(policy))
    return policy


def in_store(tmp_path: Path, request_id: str) -> tuple[HumanRequest, Thread]:
    async def body() -> tuple[HumanRequest, Thread]:
        database = Database(load_settings(OPSLOOP_HOME=str(tmp_path)).database)
        try:
            store = Store(database)
            request = await store.human_request(request_id)
            return request, await store.load_thread(request.thread_id)
        finally:
            await database.dispose()

    return asyncio.run(body())


def thread_of(tmp_path: Path, stderr: str) -> Thread:
    thread_id = stderr.split("thread ", 1)[1].split()[0]

    async def body() -> Thread:
        database = Database(load_settings(OPSLOOP_HOME=str(tmp_path)).database)
        try:
            return await Store(database).load_thread(thread_id)
        finally:
            await database.dispose()

    return asyncio.run(body())


# ---------------------------------------------------------------- tools list


def test_tools_list_reads_in_80_columns(cli) -> None:
    result = cli("tools", "list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = result.stdout
    for name in ("deploy", "list_services", "recent_deploys", "restart", "rollback"):
        assert name in text
    assert "environment=production → approval by" in text
    assert "built-in" in text and "warning" not in text


def test_tools_list_json_is_one_object_a_tool(cli) -> None:
    result = cli("tools", "list", "--json")

    assert result.exit_code == 0, result.output
    tools = json.loads(result.stdout)
    assert [t["name"] for t in tools] == sorted(t["name"] for t in tools)
    deploy = next(t for t in tools if t["name"] == "deploy")
    assert {k: deploy[k] for k in ("source", "origin", "tier", "agents", "declares")} == {
        "source": "built-in",
        "origin": "agents",
        "tier": "write",
        "agents": ["deployer"],
        "declares": ["environment", "service"],
    }
    assert [r["approval"] for r in deploy["rules"]] == ["required", "none"]
    assert deploy["approval"].startswith("environment=production → approval by role:oncall")


def test_tools_list_shows_a_plugin_tool_and_its_gap(cli, team) -> None:
    listed = json.loads(cli("tools", "list", "--json").stdout)
    purge = next(t for t in listed if t["name"] == "purge_cache")
    assert (purge["source"], purge["origin"], purge["agents"]) == ("plugin", "cdn", [])
    assert purge["skipped_rules"] == ["other changes run at once"]
    assert purge["rules"][0]["rule"] == "default: unmatched changes need approval"

    table = cli("tools", "list")
    assert table.exit_code == 0
    assert "plugin cdn" in table.stdout
    assert "warning: write tool purge_cache (plugin cdn): no rule covers every call" in (
        " ".join(table.stdout.split())
    )


# ---------------------------------------------------------------- policy check


def test_policy_check_is_clean_on_the_default_policy(cli) -> None:
    result = cli("policy", "check")

    assert result.exit_code == 0, result.output
    assert "deploy (write · built-in · agents: deployer · touches: environment, service)" in (
        result.stdout
    )
    assert "policy OK" in result.stdout


def test_policy_check_flags_the_blind_rule_and_the_new_write_tool(cli, team) -> None:
    result = cli("policy", "check")

    assert result.exit_code == 1, result.output
    out = " ".join(result.stdout.split())
    assert "purge_cache (write · plugin cdn · agents: none)" in out
    assert "skipped: 'other changes run at once'" in out
    assert "warning: write tool purge_cache (plugin cdn): no rule covers every call" in out
    assert "warning: rule 'other changes run at once' allows changes without naming" in out
    assert "warning: write tool deploy (built-in): no rule covers its calls other than" in out

    as_json = cli("policy", "check", "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert len(report["warnings"]) == 5  # deploy, restart, rollback, purge_cache, the rule


def test_policy_check_exits_2_on_a_bad_policy(cli, tmp_path, monkeypatch) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[[rules]]\napproval = "maybe"\n')
    monkeypatch.setenv("OPSLOOP_POLICY_FILE", str(bad))

    result = cli("policy", "check")

    assert result.exit_code == 2
    assert "approval" in result.stderr


def test_policy_check_help_gives_the_exit_statuses(cli) -> None:
    result = cli("policy", "check", "--help")

    assert "0 clean, 1 warnings, 2 the policy or configuration is invalid" in " ".join(
        result.stdout.split()
    )


# ---------------------------------------------------------------- tools run


def test_tools_run_a_read_prints_the_result_recorded_as_an_admin_decision(cli, tmp_path) -> None:
    result = cli(
        "tools",
        "run",
        "service_status",
        "--args",
        '{"service": "checkout", "environment": "staging"}',
        "--as",
        "dev-1",
    )

    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["service"] == "checkout" and output["health"] == "healthy"
    thread = thread_of(tmp_path, result.stderr)
    assert thread.agent == "inspector" and thread.conversation.channel == "cli"
    calls = [e for e in thread.events if isinstance(e, ModelCalled)]
    assert [(c.provider, c.model) for c in calls] == [("admin", "tools-run")] * 2
    [called] = [e for e in thread.events if isinstance(e, ToolCalled)]
    assert called.arguments == {"service": "checkout", "environment": "staging"}
    assert any(isinstance(e, ToolReturned) for e in thread.events)
    assert thread.events[0].sender.principal == "cli:dev-1"


def test_each_tools_run_is_a_thread_of_its_own_and_leaves_nothing_to_deliver(cli, tmp_path) -> None:
    args = '{"service": "checkout", "environment": "staging"}'
    runs = [cli("tools", "run", "service_status", "--args", args, "--as", "dev-1") for _ in "ab"]

    assert all(run.exit_code == 0 for run in runs)
    first, second = (thread_of(tmp_path, run.stderr) for run in runs)
    assert first.id != second.id, "a second run is not taken for a duplicate of the first"

    async def pending() -> list[object]:
        database = Database(load_settings(OPSLOOP_HOME=str(tmp_path)).database)
        try:
            return list(await Store(database).pending_outbound(channel="cli"))
        finally:
            await database.dispose()

    assert asyncio.run(pending()) == [], "what the terminal printed is marked delivered"


def test_tools_run_a_production_change_waits_for_approval_then_runs(cli, tmp_path) -> None:
    args = '{"service": "checkout", "version": "1.4.3", "environment": "production"}'

    paused = cli("tools", "run", "deploy", "--args", args, "--as", "dev-1")

    assert paused.exit_code == 0, paused.output
    request_id = paused.stdout.strip()
    assert request_id.startswith("hr_")
    assert f"opsloop approve {request_id}" in paused.stderr
    request, thread = in_store(tmp_path, request_id)
    assert request.status == "pending" and thread.status.value == "paused"
    [asked] = [e for e in thread.events if isinstance(e, HumanRequested)]
    assert (asked.tool, asked.requested_by) == ("deploy", "cli:dev-1")
    assert asked.approvers == ("role:oncall",)
    assert not any(isinstance(e, ToolCalled) for e in thread.events)

    refused = cli("approve", request_id, "--as", "dev-1")
    assert refused.exit_code == 1

    approved = cli("approve", request_id, "--as", "oncall-1")
    assert approved.exit_code == 0, approved.output
    request, thread = in_store(tmp_path, request_id)
    assert request.status == "approved"
    [returned] = [e for e in thread.events if isinstance(e, ToolReturned)]
    assert returned.output["version"] == "1.4.3"
    assert returned.output["approved_by"] == "cli:oncall-1"


def test_tools_run_a_new_write_tool_no_rule_names_asks_for_approval(cli, team, tmp_path) -> None:
    paused = cli("tools", "run", "purge_cache", "--args", '{"path": "/img"}', "--as", "dev-1")

    assert paused.exit_code == 0, paused.output
    request_id = paused.stdout.strip()
    assert "default: unmatched changes need approval" in paused.stderr
    request, _ = in_store(tmp_path, request_id)
    assert request.status == "pending"

    approved = cli("approve", request_id, "--as", "oncall-1")

    assert approved.exit_code == 0, approved.output
    _, thread = in_store(tmp_path, request_id)
    [returned] = [e for e in thread.events if isinstance(e, ToolReturned)]
    assert returned.output == {"purged": "/img", "by": "cli:oncall-1"}


def test_an_admin_run_of_a_tool_no_agent_has_can_be_approved_with_changes(
    cli, team, tmp_path
) -> None:
    """Regression: the edit looked only at the thread's agent, which does not list the tool,
    and refused with "no longer available"."""
    paused = cli("tools", "run", "purge_cache", "--args", '{"path": "/img"}', "--as", "dev-1")
    request_id = paused.stdout.strip()

    approved = cli("approve", request_id, "--as", "oncall-1", "--set", "path=/css")

    assert approved.exit_code == 0, approved.output
    _, thread = in_store(tmp_path, request_id)
    [returned] = [e for e in thread.events if isinstance(e, ToolReturned)]
    assert returned.output == {"purged": "/css", "by": "cli:oncall-1"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope", "--as", "dev-1"], "unknown tool 'nope'; known tools: deploy, list_services"),
        (["deploy", "--args", "{bad", "--as", "dev-1"], "--args is not valid JSON"),
        (["deploy", "--args", "[1]", "--as", "dev-1"], "--args must be a JSON object"),
        (
            ["deploy", "--args", '{"service": "checkout"}', "--as", "dev-1"],
            "invalid arguments for deploy: environment: Field required",
        ),
        (
            ["service_status", "--args", "{}", "--as", "mallory"],
            "unknown person 'mallory': the policy names no cli:mallory",
        ),
    ],
    ids=["tool", "json", "not-object", "arguments", "person"],
)
def test_tools_run_refuses_with_one_clear_line(cli, tmp_path, argv, message) -> None:
    result = cli("tools", "run", *argv)

    assert result.exit_code == 1
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""
    listing = cli("threads", "list", "--json")
    assert listing.stdout == ""  # nothing was recorded


# ---------------------------------------------------------------- trying a tool without a key

AGENT_PLUGIN = '''
"""A team's plugin with its own agent: a read and a change, tried offline."""
from pydantic import BaseModel, ConfigDict

from bot.agent import Agent
from bot.plugins import Plugin
from bot.tools import ToolContext, tool


class PathArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    depth: int = 1


@tool()
async def cache_stats(ctx: ToolContext, args: PathArgs) -> dict[str, object]:
    """Hit rate of a CDN path."""
    return {"path": args.path, "depth": args.depth, "hit_rate": 0.97}


@tool(tier="write")
async def purge_path(ctx: ToolContext, args: PathArgs) -> dict[str, str]:
    """Purge a path from the CDN."""
    return {"purged": args.path}


plugin = Plugin(
    name="cdn-agent",
    agents=(Agent(name="cdn", description="The CDN.", prompt="inspector",
                  tools=(cache_stats, purge_path)),),
)
'''


def events_of(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_a_plugin_tool_is_tried_offline(cli, tmp_path, monkeypatch) -> None:
    (tmp_path / "team_cdn_agent.py").write_text(AGENT_PLUGIN)
    monkeypatch.setenv("OPSLOOP_PLUGINS", "team_cdn_agent")

    read = cli("chat", "-m", "call cache_stats path=/img depth=2", "--as", "dev-1", "--json")

    assert read.exit_code == 0, read.output
    events = events_of(read.stdout)
    [called] = [e for e in events if e["kind"] == "tool_call"]
    assert (called["tool"], called["arguments"]) == ("cache_stats", {"path": "/img", "depth": 2})
    [reply] = [e for e in events if e["kind"] == "agent_reply"]
    assert reply["agent"] == "cdn" and '"hit_rate": 0.97' in reply["text"]
    assert "offline model" in reply["text"]

    change = cli("chat", "-m", "call purge_path path=/img", "--as", "dev-1", "--json")

    [asked] = [e for e in events_of(change.stdout) if e["kind"] == "human_request"]
    assert asked["tool"] == "purge_path" and "default: unmatched changes" in asked["question"]
    assert "purge_path" in cli("policy", "check").stdout


def test_a_scripted_model_is_one_setting_away(cli, tmp_path, monkeypatch) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        "- tool: restart\n"
        "  arguments: {service: search, environment: staging}\n"
        "- reply: Restarted search in staging.\n"
    )
    monkeypatch.setenv("OPSLOOP_MODELS", f"scripted:{script}")

    result = cli("chat", "-m", "restart search please", "--as", "dev-1", "--json")

    assert result.exit_code == 0, result.output
    events = events_of(result.stdout)
    [returned] = [e for e in events if e["kind"] == "tool_result"]
    assert returned["output"]["action"] == "restart"
    assert events[-2]["text"] == "Restarted search in staging."
    calls = [e for e in events if e["kind"] == "model_call"]
    assert {(c["provider"], c["model"]) for c in calls} == {("scripted", "script.yaml")}


def test_tools_run_a_tool_that_fails_says_why(cli, team, tmp_path) -> None:
    result = cli("tools", "run", "cdn_health", "--args", '{"path": "/"}', "--as", "dev-1")

    assert result.exit_code == 1
    assert "cdn_health failed: RuntimeError: the CDN API answered 503" in result.stderr
    thread = thread_of(tmp_path, result.stderr)
    assert thread.status.value == "waiting"
