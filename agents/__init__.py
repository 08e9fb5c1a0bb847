"""The small, focused chat-ops agents opsloop ships: the ``agents`` plugin.

They are a plugin like any other (``OPSLOOP_DISABLE_PLUGINS=agents`` switches them off);
their prompts are the bundled ``prompts/``.
"""

from agents.router import keyword_router
from agents.tools import deploy, list_services, recent_deploys, restart, rollback, service_status
from bot.agent import Agent, AgentRegistry
from bot.plugins import Plugin
from bot.prompts import DEFAULT_PROMPTS_DIR

__all__ = ["DEPLOYER", "INSPECTOR", "plugin", "registry"]

INSPECTOR = Agent(
    name="inspector",
    description="Answers questions about services: what runs where, health, deploy history.",
    prompt="inspector",
    tools=(list_services, service_status, recent_deploys),
    max_steps=5,
    keywords=("status", "running", "health", "healthy", "list", "show", "history", "version"),
)

DEPLOYER = Agent(
    name="deployer",
    description="Deploys, restarts and rolls back services; production changes need approval.",
    prompt="deployer",
    tools=(service_status, recent_deploys, deploy, restart, rollback),
    max_steps=6,
    keywords=("deploy", "release", "ship", "restart", "rollback", "roll back", "revert"),
)

registry = AgentRegistry(agents=(INSPECTOR, DEPLOYER), router=keyword_router)
"""The shipped agents alone, for ``OPSLOOP_AGENTS=agents:registry``."""

plugin = Plugin(
    name="agents",
    agents=(INSPECTOR, DEPLOYER),
    tools=(list_services, service_status, recent_deploys, deploy, restart, rollback),
    prompts=DEFAULT_PROMPTS_DIR,
)
"""The shipped agents, their tools and prompts."""
