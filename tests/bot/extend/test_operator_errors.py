"""What an operator sees for the mistakes a new user made trying opsloop's extension points."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.catalogue import build_catalogue
from bot.config import load_settings
from bot.declared import load_declared
from bot.errors import ConfigError, ToolError
from bot.events import ErrorRaised, Identity, ToolCalled
from bot.mcp._link import McpUnavailableError, program
from bot.policy import load_policy
from bot.runtime import run_tool
from bot.tools import ToolContext, tool
from tests.fakes import message_event


class Args(BaseModel):
    x: int = 1


def test_an_error_with_brackets_is_printed_as_written_not_as_markup(cli):
    """Regression: a pattern's [a-z0-9] vanished, and '[/x]' crashed with a traceback."""
    done = cli("approve", "hr_[/bold]", "--as", "oncall-1")
    assert done.exit_code == 1
    assert "hr_[/bold]" in done.output and "Traceback" not in done.output

    bad = cli("tools", "run", "service_status", "--as", "dev-1", "--args", '{"service": "A!"}')
    assert bad.exit_code == 1
    assert "[a-z0-9]" in bad.output


def test_two_agents_with_one_name_say_where_each_came_from(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "inspector.toml").write_text(
        'kind = "agent"\ndescription = "d"\nprompt = "assistant"\ntools = ["service_status"]\n'
    )
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_TOOLS_DIR=str(tools))
    with pytest.raises(ConfigError) as caught:
        build_catalogue(settings)
    assert str(caught.value) == (
        "more than one agent has one name: 'inspector' (from plugin agents, OPSLOOP_TOOLS_DIR);"
        " rename one"
    )


def test_a_declaration_without_a_kind_says_so(tmp_path):
    (tmp_path / "flush.toml").write_text('name = "flush"\n')
    with pytest.raises(ConfigError) as caught:
        load_declared(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'flush.toml'}: kind is missing: start the file with "
        'kind = "runbook" or kind = "agent" or kind = "mcp"'
    )


def test_a_rule_that_asks_nobody_needs_no_roles(tmp_path):
    """Regression: an approval = "none" rule got the default approvers, role:oncall, and a
    policy without that role was refused for naming it."""
    path = tmp_path / "policy.toml"
    path.write_text('version = 1\n[[rules]]\ntools = ["purge"]\napproval = "none"\n')
    assert load_policy(path).rules[0].name == ""


def test_a_tools_own_error_reaches_the_model_without_a_class_name():
    @tool()
    async def flaky(ctx: ToolContext, args: Args) -> str:
        """Fail."""
        raise ToolError("not configured: set OPSLOOP_SECRET_TOKEN")

    @tool()
    async def broken(ctx: ToolContext, args: Args) -> str:
        """Break."""
        raise KeyError("x")

    class _Agent:
        def tool(self, name: str):
            return {"flaky": flaky, "broken": broken}.get(name)

    class _Thread:
        id = "t1"
        events = (message_event("hi", sender=Identity(channel="cli", user_id="dev-1")),)

    class _Runtime:
        resources: dict[object, object] = {}  # noqa: RUF012

    def run(name: str) -> ErrorRaised:
        call = ToolCalled(call_id="c", tool=name, arguments={}, idempotency_key="k")
        result = asyncio.run(run_tool(_Thread(), _Agent(), call, _Runtime()))  # type: ignore[arg-type]
        assert isinstance(result, ErrorRaised)
        return result

    assert run("flaky").message == "flaky failed: not configured: set OPSLOOP_SECRET_TOKEN"
    assert run("broken").message == "broken failed: KeyError: 'x'"


def test_an_mcp_server_is_found_beside_opsloops_python_when_not_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert program("mcp-server-time") == str(Path(sys.executable).parent / "mcp-server-time")
    assert program("/usr/bin/env") == "/usr/bin/env"
    with pytest.raises(McpUnavailableError, match="command 'mcp-server-nope' not found on PATH"):
        program("mcp-server-nope")


def test_policy_check_warns_when_an_mcp_server_is_down(cli, tmp_path, monkeypatch):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "nope.toml").write_text('kind = "mcp"\ncommand = "mcp-server-nope"\n')
    monkeypatch.setenv("OPSLOOP_TOOLS_DIR", str(tools))

    done = cli("policy", "check")

    assert done.exit_code == 1
    assert (
        "warning: MCP server nope is unavailable, so its tools are missing and unchecked: "
        "command 'mcp-server-nope' not found" in done.output
    )
    listed = cli("tools", "list")
    assert "MCP server nope is unavailable" in listed.output


def test_a_second_mcp_server_with_one_name_names_both_files(tmp_path):
    (tmp_path / "a.toml").write_text('kind = "mcp"\nname = "git"\ncommand = "mcp-server-git"\n')
    (tmp_path / "b.toml").write_text('kind = "mcp"\nname = "git"\ncommand = "mcp-server-git"\n')
    with pytest.raises(ConfigError) as caught:
        load_declared(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'b.toml'}: MCP server 'git' is declared in {tmp_path / 'a.toml'} too"
    )


def test_an_unknown_kind_is_named(tmp_path):
    (tmp_path / "x.toml").write_text('kind = "plugin"\n')
    with pytest.raises(ConfigError, match=r"x\.toml: kind must be kind = \"runbook\" or .*"):
        load_declared(tmp_path)


def test_a_process_that_calls_no_tool_checks_declarations_without_starting_servers(tmp_path):
    """beat and opsloop run's supervisor: no MCP server is started just to be checked."""
    from bot.agent import check_startup

    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "git.toml").write_text('kind = "mcp"\ncommand = "mcp-server-nope"\n')
    (tools / "keeper.toml").write_text(
        'kind = "agent"\ndescription = "d"\nprompt = "assistant"\ntools = ["git_*"]\n'
    )
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_TOOLS_DIR=str(tools))

    check_startup(settings, connect_mcp=False)  # the pattern may name the server's tools

    with pytest.raises(ConfigError, match="MCP servers unavailable at start-up"):
        check_startup(settings)  # connecting, the server is found down and the agent empty
    (tools / "keeper.toml").write_text('kind = "agent"\ndescription = "d"\nprompt = "nope"\n')
    with pytest.raises(ConfigError, match="tools: Field required"):
        check_startup(settings, connect_mcp=False)  # the declarations are still checked
