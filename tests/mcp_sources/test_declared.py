"""MCP server declarations: the file's fields, secrets, and what of a server agents get."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.declared import load_declared
from bot.declared._secrets import fill_secrets, secret_names
from bot.errors import ConfigError
from bot.mcp import McpHub, McpServer, catalogue_with, check_catalogue, mcp_tools
from tests.mcp_sources.servers import GIT_SERVER, declare, git_repo


def test_a_declaration_file_names_the_server_after_itself(tmp_path: Path) -> None:
    declare(tmp_path, "git.toml", 'kind = "mcp"\ncommand = "mcp-server-git"\nargs = ["-r", "."]\n')
    (server,) = load_declared(tmp_path).mcp_servers
    assert isinstance(server, McpServer)
    assert (server.name, server.transport, server.args) == ("git", "stdio", ("-r", "."))
    assert (server.timeout_seconds, server.allow, server.tier) == (30.0, ("*",), None)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "give either command"),
        ('command = "x"\nurl = "http://h/mcp"', "give either command"),
        ('url = "http://h/mcp"\nenv = {A = "1"}', "args and env are for a command"),
        ('command = "x"\nheaders = {A = "1"}', "headers are for a url"),
        ('command = "x"\ntimeout = 3', "timeout: Extra inputs are not permitted"),
        ('command = "x"\ntier = "admin"', "tier: Input should be 'read' or 'write'"),
        ('command = "x"\n[tools.status]\ntier = "read"\nagent = ["a"]', "tools.status.agent"),
        ('url = "ftp://h"', "url: String should match pattern"),
    ],
)
def test_a_bad_declaration_names_the_file_and_field(tmp_path: Path, body, problem) -> None:
    path = declare(tmp_path, "srv.toml", f'kind = "mcp"\n{body}\n')
    with pytest.raises(ConfigError) as caught:
        load_declared(tmp_path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_secrets_are_read_when_used_and_never_shown() -> None:
    env = {"OPSLOOP_SECRET_API_TOKEN": "t0ps3cret"}
    text = "Bearer {secret.API_TOKEN} and {secret.API_TOKEN}"
    assert secret_names([text]) == ("API_TOKEN",)
    assert fill_secrets(text, where="x", environ=env) == "Bearer t0ps3cret and t0ps3cret"
    with pytest.raises(
        ConfigError,
        match=r"web.toml: headers.A: secret 'OTHER' is not set \(set OPSLOOP_SECRET_OTHER\)",
    ):
        fill_secrets("{secret.OTHER}", where="web.toml: headers.A", environ=env)
    with pytest.raises(ConfigError, match="secret 'EMPTY' is not set"):  # empty is unset
        fill_secrets("{secret.EMPTY}", where="x", environ={"OPSLOOP_SECRET_EMPTY": ""})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_repo(tmp_path / "repo")


@pytest.fixture
def hubs() -> Iterator[list[McpHub]]:
    made: list[McpHub] = []
    yield made
    for hub in made:
        hub.close()


def git(repo: Path, **extra) -> McpServer:
    return McpServer(name="git", command=GIT_SERVER, args=("--repository", str(repo)), **extra)


def connected(hubs, *servers: McpServer) -> McpHub:
    hub = McpHub(servers)
    hubs.append(hub)
    hub.start()
    return hub


def test_allow_deny_prefix_agents_and_overrides(hubs, repo: Path, tmp_path: Path) -> None:
    server = git(
        repo,
        prefix="repo_",
        allow=("git_*",),
        deny=("git_reset", "git_checkout", "git_diff*"),
        agents=("inspector",),
        tools={
            "git_commit": {"agents": ["deployer"], "touches": ["repo_path"]},
            "git_log": {"tier": "write"},
            "git_add": {"tier": "read"},
        },
    )
    hub = connected(hubs, server)
    tools, scopes = mcp_tools(hub)
    named = {t.name: t for t in tools}
    assert set(named) == {
        "repo_git_status",
        "repo_git_commit",
        "repo_git_add",
        "repo_git_log",
        "repo_git_create_branch",
        "repo_git_show",
        "repo_git_branch",
    }
    assert named["repo_git_log"].tier == "write"  # the declaration wins over readOnlyHint
    assert named["repo_git_add"].tier == "read"
    # Whether a call may be made again after a crash is the server's word, not the tier's:
    # a read (declared write) and an idempotent add may; a commit runs at most once.
    repeatable = {n: named[f"repo_{n}"].repeatable for n in ("git_log", "git_add", "git_commit")}
    assert repeatable == {"git_log": True, "git_add": True, "git_commit": False}
    assert named["repo_git_commit"].tier == "write"
    commit = named["repo_git_commit"]
    assert commit.declares == ("repo_path",)
    args = commit.validate({"repo_path": str(repo), "message": "m"})
    assert commit.attributes(args) == {"repo_path": str(repo)}
    assert scopes["repo_git_commit"] == ("inspector", "deployer")
    assert scopes["repo_git_status"] == ("inspector",)

    settings = load_settings(OPSLOOP_HOME=str(tmp_path))
    declared = load_declared(None)
    catalogue = catalogue_with(settings, declared, hub)
    inspector = catalogue.registry.get("inspector")
    deployer = catalogue.registry.get("deployer")
    assert inspector.tool("repo_git_status") is not None
    assert deployer.tool("repo_git_commit") is not None
    assert deployer.tool("repo_git_status") is None


def test_a_server_wide_tier_and_touches_that_name_nothing(hubs, repo: Path) -> None:
    hub = connected(hubs, git(repo, tier="write"))
    tools, _ = mcp_tools(hub)
    assert {t.tier for t in tools} == {"write"}
    wrong = connected(hubs, git(repo, tools={"git_commit": {"touches": ["environment"]}}))
    with pytest.raises(
        ConfigError, match="touches names arguments the tool does not take: environment"
    ):
        mcp_tools(wrong)


def test_a_declared_agent_of_an_unreachable_server_says_why(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    declare(tools, "git.toml", 'kind = "mcp"\ncommand = "/nowhere/mcp-server-git"\n')
    declare(
        tools,
        "gitbot.toml",
        'kind = "agent"\ndescription = "git"\nprompt = "inspector"\ntools = ["git_*"]\n',
    )
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_TOOLS_DIR=str(tools))
    with pytest.raises(ConfigError) as caught:
        check_catalogue(settings)
    message = str(caught.value)
    assert "agent gitbot: no tool matches 'git_*'" in message
    assert "MCP servers unavailable at start-up" in message
    assert "git: FileNotFoundError" in message


def test_an_unreachable_server_alone_is_not_fatal(tmp_path: Path, caplog) -> None:
    tools = tmp_path / "tools"
    declare(tools, "git.toml", 'kind = "mcp"\ncommand = "/nowhere/mcp-server-git"\n')
    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_TOOLS_DIR=str(tools))
    catalogue = check_catalogue(settings)
    assert not any(t.source == "mcp" for t in catalogue.tools.values())
    assert "MCP server git (/nowhere/mcp-server-git) is unavailable" in caplog.text
