"""Work the Slack channel does after acknowledging Slack: lookups, modals, notices.

Each task is kept referenced until it ends (asyncio keeps only weak references), and a
failure is logged, since no caller is left to raise it to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["later", "settled"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()


def later(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``work`` in the background."""
    task = asyncio.create_task(work)
    _running.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("Slack background work failed", exc_info=task.exception())


async def settled() -> None:
    """Wait until no background work of this event loop is left (shutdown, tests)."""
    loop = asyncio.get_running_loop()
    while mine := [task for task in _running if task.get_loop() is loop]:
        await asyncio.wait(mine)
