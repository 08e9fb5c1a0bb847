"""``opsloop tokens``: per-person API tokens, made, listed and revoked on this machine."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from bot.api._tokens import lifetime_of, token_person
from bot.app import Opsloop
from bot.cli._common import EXIT_CONFIG, console, errors, fail, run
from bot.errors import BadInputError
from bot.store import DEFAULT_SCOPES, SCOPES, ApiToken, ApiTokens, Scope

__all__ = ["tokens_app"]

tokens_app = typer.Typer(
    help=(
        "Per-person API tokens: each speaks for one person, with the scopes it is given. "
        "Only a hash is kept; the token itself is printed once, when it is made."
    ),
    no_args_is_help=True,
)

_SCOPE_HELP = (
    "What the token may do (repeat for several; default: read, act, decide). "
    "read: GET the API; act: start threads, post messages, pause and resume; "
    "decide: approve, reject, answer; admin: manage everyone's tokens, read all; "
    "service: speak for other people (for integrations; recorded as 'via' the token)."
)


@tokens_app.command("create")
def create(
    user: Annotated[
        str,
        typer.Option(
            "--user",
            metavar="PERSON",
            help="Whom it speaks for: a person in the policy, or web:<id> for one it doesn't name.",
        ),
    ],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", metavar="SCOPE", help=_SCOPE_HELP)
    ] = None,
    expires: Annotated[
        str, typer.Option(metavar="DURATION", help="30d, 12h, 2w, 90m, or 'never'.")
    ] = "90d",
    label: Annotated[
        str | None, typer.Option(metavar="TEXT", help="What it is for (shown in lists).")
    ] = None,
) -> None:
    """Make a token for a person and print it once (stdout: the token alone).

    Use it as 'Authorization: Bearer <token>'; e.g. TOKEN=$(opsloop tokens create --user oncall-1).
    """
    scopes: list[Scope] = []
    names: list[str] = list(dict.fromkeys(scope or DEFAULT_SCOPES))
    for name in names:
        if name not in SCOPES:
            fail(f"unknown scope {name!r}: use {', '.join(SCOPES)}", EXIT_CONFIG)
        scopes.append(name)

    async def body(ops: Opsloop) -> None:
        tokens = ApiTokens(ops.store.db)
        try:
            person = token_person(ops.runtime.policy, user)
            lasts = lifetime_of(expires)
        except BadInputError as exc:
            fail(str(exc), EXIT_CONFIG)
        made, secret = await tokens.create(
            person,
            scopes=scopes,
            label=label,
            lasts=lasts,
        )
        typer.echo(secret)
        until = f"until {made.expires_at:%Y-%m-%d %H:%M} UTC" if made.expires_at else "no expiry"
        errors.print(
            f"token {made.id} for web:{escape(person)} ({', '.join(made.scopes)}; {until}): "
            "keep it now, it is not shown again. Revoke with: opsloop tokens revoke " + made.id,
            soft_wrap=True,
        )

    run(body)


def _when(moment: datetime | None, never: str = "-", form: str = "%Y-%m-%d") -> str:
    return format(moment, form) if moment else never


def _table(found: list[ApiToken], now: datetime, width: int) -> Table:
    # What matters first (who, which scopes, until when) fits 80 columns; the label and last
    # use join in a wider terminal; everything, with when each was made, is in --json.
    wide = width >= 110
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("id", "person", "scopes", "expires", "status"):
        table.add_column(column, no_wrap=column != "person", overflow="fold")
    if wide:
        table.add_column("last used", no_wrap=True)
        table.add_column("label", overflow="fold")
    for t in found:
        row = [
            t.id,
            escape(t.person),
            ",".join(t.scopes),
            _when(t.expires_at, "never"),
            t.status(now),
        ]
        if wide:
            row += [_when(t.last_used_at), escape(t.label or "-")]
        table.add_row(*row)
    return table


@tokens_app.command("list")
def list_tokens(
    user: Annotated[
        str | None, typer.Option("--user", metavar="PERSON", help="Only this person's tokens.")
    ] = None,
    ended: Annotated[
        bool, typer.Option("--all", help="Also tokens that were revoked or expired.")
    ] = False,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List tokens, newest first (active ones unless --all); never their secrets."""

    async def body(ops: Opsloop) -> None:
        tokens = ApiTokens(ops.store.db)
        person = None
        if user is not None:
            try:
                person = token_person(ops.runtime.policy, user)
            except BadInputError as exc:
                fail(str(exc), EXIT_CONFIG)
        found = await tokens.list_tokens(person=person, include_ended=ended)
        now = tokens.clock()
        if json_lines:
            for token in found:
                typer.echo(token.model_dump_json())
            return
        if not found:
            console.print("No tokens." if ended else "No active tokens.")
            return
        console.print(_table(found, now, console.width))

    run(body)


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The token's id (tk_...).")],
) -> None:
    """Revoke a token: it stops working at once."""

    async def body(ops: Opsloop) -> None:
        if await ApiTokens(ops.store.db).revoke(token_id):
            console.print(f"revoked {token_id}")
        else:
            fail(f"no active token {token_id!r}")

    run(body)
