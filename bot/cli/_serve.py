"""``opsloop api`` and ``opsloop run``: opsloop as a service."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import FrameType
from typing import Annotated

import typer

from bot.cli._common import EXIT_CONFIG, console, fail, guarded
from bot.cli._sessions import login_people, login_principal, new_login_link
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.plugins import ChannelContext, Gateway, load_plugins
from bot.policy import load_policy
from bot.store import Database

__all__ = ["api", "run_all"]


def _settings(*, connect_mcp: bool = True) -> Settings:
    """The settings, and the plugins' own (loading a plugin validates its settings)."""
    from bot.app import check_startup

    try:
        settings = load_settings()
        load_plugins()
        check_startup(settings, connect_mcp=connect_mcp)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return settings


def _check_schema(settings: Settings, *, auto_migrate: bool) -> None:
    async def check() -> None:
        database = Database(settings.database)
        try:
            await database.ensure_schema(auto_migrate=auto_migrate)
        finally:
            await database.dispose()

    guarded(check())


def _listen(address: str) -> socket.socket:
    """A socket listening on ``address`` (host:port), or one line and exit 2.

    Bound here, before anything is started or printed, so a port already in use is told
    at once (and never answered by whatever process holds it).
    """
    host, _, port = address.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        fail(f"cannot listen on {address!r}: it must be host:port, port 1 to 65535", EXIT_CONFIG)
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        fail(f"cannot listen on {address}: {exc.strerror or exc}", EXIT_CONFIG)
    try:
        # As uvicorn does: a restart may reuse the port at once; a live listener still holds it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {address}: {exc.strerror or exc}", EXIT_CONFIG)
    return sock


def api(
    bind: Annotated[
        str | None, typer.Option(help="host:port to listen on (default: $OPSLOOP_BIND).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    fd: Annotated[
        int | None, typer.Option(hidden=True, help="Serve on this inherited listening socket.")
    ] = None,
    under_run: Annotated[
        bool, typer.Option(hidden=True, help="Started by `opsloop run` (a development machine).")
    ] = False,
) -> None:
    """Serve the HTTP API, webhooks and the web console."""
    import uvicorn

    from bot.api import create_app

    settings = _settings()
    if settings.api_token is None:
        fail("set OPSLOOP_API_TOKEN: the API refuses every request without a token", EXIT_CONFIG)
    if settings.dev_identities and not under_run:
        fail(
            "OPSLOOP_DEV_IDENTITIES=true lets anyone act as anyone: `opsloop api` refuses to "
            "serve with it (it is for `opsloop run` on a development machine); unset it",
            EXIT_CONFIG,
        )
    sock = socket.socket(fileno=fd) if fd is not None else _listen(bind or settings.bind)
    _check_schema(settings, auto_migrate=settings.database.startswith("sqlite"))
    config = uvicorn.Config(
        create_app(settings), log_level=log_level, proxy_headers=True, server_header=False
    )
    uvicorn.Server(config).run(sockets=[sock])


def _gateways() -> list[tuple[str, Gateway]]:
    found = []
    for plugin in load_plugins():
        gateway = plugin.gateway() if plugin.gateway is not None else None
        if gateway is not None:
            found.append((plugin.name, gateway))
    return found


def gateway() -> None:
    """Run the inbound side of every configured channel (Slack Socket Mode, Discord, email).

    Channels reached over HTTP (Slack's HTTP mode, webhooks) are served by `opsloop api`.
    """
    from bot.api import dispatcher_from_plugins
    from bot.app import Opsloop

    settings = _settings()
    try:
        gateways = _gateways()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    if not gateways:
        fail(
            "no channel gateway is configured: set SLACK_APP_TOKEN (Slack Socket Mode), "
            "DISCORD_BOT_TOKEN, or the IMAP_* settings (email)",
            EXIT_CONFIG,
        )
    _check_schema(settings, auto_migrate=settings.database.startswith("sqlite"))

    async def serve() -> None:
        ops = await Opsloop.from_settings(settings)
        context = ChannelContext(
            ops=ops, dispatcher=dispatcher_from_plugins(settings, load_plugins())
        )
        console.print("gateways: " + ", ".join(name for name, _ in gateways))
        try:
            await asyncio.gather(*(run(context) for _, run in gateways))
        finally:
            await ops.aclose()

    guarded(serve())


def _people(settings: Settings, person: str | None) -> tuple[str, str | None]:
    """The ``web:`` principal the start-up link signs in, and an approver to suggest."""
    try:
        policy = load_policy(settings.policy_file)
        developer, approver = login_people(policy)
        chosen = person or developer
        if chosen is None:
            fail(
                "the policy names no person with a web: principal to sign in as: add "
                '[people.NAME] principals = ["web:NAME"]',
                EXIT_CONFIG,
            )
        principal = login_principal(policy, chosen)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return principal, approver if approver != chosen else None


async def _login_link(settings: Settings, principal: str) -> str:
    database = Database(settings.database)
    try:
        return await new_login_link(database, settings.console_url, principal)
    finally:
        await database.dispose()


def _started(settings: Settings, principal: str, link: str, approver: str | None) -> str:
    """What ``opsloop run`` says once the API answers."""
    lines = [
        "\nopsloop is running.",
        f"Open the console as {principal} (the link works once, within 15 minutes):",
        f"\n    {link}\n",
    ]
    if approver:
        lines.append(f"A link for an approver: opsloop login --as {approver}")
    lines.append("Another person: opsloop login --as PERSON (people are in the policy).")
    if settings.dev_identities:
        lines.append("[red]Development identities are on: anyone can act as anyone.[/]")
    lines.append(f"API: {settings.console_url}/docs · Ctrl-C stops everything.")
    return "\n".join(lines)


def _local_token(settings: Settings) -> str:
    """The admin token ``opsloop run`` makes up when none is set, kept across restarts.

    Console sessions are signed with a key derived from it: a new one each start would sign
    everyone out. It lives beside the embedded queue, readable by its owner only.
    """
    path = (settings.home / ".opsloop" / "api-token").resolve()
    try:
        kept = path.read_text(encoding="utf-8").strip()
        if len(kept) >= 16:
            return kept
    except OSError:
        pass
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


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
    person: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="PERSON",
            help="Whom the start-up login link signs in (default: the first developer).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start everything on this machine: API and console, workers, scheduler, gateways.

    Ctrl-C stops it all. Without REDIS_URL the queue is an embedded one under OPSLOOP_HOME.
    """
    settings = _settings(connect_mcp=False)  # each part it starts checks for itself
    principal, approver = _people(settings, person)
    listening = _listen(settings.bind)
    _check_schema(settings, auto_migrate=True)
    token = settings.api_token.get_secret_value() if settings.api_token else _local_token(settings)
    env = {**os.environ, "OPSLOOP_API_TOKEN": token}
    me = [sys.executable, "-m", "bot.cli"]
    try:
        with_gateway = bool(_gateways())
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    commands = {
        "api": [
            *me,
            *("api", "--log-level", "warning", "--under-run", "--fd", str(listening.fileno())),
        ],
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
    if with_gateway:
        commands["gateway"] = [*me, "gateway"]
    # Each child in a session of its own: Ctrl-C reaches only this supervisor, which then
    # stops each child's main process the way it expects (celery's pool stops with it).
    children = {
        name: subprocess.Popen(
            cmd,
            env=env,
            start_new_session=True,
            pass_fds=(listening.fileno(),) if name == "api" else (),
        )
        for name, cmd in commands.items()
    }
    listening.close()  # the API holds it now
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
            link = guarded(_login_link(settings, principal))
            console.print(_started(settings, principal, link, approver), soft_wrap=True)
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
