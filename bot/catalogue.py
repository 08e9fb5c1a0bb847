"""Everything a deployment can call, put together and checked once.

That is the plugins' tools and agents, declared runbooks and agents, MCP servers' tools,
and the prompt path.

Plugins add up: each contributes tools, agents, prompts, resources and inventory backends
(:class:`bot.plugins.Plugin`); the shipped agents are the ``agents`` plugin like any other.
Names are unique across all of them: two tools or two agents with one name stop start-up,
with both sources named.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from bot.agent import Agent, AgentRegistry, check_prompts, keyword_router, load_registry
from bot.config import Settings
from bot.declared import AgentSpec, Declared, load_declared
from bot.errors import ConfigError
from bot.plugins import Plugin, extension_plugins
from bot.prompts import DEFAULT_PROMPTS_DIR, PromptLibrary
from bot.tools import ASK_HUMAN, Tool, ToolSource

__all__ = ["SHIPPED_PLUGIN", "Catalogue", "build_catalogue", "tool_name_problem"]

SHIPPED_PLUGIN = "agents"
"""The plugin that holds the shipped agents and tools."""

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What every model provider accepts as a tool name."""


@dataclass(frozen=True)
class Catalogue:
    """The tools, agents and prompts in force."""

    plugins: tuple[Plugin, ...]
    """The plugins in force, in load order."""
    tools: Mapping[str, Tool]
    """Every tool by name (``ask_human`` aside)."""
    registry: AgentRegistry
    """The agents and their router."""
    prompts: PromptLibrary
    """The prompt search path."""


def _sourced(tool: Tool, plugin: Plugin) -> Tool:
    if tool.origin:
        return tool
    source: ToolSource = "built-in" if plugin.name == SHIPPED_PLUGIN else "plugin"
    return dataclasses.replace(tool, source=source, origin=plugin.name)


def tool_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a tool's name, or ``None`` when it can."""
    if not _TOOL_NAME.fullmatch(name):
        return "a tool name is 1-64 letters, digits, '_' or '-' (what every model takes)"
    if name == ASK_HUMAN.name:
        return "ask_human is opsloop's own tool for asking a person"
    return None


def _add_tool(tools: dict[str, Tool], tool: Tool) -> Tool:
    if (problem := tool_name_problem(tool.name)) is not None:
        raise ConfigError(f"tool {tool.name!r} from {tool.origin or tool.source}: {problem}")
    known = tools.get(tool.name)
    if known is not None and known.fn is not tool.fn:
        raise ConfigError(
            f"two tools are called {tool.name!r}: one from {known.origin or known.source}, "
            f"one from {tool.origin or tool.source}; rename one"
        )
    return tools.setdefault(tool.name, tool)


def _resolve(spec: AgentSpec, tools: Mapping[str, Tool], *, every_pattern: bool) -> Agent:
    chosen: list[Tool] = []
    for pattern in spec.tools:
        found = [t for name, t in tools.items() if fnmatchcase(name, pattern)]
        if not found and every_pattern:
            raise ConfigError(
                f"agent {spec.name}: no tool matches {pattern!r}; known tools: "
                f"{', '.join(sorted(tools)) or 'none'}"
            )
        chosen += [t for t in found if t not in chosen]
    return Agent(
        name=spec.name,
        description=spec.description,
        prompt=spec.prompt,
        tools=tuple(chosen),
        max_steps=spec.max_steps,
        model_route=spec.model_route,
        keywords=spec.keywords,
    )


def _prompt_path(settings: Settings, plugins: Sequence[Plugin]) -> PromptLibrary:
    bundled = DEFAULT_PROMPTS_DIR.resolve()
    theirs = [p.prompts for p in plugins if p.prompts and p.prompts.resolve() != bundled]
    team = [settings.prompts_dir] if settings.prompts_dir else []
    return PromptLibrary([*theirs, *team, bundled])


def build_catalogue(
    settings: Settings,
    *,
    plugins: Sequence[Plugin] | None = None,
    declared: Declared | None = None,
    extra_tools: Sequence[Tool] = (),
    scopes: Mapping[str, Sequence[str]] | None = None,
    every_pattern: bool = True,
) -> Catalogue:
    """Put the plugins, the declarations folder and ``extra_tools`` (an MCP server's) together.

    ``scopes`` adds tools (by name) to existing agents (by name), as a runbook's or an MCP
    server's ``agents`` asks. ``every_pattern=False`` lets a declared agent's pattern match
    nothing (a check made without connecting the MCP servers whose tools it may name).

    Raises:
        ConfigError: a name is used twice, a declared agent names no tool, an agent's prompt
            is missing, no agent is left, or a plugin or declaration does not load.
    """
    plugins = tuple(extension_plugins(settings) if plugins is None else plugins)
    declared = load_declared(settings.tools_dir) if declared is None else declared
    tools: dict[str, Tool] = {}
    agents: list[Agent] = []
    origins: list[str] = []  # where each agent came from, for a clash's message
    # The deprecated single registry (OPSLOOP_AGENTS) replaces every plugin's tools and agents.
    for plugin in () if settings.agents else plugins:
        for tool in plugin.tools:
            _add_tool(tools, _sourced(tool, plugin))
        for agent in plugin.agents:
            own = tuple(_add_tool(tools, _sourced(t, plugin)) for t in agent.tools)
            agents.append(dataclasses.replace(agent, tools=own))
            origins.append(f"plugin {plugin.name}")
    for tool in (*declared.tools, *extra_tools):
        _add_tool(tools, tool)
    if settings.agents:
        legacy = load_registry(settings.agents)
        for agent in legacy.agents:
            for tool in agent.tools:
                _add_tool(tools, tool)
        agents, router = list(legacy.agents), legacy.router
        origins = ["OPSLOOP_AGENTS"] * len(agents)
    else:
        agents += [_resolve(s, tools, every_pattern=every_pattern) for s in declared.agents]
        origins += ["OPSLOOP_TOOLS_DIR"] * len(declared.agents)
        router = keyword_router
    _check_agent_names(agents, origins)
    if not agents:
        raise ConfigError(
            "no agents: every plugin with agents is switched off (OPSLOOP_DISABLE_PLUGINS) "
            "and OPSLOOP_TOOLS_DIR declares none"
        )
    agents = _attach(agents, tools, {**declared.attach, **(scopes or {})})
    registry = AgentRegistry(agents=tuple(agents), router=router)
    prompts = _prompt_path(settings, plugins)
    check_prompts(registry, prompts)
    return Catalogue(plugins=plugins, tools=tools, registry=registry, prompts=prompts)


def _check_agent_names(agents: Sequence[Agent], origins: Sequence[str]) -> None:
    found: dict[str, list[str]] = {}
    for agent, origin in zip(agents, origins, strict=True):
        found.setdefault(agent.name, []).append(origin)
    twice = {name: where for name, where in found.items() if len(where) > 1}
    if twice:
        clashes = "; ".join(f"{name!r} (from {', '.join(where)})" for name, where in twice.items())
        raise ConfigError(f"more than one agent has one name: {clashes}; rename one")


def _attach(
    agents: list[Agent], tools: Mapping[str, Tool], scopes: Mapping[str, Sequence[str]]
) -> list[Agent]:
    by_name = {a.name: a for a in agents}
    for tool_name, agent_names in scopes.items():
        for name in agent_names:
            agent = by_name.get(name)
            if agent is None:
                raise ConfigError(
                    f"tool {tool_name}: agents names {name!r}, which is not an agent; "
                    f"known: {', '.join(sorted(by_name))}"
                )
            if agent.tool(tool_name) is None:
                by_name[name] = dataclasses.replace(agent, tools=(*agent.tools, tools[tool_name]))
    return [by_name[a.name] for a in agents]
