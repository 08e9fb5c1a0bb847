"""The small, focused chat-ops agents opsloop ships, and the router that picks one.

``registry`` is what ``OPSLOOP_AGENTS=agents:registry`` (the default) loads.
"""

from agents.router import keyword_router
from agents.tools import deploy, list_services, recent_deploys, restart, rollback, service_status
from bot.agent import Agent, AgentRegistry

__all__ = ["DEPLOYER", "INSPECTOR", "registry"]

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
