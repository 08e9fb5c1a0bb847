"""Calls of tools that cannot tell a repeat: each is started at most once.

A built-in change honours its idempotency key, so a call cut short by a crash is simply run
again. An MCP server's or a runbook's change cannot be asked whether it already happened: a
second ``git_commit`` commits twice. Such a call is claimed here, in its own transaction,
before it starts; a call found claimed is not run again (see :func:`bot.runtime.run_tool`).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from bot.events import utcnow
from bot.store._database import Database
from bot.store._tables import ToolRunRow

__all__ = ["RunStore"]


class RunStore:
    """The ledger of started calls."""

    db: Database

    async def claim_tool_run(self, idempotency_key: str, *, thread_id: str, tool: str) -> bool:
        """Record that the call under ``idempotency_key`` starts; ``False`` if it started before."""
        row = ToolRunRow(
            idempotency_key=idempotency_key, thread_id=thread_id, tool=tool, started_at=utcnow()
        )
        try:
            async with self.db.session() as session:
                session.add(row)
        except IntegrityError:
            return False
        return True
