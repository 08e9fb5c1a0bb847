"""A deploy agent and a scripted model for the chaos test, used by real worker processes.

The registry is loaded through ``OPSLOOP_AGENTS=tests.workers.chaos_agents:registry``. Run as
``python -m tests.workers.chaos_agents worker ...``, this module is the ``opsloop`` command
itself, except that each worker process builds its app on :func:`decide` (a
:class:`~bot.model.FunctionModel`) instead of the offline model, so the model's behaviour is
a plain function of the thread.

``deploy`` takes a moment before and after it acts, as a real deploy system does: a worker
killed meanwhile leaves an approved call committed but not answered, with or without the
change made.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue

from agents import tools as agent_tools
from agents.tools import DeployArgs
from bot.agent import Agent, AgentRegistry
from bot.events import CallTool, ErrorRaised, Reply, ToolReturned, UserMessage
from bot.model import FunctionModel, ModelRequest
from bot.tools import ToolContext, tool

DEPLOY_SECONDS = 0.4
"""How long the deploy system takes before, and again after, it makes the change."""

DEPLOY_REQUEST = re.compile(r"\bdeploy ([a-z0-9-]+) ([0-9][0-9a-z.+-]*) to ([a-z]+)\b")


@tool(tier="write", touches=("environment", "service"))
async def deploy(ctx: ToolContext, args: DeployArgs) -> JsonValue:
    """Deploy a version of a service to an environment."""
    await asyncio.sleep(DEPLOY_SECONDS)
    done = await agent_tools.deploy.run(ctx, args)  # the shipped tool, timed differently
    await asyncio.sleep(DEPLOY_SECONDS)
    return done


def _since_last_message(events: Sequence[Any]) -> tuple[UserMessage | None, list[Any]]:
    for index in range(len(events) - 1, -1, -1):
        if isinstance(events[index], UserMessage):
            return events[index], list(events[index + 1 :])
    return None, list(events)


def decide(request: ModelRequest) -> CallTool | Reply:
    """What a model that does as it is told would decide.

    It reports the outcome of the call made since the person last spoke; otherwise it
    deploys when the last message asks for a deploy, and acknowledges anything else.
    """
    message, after = _since_last_message(request.events)
    outcome = next((e for e in reversed(after) if isinstance(e, ToolReturned | ErrorRaised)), None)
    if isinstance(outcome, ToolReturned):
        output = outcome.output
        if isinstance(output, dict) and output.get("rejected"):
            return Reply(text=f"Not deployed: rejected by {output.get('by')}.")
        return Reply(text=f"Deployed: {output}")
    if isinstance(outcome, ErrorRaised):
        return Reply(text=f"That did not work: {outcome.message}")
    asked = DEPLOY_REQUEST.search(message.text) if message else None
    if asked:
        service, version, environment = asked.groups()
        arguments: dict[str, JsonValue] = {
            "service": service,
            "version": version,
            "environment": environment,
        }
        return CallTool(tool="deploy", arguments=arguments)
    return Reply(text="Noted.")


DEPLOYER = Agent(
    name="deployer",
    description="Deploys services; production deploys need approval.",
    prompt="deployer",
    tools=(deploy,),
    keywords=("deploy",),
)

registry = AgentRegistry(agents=(DEPLOYER,), router=lambda text, agents: None)


def main() -> None:
    """``opsloop`` with every worker process's app built on the scripted model."""
    from celery import signals

    import workers.celery_app as worker_app
    from bot.app import Opsloop
    from bot.cli import main as opsloop

    @signals.worker_process_init.connect(weak=False)
    def scripted_app(**_: Any) -> None:
        # The worker's own lazily built app, made now with the model replaced.
        settings = worker_app._state.get("settings") or worker_app.configure()
        model = FunctionModel(decide, model_name="chaos-script")
        built = Opsloop.from_settings(settings, auto_migrate=False, models={"default": model})
        worker_app._state["ops"] = worker_app._run(built)

    opsloop()


if __name__ == "__main__":
    main()
