"""Agents for worker tests, loaded by real worker processes through OPSLOOP_AGENTS.

``deploy`` here does its side effect first and then, while the file named by
``OPSLOOP_TEST_BLOCK_FILE`` exists, blocks: the worst moment for a worker to die.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import JsonValue

from agents import INSPECTOR
from agents import tools as agent_tools
from agents.router import keyword_router
from agents.tools import DeployArgs
from bot.agent import Agent, AgentRegistry
from bot.tools import ToolContext, tool


@tool(tier="write", touches=("environment", "service"))
async def deploy(ctx: ToolContext, args: DeployArgs) -> JsonValue:
    """Deploy a version of a service to an environment (blocks after acting, for tests)."""
    done = await agent_tools.deploy.run(ctx, args)  # the shipped tool, timed differently
    block = Path(os.environ.get("OPSLOOP_TEST_BLOCK_FILE", "/nonexistent"))
    while await asyncio.to_thread(block.exists):  # noqa: ASYNC110 - another process removes it
        await asyncio.sleep(0.05)
    return done  # type: ignore[return-value]


SLOW_DEPLOYER = Agent(
    name="deployer",
    description="Deploys, blocking after the side effect while a file exists.",
    prompt="deployer",
    tools=(deploy,),
    keywords=("deploy",),
)

registry = AgentRegistry(agents=(INSPECTOR, SLOW_DEPLOYER), router=keyword_router)
