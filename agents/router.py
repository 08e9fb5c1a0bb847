"""The default router: picks the agent whose keywords a message mentions most."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.agent import Agent

__all__ = ["keyword_router"]


def keyword_router(text: str, agents: Sequence[Agent]) -> Agent | None:
    """The agent whose keywords occur most often in ``text``; ``None`` when none occurs."""
    words = re.findall(r"[a-z]+", text.lower())
    padded = f" {' '.join(words)} "

    def score(agent: Agent) -> int:
        return sum(padded.count(f" {keyword} ") for keyword in agent.keywords)

    best = max(agents, key=score)
    return best if score(best) > 0 else None
