"""Small, focused agents and the registry the router picks from.

An agent declares its prompt, a few tools, a model route and a step budget. The agents
themselves live in the ``agents`` package; the core finds them through the import path
in ``OPSLOOP_AGENTS`` (``agents:registry`` by default), so it never imports them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from bot.config import Settings
from bot.errors import ConfigError, NotFoundError
from bot.model import ToolSpec
from bot.model._call_syntax import CALL
from bot.prompts import Prompt, PromptLibrary
from bot.tools import ASK_HUMAN, Tool

__all__ = [
    "Agent",
    "AgentRegistry",
    "Router",
    "check_prompts",
    "check_startup",
    "keyword_router",
    "load_registry",
    "system_prompt",
]


@dataclass(frozen=True)
class Agent:
    """One small agent."""

    name: str
    """How people and the router name it."""
    description: str
    """What it is for, in a sentence (shown in listings and to the router)."""
    prompt: str
    """The name of its system prompt template in ``prompts/``."""
    tools: tuple[Tool, ...]
    """Its tools (``ask_human`` is always added)."""
    max_steps: int = 6
    """Model calls allowed per run before it stops and says so."""
    model_route: str = "default"
    """Which model chain to use."""
    keywords: tuple[str, ...] = ()
    """Words that make the keyword router pick it."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_steps <= 20:
            raise ConfigError(f"agent {self.name}: max_steps must be between 1 and 20")

    @cached_property
    def all_tools(self) -> tuple[Tool, ...]:
        """Its tools plus ``ask_human``."""
        return (*self.tools, ASK_HUMAN)

    @cached_property
    def specs(self) -> tuple[ToolSpec, ...]:
        """Its tools as the model sees them."""
        return tuple(t.spec for t in self.all_tools)

    def tool(self, name: str) -> Tool | None:
        """The tool called ``name``, if this agent has it."""
        return next((t for t in self.all_tools if t.name == name), None)


Router = Callable[[str, Sequence[Agent]], "Agent | None"]
"""Picks the agent a message is for; ``None`` when the message says nothing about it."""


def keyword_router(text: str, agents: Sequence[Agent]) -> Agent | None:
    """The agent a message is for; ``None`` when the message does not say.

    That is the agent with the tool ``call TOOL …`` names, else the one whose keywords occur
    most often in ``text``.
    """
    called = CALL.match(text)
    if called:
        for agent in agents:
            if agent.tool(called[1]) is not None and called[1] != ASK_HUMAN.name:
                return agent
    words = re.findall(r"[a-z]+", text.lower())
    padded = f" {' '.join(words)} "

    def score(agent: Agent) -> int:
        return sum(padded.count(f" {keyword} ") for keyword in agent.keywords)

    if not agents:
        return None
    best = max(agents, key=score)
    return best if score(best) > 0 else None


@dataclass(frozen=True)
class AgentRegistry:
    """The agents a deployment offers, and the router that picks among them."""

    agents: tuple[Agent, ...]
    """Every agent."""
    router: Router = keyword_router
    """Picks an agent for a new conversation."""
    by_name: dict[str, Agent] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {a.name: a for a in self.agents})

    def get(self, name: str) -> Agent:
        """The agent called ``name``.

        Raises:
            NotFoundError: no such agent; the message lists the known ones.
        """
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name))
            raise NotFoundError(f"unknown agent {name!r}; known agents: {known}") from None

    def route(self, text: str, current: str | None = None) -> Agent:
        """The agent for a message.

        The one the message is clearly for, else the thread's current agent, else the
        first (default) agent.
        """
        picked = self.router(text, self.agents)
        if picked is not None:
            return picked
        return self.get(current) if current else self.agents[0]


def load_registry(spec: str) -> AgentRegistry:
    """Import ``package.module:attribute`` (an :class:`AgentRegistry` or a factory of one)."""
    module_name, _, attribute = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attribute or "registry")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"OPSLOOP_AGENTS: cannot load {spec!r}: {exc}") from None
    registry = found() if callable(found) and not isinstance(found, AgentRegistry) else found
    if not isinstance(registry, AgentRegistry):
        raise ConfigError(f"OPSLOOP_AGENTS: {spec!r} is not an AgentRegistry")
    return registry


def system_prompt(agent: Agent, prompts: PromptLibrary) -> tuple[str, Prompt]:
    """``agent``'s system prompt, rendered, and the template it came from.

    Raises:
        ConfigError: the prompt file is missing, unreadable or has an unknown placeholder.
    """
    prompt = prompts.get(agent.prompt)
    text = prompt.render(
        agent=agent.name,
        tools=", ".join(t.name for t in agent.all_tools),
        max_steps=str(agent.max_steps),
    )
    return text, prompt


def check_prompts(registry: AgentRegistry, prompts: PromptLibrary) -> None:
    """Render every agent's prompt once, so a missing or broken one stops start-up.

    Raises:
        ConfigError: a prompt file is missing, unreadable or has an unknown placeholder.
    """
    for agent in registry.agents:
        system_prompt(agent, prompts)


def check_startup(settings: Settings, *, connect_mcp: bool = True) -> None:
    """What must hold before a process serves: policy, plugins, agents and their prompts.

    Declared MCP servers are connected for the check, then closed (each serving process
    opens its own sessions); one that cannot be reached is logged, not fatal. A process that
    calls no tool passes ``connect_mcp=False``: the declarations are checked, no server runs.

    Raises:
        ConfigError: one of them is missing or invalid; the process must not start.
    """
    from bot.mcp import check_catalogue
    from bot.policy import load_policy

    load_policy(settings.policy_file)
    check_catalogue(settings, connect=connect_mcp)
