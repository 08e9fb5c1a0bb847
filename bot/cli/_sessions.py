"""``opsloop sessions``: console sign-in links, and the sessions they started."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bot.app import Opsloop
from bot.cli._common import console, fail, run
from bot.config import load_settings
from bot.errors import ConfigError
from bot.events import utcnow
from bot.policy import Policy
from bot.store import ConsoleSessions, Database

__all__ = ["login", "login_people", "login_principal", "new_login_link", "sessions_app"]

sessions_app = typer.Typer(
    help="Console sign-in: one-time login links; list and revoke sessions.",
    no_args_is_help=True,
)

AsPerson = Annotated[
    str,
    typer.Option(
        "--as",
        metavar="PERSON",
        help="The person the link signs in (a name from the policy's [people], e.g. dev-1).",
        show_default=False,
    ),
]


def _web_principal(policy: Policy, person: str) -> str | None:
    return next((p for p in policy.people[person].principals if p.startswith("web:")), None)


def _people_with_web(policy: Policy) -> list[str]:
    return [name for name in policy.people if _web_principal(policy, name)]


def login_principal(policy: Policy, name: str) -> str:
    """The ``web:`` principal a login link for ``name`` signs in; ConfigError if none.

    ``name`` is a person from the policy's ``[people]`` (signed in as their ``web:``
    principal) or a ``web:`` principal the policy names.
    """
    name = name.strip()
    if name in policy.people:
        found = _web_principal(policy, name)
        if found:
            return found
        raise ConfigError(
            f'{name} has no web: principal in the policy: add "web:{name}" to '
            f"[people.{name}] principals to let them sign in to the console"
        )
    if name.startswith("web:") and name in policy.known_principals():
        return name
    people = ", ".join(_people_with_web(policy)) or "(none: add [people] to the policy)"
    raise ConfigError(f"{name!r} is not a person in the policy; people: {people}")


def login_people(policy: Policy) -> tuple[str | None, str | None]:
    """Whom ``opsloop run`` offers links for: a developer, and an approver to try approvals.

    The developer is the first person of role ``developer`` (else the first person); the
    approver the first other person an approval rule names.
    """
    people = _people_with_web(policy)
    developers = [p for p in people if p in policy.roles.get("developer", ())]
    developer = next(iter(developers or people), None)
    named: list[str] = []
    for rule in policy.rules:
        if rule.approval == "required":
            named += [policy.person_of(p) for p in policy.principals_named(rule.approvers)]
    approver = next((p for p in dict.fromkeys(named) if p in people and p != developer), None)
    return developer, approver


async def new_login_link(database: Database, console_url: str, principal: str) -> str:
    """A one-time console login link for ``principal`` (it works once, for a few minutes)."""
    code = await ConsoleSessions(database).new_login_code(principal)
    return f"{console_url}/login?code={code}"


def _print_link(person: AsPerson) -> None:
    async def body(ops: Opsloop) -> None:
        principal = login_principal(ops.runtime.policy, person)
        url = await new_login_link(ops.store.db, load_settings().console_url, principal)
        console.print(
            f"Open the console as {principal} (the link works once, within 15 minutes):"
            f"\n\n    {url}"
        )

    run(body)


def login(person: AsPerson) -> None:
    """Print a one-time link that signs the web console in as PERSON."""
    _print_link(person)


@sessions_app.command("link")
def link(person: AsPerson) -> None:
    """Print a one-time console login link as PERSON (the same as `opsloop login --as`)."""
    _print_link(person)


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
        for column in ("id", "person", "auth", "started (UTC)", "last seen", "state"):
            table.add_column(column, no_wrap=column in {"id", "person", "auth", "state"})
        for s in found:
            state = (
                "active" if s.active(now) else "revoked" if s.revoked_at is not None else "expired"
            )
            table.add_row(
                s.id,
                escape(s.principal or "-"),
                escape(s.auth or s.method),
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
