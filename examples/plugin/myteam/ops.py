"""The plugin: the flags agent, its tools and prompt, and the flags client it needs."""

from __future__ import annotations

from pathlib import Path

from bot.agent import Agent
from bot.plugins import Plugin

from myteam.flags import FLAGS, Flags, flag_status, set_flag

FLAGGER = Agent(
    name="flagger",
    description="Shows and changes feature flags; production changes need approval.",
    prompt="flagger",
    tools=(flag_status, set_flag),
    keywords=("flag", "flags", "feature"),
)

plugin = Plugin(
    name="myteam",
    agents=(FLAGGER,),
    prompts=Path(__file__).parent / "prompts",
    resources={FLAGS: lambda made: Flags()},
)
"""What ``OPSLOOP_PLUGINS=myteam.ops`` loads."""
