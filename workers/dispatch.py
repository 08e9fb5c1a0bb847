"""The dispatcher the API and channels use: sends tasks by name, imports no task code."""

from __future__ import annotations

from celery import Celery

__all__ = ["CeleryDispatcher"]


# Publishing retries briefly, then gives up: callers hold stored work the sweeper owns, so
# a long wait for a broker that is down helps nobody (Celery's default waits ~1 s x 3).
RETRY_POLICY = {"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.3}


class CeleryDispatcher:
    """Enqueues work on the configured broker."""

    def __init__(self, app: Celery) -> None:
        """Send through ``app``."""
        self.app = app

    def process(self, item_id: int) -> None:
        """Process one inbox item."""
        self.app.send_task("opsloop.process", args=[item_id], retry_policy=RETRY_POLICY)

    def deliver(self, thread_id: str, *, countdown: float | None = None) -> None:
        """Deliver a thread's pending messages, in ``countdown`` seconds (at once if ``None``)."""
        self.app.send_task(
            "opsloop.deliver", args=[thread_id], countdown=countdown, retry_policy=RETRY_POLICY
        )

    def resume(self, thread_id: str) -> None:
        """Drive an orphaned running thread."""
        self.app.send_task("opsloop.resume", args=[thread_id], retry_policy=RETRY_POLICY)

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
