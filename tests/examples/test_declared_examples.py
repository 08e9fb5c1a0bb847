"""The guide's runbook policy and MCP declarations do what the guide says."""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.config import Settings
from bot.events import Identity
from bot.mcp._wiring import check_catalogue
from bot.policy import load_policy
from tests.mcp_sources.servers import git_repo

ROOT = Path(__file__).resolve().parents[2]
DEV = Identity(channel="cli", user_id="dev-1")


def _rule(tool: str, namespace: str) -> str:
    policy = load_policy(ROOT / "examples" / "policies" / "runbooks.toml")
    decided = policy.rule_for(
        tool=tool,
        tier="write",
        channel="cli",
        requester=DEV,
        attributes={"namespace": namespace},
    )
    return f"{decided.approval}: {decided.name}"


def test_the_runbook_policy_scales_staging_at_once_and_asks_for_the_rest() -> None:
    assert _rule("scale_deployment", "staging-shop") == "none: scale staging freely"
    assert _rule("scale_deployment", "shop") == (
        "required: default: unmatched changes need approval"
    )
    assert _rule("trigger_workflow", "staging-shop").startswith("required:")


def test_the_git_declarations_connect_the_published_server(
    tmp_path: Path, settings: Settings
) -> None:
    """The example files as shipped, with only the repository's path made real."""
    repo = git_repo(tmp_path / "repo")
    tools = tmp_path / "tools"
    shutil.copytree(ROOT / "examples" / "mcp", tools)
    declared = tools / "git.toml"
    declared.write_text(declared.read_text().replace("/srv/repos/ops", str(repo)))

    catalogue = check_catalogue(settings.model_copy(update={"tools_dir": tools}))

    git = {name: t for name, t in catalogue.tools.items() if t.source == "mcp"}
    assert {"git_status", "git_commit", "git_add", "git_log"} <= set(git)
    assert "git_reset" not in git and "git_checkout" not in git, "deny wins"
    assert (git["git_status"].tier, git["git_commit"].tier) == ("read", "write")
    assert git["git_commit"].declares == ("repo_path",)
    inspector, deployer = (catalogue.registry.get(n) for n in ("inspector", "deployer"))
    assert inspector.tool("git_status") is not None and inspector.tool("git_commit") is not None
    assert deployer.tool("git_commit") is not None and deployer.tool("git_status") is None
    keeper = catalogue.registry.get("git-keeper")
    assert {t.name for t in keeper.tools} == set(git)
    assert catalogue.registry.route("commit the repository").name == "git-keeper"
