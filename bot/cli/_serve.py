"""``opsloop api`` and ``opsloop run``: opsloop as a service."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import FrameType
from typing import Annotated

import typer

from bot.cli._common import EXIT_CONFIG, console, fail, guarded
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.store import Database

__all__ = ["api", "run_all"]


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def _check_schema(settings: Settings, *, auto_migrate: bool) -> None:
    async def check() -> None:
        database = Database(settings.database)
        try:
            await database.ensure_schema(auto_migrate=auto_migrate)
        finally:
            await database.dispose()

    guarded(check())


def api(
    bind: Annotated[
        str | None, typer.Option(help="host:port to listen on (default: $OPSLOOP_BIND).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API, webhooks and the web console."""
    import uvicorn

    from bot.api import create_app

    settings = _settings()
    if settings.api_token is None:
        fail("set OPSLOOP_API_TOKEN: the API refuses every request without a token", EXIT_CONFIG)
    host, _, port = (bind or settings.bind).rpartition(":")
    if not host or not port.isdigit():
        fail(f"--bind must be host:port, not {bind!r}", EXIT_CONFIG)
    _check_schema(settings, auto_migrate=settings.database.startswith("sqlite"))
    uvicorn.run(
        create_app(settings),
        host=host,
        port=int(port),
        log_level=log_level,
        proxy_headers=True,
        server_header=False,
    )


def _wait_healthy(url: str, child: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


def run_all(
    workers: Annotated[int, typer.Option(min=1, max=16, help="Worker processes.")] = 2,
) -> None:
    """Start everything on this machine: API and console, a worker and the scheduler.

    Ctrl-C stops it all. Without REDIS_URL the queue is an embedded one under OPSLOOP_HOME.
    """
    settings = _settings()
    _check_schema(settings, auto_migrate=True)
    token = (
        settings.api_token.get_secret_value() if settings.api_token else secrets.token_urlsafe(24)
    )
    env = {**os.environ, "OPSLOOP_API_TOKEN": token}
    me = [sys.executable, "-m", "bot.cli"]
    commands = {
        "api": [*me, "api", "--log-level", "warning"],
        "worker": [
            *me,
            "worker",
            "--concurrency",
            str(workers),
            "--loglevel",
            "WARNING",
            "--quiet",
        ],
        "beat": [*me, "beat", "--loglevel", "WARNING", "--quiet"],
    }
    # Each child in a session of its own: Ctrl-C reaches only this supervisor, which then
    # stops each child's main process the way it expects (celery's pool stops with it).
    children = {
        name: subprocess.Popen(cmd, env=env, start_new_session=True)
        for name, cmd in commands.items()
    }
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        if not _wait_healthy(settings.console_url, children["api"]):
            console.print("[red]the API did not come up; see the messages above[/]")
            code = 1
        else:
            console.print(
                f"\nopsloop is running. Open the console:\n\n    "
                f"{settings.console_url}/login?token={token}\n\n"
                f"API: {settings.console_url}/docs · Ctrl-C stops everything."
            )
        while code == 0 and not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    console.print(f"[red]{name} stopped (exit {child.returncode}); stopping[/]")
                    code = 1
            time.sleep(0.2)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        console.print("opsloop stopped.")
    raise typer.Exit(code)
