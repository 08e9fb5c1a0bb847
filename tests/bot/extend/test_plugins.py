"""Plugins add up: tools, agents, prompts, resources and inventories from several sources."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import Opsloop
from bot.catalogue import build_catalogue
from bot.config import load_settings
from bot.errors import ConfigError
from bot.events import CallTool, HumanRequested, Identity, Reply, ThreadStatus, ToolReturned
from bot.model import ScriptedModel
from bot.prompts import DEFAULT_PROMPTS_DIR
from tests.fakes import message_event

PLUGIN = '''
from pathlib import Path

from pydantic import BaseModel

from bot.agent import Agent
from bot.plugins import Plugin, ResourceContext
from bot.tools import Resource, ToolContext, tool


class Cdn:
    def __init__(self, zone: str) -> None:
        self.zone = zone
        self.purged: list[str] = []
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


CDN: Resource[Cdn] = Resource("cdn")


class PurgeArgs(BaseModel):
    path: str


@tool(tier="write")
async def purge_cache(ctx: ToolContext, args: PurgeArgs) -> dict[str, str]:
    """Purge a path from the CDN."""
    cdn = ctx.get(CDN)
    cdn.purged.append(args.path)
    return {"purged": args.path, "zone": cdn.zone}


class ZoneArgs(BaseModel):
    zone: str


@tool(touches=("zone",))
async def cdn_zone(ctx: ToolContext, args: ZoneArgs) -> dict[str, str]:
    """Show a CDN zone."""
    return {"zone": args.zone}


EDGE = Agent(
    name="edge",
    description="Looks after the CDN.",
    prompt="edge",
    tools=(purge_cache, cdn_zone),
    keywords=("cdn", "purge"),
)

plugin = Plugin(
    name="myteam",
    agents=(EDGE,),
    prompts=Path(__file__).parent / "prompts",
    resources={CDN: lambda made: Cdn("edge-1")},
)
'''


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A team's own directory with a plugin module and its prompt, as the working directory."""
    folder = tmp_path / "team"
    (folder / "myteam" / "prompts").mkdir(parents=True)
    (folder / "myteam" / "__init__.py").write_text("")
    (folder / "myteam" / "ops.py").write_text(PLUGIN)
    (folder / "myteam" / "prompts" / "edge.md").write_text("You are $agent. Tools: $tools.\n")
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    _forget_myteam()
    yield folder
    _forget_myteam()


def _forget_myteam() -> None:
    """Each test's ``myteam`` is a new package in a new folder: drop the last one's modules."""
    for name in [m for m in sys.modules if m == "myteam" or m.startswith("myteam.")]:
        del sys.modules[name]


def _settings(tmp_path: Path, **env: str):
    return load_settings(OPSLOOP_HOME=str(tmp_path), **env)


def test_a_local_plugin_adds_its_tools_agent_and_prompt_beside_the_shipped_ones(team, tmp_path):
    catalogue = build_catalogue(_settings(tmp_path, OPSLOOP_PLUGINS="myteam.ops"))

    assert [a.name for a in catalogue.registry.agents] == ["inspector", "deployer", "edge"]
    purge = catalogue.tools["purge_cache"]
    assert (purge.source, purge.origin, purge.tier) == ("plugin", "myteam", "write")
    assert (catalogue.tools["deploy"].source, catalogue.tools["deploy"].origin) == (
        "built-in",
        "agents",
    )
    assert catalogue.prompts.where("edge") == team / "myteam" / "prompts" / "edge.md"
    assert catalogue.prompts.where("deployer") == DEFAULT_PROMPTS_DIR / "deployer.md"
    assert catalogue.registry.route("please purge the cdn").name == "edge"
    assert catalogue.registry.route("call cdn_zone zone=eu").name == "edge"


def test_the_shipped_agents_can_be_switched_off(team, tmp_path):
    catalogue = build_catalogue(
        _settings(tmp_path, OPSLOOP_PLUGINS="myteam.ops", OPSLOOP_DISABLE_PLUGINS="agents")
    )

    assert [a.name for a in catalogue.registry.agents] == ["edge"]
    assert "deploy" not in catalogue.tools
    with pytest.raises(ConfigError, match="no agents"):
        build_catalogue(_settings(tmp_path, OPSLOOP_DISABLE_PLUGINS="agents"))
    with pytest.raises(ConfigError, match="no plugin called nope; installed: agents"):
        build_catalogue(_settings(tmp_path, OPSLOOP_DISABLE_PLUGINS="nope"))


def test_a_plugin_that_does_not_load_is_named(team, tmp_path):
    with pytest.raises(ConfigError, match=r"OPSLOOP_PLUGINS: cannot load .myteam\.nope."):
        build_catalogue(_settings(tmp_path, OPSLOOP_PLUGINS="myteam.nope"))
    (team / "myteam" / "bad.py").write_text("plugin = 42\n")
    with pytest.raises(ConfigError, match=r"myteam\.bad. is not an opsloop Plugin"):
        build_catalogue(_settings(tmp_path, OPSLOOP_PLUGINS="myteam.bad"))


def test_two_tools_with_one_name_stop_start_up_naming_both(team, tmp_path):
    (team / "myteam" / "clash.py").write_text(
        textwrap.dedent(
            '''
            from pydantic import BaseModel
            from bot.plugins import Plugin
            from bot.tools import ToolContext, tool

            class Args(BaseModel):
                service: str

            @tool(tier="write")
            async def deploy(ctx: ToolContext, args: Args) -> str:
                """Deploy, differently."""
                return "done"

            plugin = Plugin(name="clash", tools=(deploy,))
            '''
        )
    )
    with pytest.raises(ConfigError, match="two tools are called 'deploy': one from agents, one"):
        build_catalogue(_settings(tmp_path, OPSLOOP_PLUGINS="myteam.clash"))


def test_the_teams_prompt_folder_overrides_a_bundled_prompt_without_copying_the_rest(
    team, tmp_path
):
    own = tmp_path / "prompts"
    own.mkdir()
    (own / "deployer.md").write_text("Our own deployer, $agent, with $tools in $max_steps.\n")
    catalogue = build_catalogue(_settings(tmp_path, OPSLOOP_PROMPTS_DIR=str(own)))

    assert catalogue.prompts.where("deployer") == own.resolve() / "deployer.md"
    assert catalogue.prompts.where("inspector") == DEFAULT_PROMPTS_DIR / "inspector.md"


def _message(text: str, thread: str = "t1"):
    return message_event(text, sender=Identity(channel="cli", user_id="dev-1"), thread=thread)


async def test_a_new_write_tool_no_rule_names_asks_for_approval_and_gets_its_typed_resource(
    team, tmp_path
):
    """Fail closed: the default policy allows changes outside production, but only for tools
    that declare their environment; a new write tool without one must ask."""
    model = ScriptedModel(
        [
            CallTool(tool="cdn_zone", arguments={"zone": "eu"}),
            Reply(text="eu zone"),
            CallTool(tool="purge_cache", arguments={"path": "/index.html"}),
        ]
    )
    settings = _settings(tmp_path, OPSLOOP_PLUGINS="myteam.ops")
    ops = await Opsloop.from_settings(settings, models={"default": model})
    try:
        read = await ops.submit(_message("cdn zone eu?"))
        assert isinstance(read.new_events[4], ToolReturned)
        assert read.new_events[4].output == {"zone": "eu"}

        change = await ops.submit(_message("purge /index.html from the cdn", thread="t2"))
        assert change.thread.status == ThreadStatus.PAUSED
        [asked] = [e for e in change.new_events if isinstance(e, HumanRequested)]
        assert asked.tool == "purge_cache"
        assert asked.question.endswith("(default: unmatched changes need approval)")

        from myteam.ops import CDN  # type: ignore[import-not-found]

        cdn = ops.runtime.resources[CDN]
        assert cdn.purged == []  # nothing ran before the approval
    finally:
        await ops.aclose()
    assert cdn.closed, "a resource with aclose() is closed with opsloop"


def test_the_deprecated_single_registry_replaces_every_plugins_tools_and_agents(team, tmp_path):
    """Regression: a registry with its own ``deploy`` clashed with the shipped plugin's."""
    (team / "myteam" / "legacy.py").write_text(
        textwrap.dedent(
            '''
            from pydantic import BaseModel
            from bot.agent import Agent, AgentRegistry
            from bot.tools import ToolContext, tool

            class Args(BaseModel):
                service: str

            @tool(tier="write")
            async def deploy(ctx: ToolContext, args: Args) -> str:
                """Deploy, our way."""
                return "done"

            registry = AgentRegistry(
                agents=(Agent(name="ours", description="d", prompt="deployer", tools=(deploy,)),)
            )
            '''
        )
    )
    catalogue = build_catalogue(
        _settings(tmp_path, OPSLOOP_AGENTS="myteam.legacy:registry", OPSLOOP_PLUGINS="myteam.ops")
    )

    assert [a.name for a in catalogue.registry.agents] == ["ours"]
    assert set(catalogue.tools) == {"deploy"}
    assert catalogue.tools["deploy"].description == "Deploy, our way."


def test_several_local_plugins_add_up(team, tmp_path):
    (team / "myteam" / "dns.py").write_text(
        textwrap.dedent(
            '''
            from pydantic import BaseModel
            from bot.agent import Agent
            from bot.plugins import Plugin
            from bot.tools import ToolContext, tool

            class Args(BaseModel):
                name: str

            @tool()
            async def resolve(ctx: ToolContext, args: Args) -> str:
                """Resolve a name."""
                return "10.0.0.1"

            plugin = Plugin(
                name="dns",
                agents=(Agent(name="dns", description="d", prompt="assistant", tools=(resolve,)),),
            )
            '''
        )
    )
    catalogue = build_catalogue(_settings(tmp_path, OPSLOOP_PLUGINS="myteam.ops, myteam.dns"))

    assert [p.name for p in catalogue.plugins][-2:] == ["myteam", "dns"]
    assert [a.name for a in catalogue.registry.agents] == ["inspector", "deployer", "edge", "dns"]
    assert {"purge_cache", "resolve", "deploy"} <= set(catalogue.tools)
    assert catalogue.tools["resolve"].origin == "dns"
