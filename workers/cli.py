"""``opsloop worker`` and ``opsloop beat``: the worker and scheduler processes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = ["register"]


def _checked(configure: Callable[[], Settings], *, connect_mcp: bool = True) -> Settings:
    """Settings, policy, agents and prompts, checked before Celery starts (exit 2 if bad)."""
    from bot.app import check_startup
    from bot.cli._common import EXIT_CONFIG, fail
    from bot.errors import ConfigError

    try:
        settings = configure()
        check_startup(settings, connect_mcp=connect_mcp)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return settings


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

        settings = _checked(configure)
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

        _checked(configure, connect_mcp=False)  # the scheduler calls no tool
        argv = ["beat", f"--loglevel={loglevel}"]
        celery_app.start(["--quiet", *argv] if quiet else argv)
