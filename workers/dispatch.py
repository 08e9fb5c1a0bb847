"""The dispatcher the API and channels use: sends tasks by name, imports no task code."""

from __future__ import annotations

from celery import Celery

__all__ = ["CeleryDispatcher"]


class CeleryDispatcher:
    """Enqueues work on the configured broker."""

    def __init__(self, app: Celery) -> None:
        """Send through ``app``."""
        self.app = app

    def process(self, item_id: int) -> None:
        """Process one inbox item."""
        self.app.send_task("opsloop.process", args=[item_id])

    def deliver(self, thread_id: str) -> None:
        """Deliver a thread's pending messages."""
        self.app.send_task("opsloop.deliver", args=[thread_id])

    def resume(self, thread_id: str) -> None:
        """Drive an orphaned running thread."""
        self.app.send_task("opsloop.resume", args=[thread_id])

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
