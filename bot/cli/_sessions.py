"""``opsloop sessions``: console sign-in links, and the sessions they started."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bot.app import Opsloop
from bot.cli._common import console, fail, run
from bot.config import load_settings
from bot.events import utcnow
from bot.store import ConsoleSessions, Database

__all__ = ["new_login_link", "sessions_app"]

sessions_app = typer.Typer(
    help="Console sign-in: one-time login links; list and revoke sessions.",
    no_args_is_help=True,
)


async def new_login_link(database: Database, console_url: str) -> str:
    """A one-time console login link (its code works once, for a few minutes)."""
    code = await ConsoleSessions(database).new_login_code()
    return f"{console_url}/login?code={code}"


@sessions_app.command("link")
def link() -> None:
    """Print a new one-time login link for the web console."""

    async def body(ops: Opsloop) -> None:
        url = await new_login_link(ops.store.db, load_settings().console_url)
        console.print(f"Open the console (the link works once, within 15 minutes):\n\n    {url}")

    run(body)


@sessions_app.command("list")
def list_sessions(
    ended: Annotated[
        bool, typer.Option("--all", help="Also sessions that were revoked or expired.")
    ] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List console sessions, newest first (active ones unless --all)."""

    async def body(ops: Opsloop) -> None:
        found = await ConsoleSessions(ops.store.db).list_sessions(include_ended=ended)
        if json_lines:
            for session in found:
                typer.echo(session.model_dump_json())
            return
        if not found:
            console.print("No console sessions." if ended else "No active console sessions.")
            return
        now = utcnow()
        table = Table()
        for column in ("id", "method", "user", "started (UTC)", "last seen", "state"):
            table.add_column(column, no_wrap=column in {"id", "method", "state"})
        for s in found:
            state = (
                "active" if s.active(now) else "revoked" if s.revoked_at is not None else "expired"
            )
            table.add_row(
                s.id,
                s.method,
                escape(s.user_name or "-"),
                f"{s.created_at:%m-%d %H:%M}",
                f"{s.last_seen_at:%m-%d %H:%M}",
                state,
            )
        console.print(table)

    run(body)


@sessions_app.command("revoke")
def revoke(
    session_id: Annotated[
        str | None, typer.Argument(metavar="SESSION_ID", help="The session's id (cs_...).")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Revoke every active session.")] = False,
) -> None:
    """Revoke a console session (or all of them): its browser is signed out at once."""
    if (session_id is None) == (not every):
        fail("give either a session id or --all")

    async def body(ops: Opsloop) -> None:
        sessions = ConsoleSessions(ops.store.db)
        if every:
            count = await sessions.revoke_all()
            console.print(f"revoked {count} session{'s' if count != 1 else ''}")
        elif session_id is not None and await sessions.revoke(session_id):
            console.print(f"revoked {session_id}")
        else:
            fail(f"no active session {session_id!r}")

    run(body)
