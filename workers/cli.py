"""``opsloop worker`` and ``opsloop beat``: the worker and scheduler processes."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the worker commands to ``app``."""

    @app.command()
    def worker(
        concurrency: Annotated[
            int, typer.Option(min=1, max=64, help="Tasks run at once (worker processes).")
        ] = 2,
        loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
        quiet: Annotated[bool, typer.Option(help="No start-up banner.")] = False,
    ) -> None:
        """Run a worker: process events, deliver messages, sweep (production: scale these out)."""
        from workers.celery_app import DELIVERY_QUEUE, QUEUE, celery_app, configure

        settings = configure()
        argv = [
            "worker",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            f"--queues={QUEUE},{DELIVERY_QUEUE}",
        ]
        if not settings.redis_url:
            argv.append("--without-heartbeat")
        if quiet:
            # `opsloop run` on a developer's machine: the warning about running as root is
            # for production deployments, where the image runs as an unprivileged user.
            from celery.exceptions import SecurityWarning

            warnings.filterwarnings("ignore", category=SecurityWarning)
        celery_app.start(["--quiet", *argv] if quiet else argv)

    @app.command()
    def beat(
        loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
        quiet: Annotated[bool, typer.Option(help="No start-up banner.")] = False,
    ) -> None:
        """Run the scheduler: the sweeper and scheduled triggers (run exactly one)."""
        from workers.celery_app import celery_app, configure

        configure()
        argv = ["beat", f"--loglevel={loglevel}"]
        celery_app.start(["--quiet", *argv] if quiet else argv)
