"""The ``opsloop`` command: chat in the terminal, inspect threads, decide requests, migrate."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.app import Opsloop
from bot.cli._chat import chat
from bot.cli._common import (
    console,
    default_user,
    errors,
    fail,
    guarded,
    identity,
    parse_sets,
    run,
)
from bot.cli._policy import policy_app
from bot.cli._render import event_json_lines, print_events, threads_table
from bot.cli._serve import api, gateway, run_all
from bot.cli._sessions import login, sessions_app
from bot.cli._tokens import tokens_app
from bot.cli._tools import tools_app
from bot.config import load_settings
from bot.errors import ConfigError
from bot.events import ActionReceived, ConversationRef, HumanDecision, ThreadStatus, new_id
from bot.plugins import load_plugins
from bot.store import MAX_PAGE, Database, ThreadSummary, thread_page

__all__ = ["app", "main"]

app = typer.Typer(
    name="opsloop",
    help="opsloop: a chat-ops bot whose agents ask a human before risky changes.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
threads_app = typer.Typer(help="List and show threads.", no_args_is_help=True)
app.add_typer(threads_app, name="threads")
app.add_typer(sessions_app, name="sessions")
app.add_typer(tokens_app, name="tokens")
app.add_typer(tools_app, name="tools")
app.add_typer(policy_app, name="policy")
app.command(help=chat.__doc__)(chat)
app.command("run")(run_all)
app.command()(api)
app.command()(gateway)
app.command("login")(login)

AsUser = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="USER",
        help="Your user id (default: $OPSLOOP_USER, then $USER).",
        show_default=False,
    ),
]


@threads_app.command("list")
def threads_list(
    status: Annotated[
        ThreadStatus | None, typer.Option(help="Only threads with this status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    cursor: Annotated[
        str | None,
        typer.Option(help="Go on from where a listing stopped (the cursor it printed)."),
    ] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """List threads, most recently active first; says how to list the older ones."""

    async def body(ops: Opsloop) -> None:
        threads: list[ThreadSummary] = []
        after = cursor
        while len(threads) < limit:
            size = min(MAX_PAGE, limit - len(threads))
            page = await thread_page(ops.store.db, limit=size, status=status, cursor=after)
            threads += page.items
            after = page.next_cursor
            if after is None:
                break
        if json_lines:
            for t in threads:
                typer.echo(t.model_dump_json())
        elif not threads and cursor is None:
            console.print(
                'No threads yet. Start one with: opsloop chat -m "what is running in staging?"'
            )
        else:
            console.print(threads_table(threads))
        if after is not None:  # on stderr, so --json output stays one object a line
            typer.echo(f"older threads: opsloop threads list --cursor {after}", err=True)

    run(body)


@threads_app.command("show")
def threads_show(
    thread_id: Annotated[
        str, typer.Argument(metavar="THREAD_ID", help="The thread's id (th_...).")
    ],
    json_lines: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
) -> None:
    """Show one thread's whole timeline: messages, model calls, tools, decisions."""

    async def body(ops: Opsloop) -> None:
        thread = await ops.store.load_thread(thread_id)
        if json_lines:
            for line in event_json_lines(thread):
                typer.echo(line)
            return
        cost = sum(getattr(e, "cost_usd", 0.0) for e in thread.events)
        console.print(
            f"[bold]{thread.id}[/] {thread.status.value} · agent {thread.agent or '-'} · "
            f"{thread.conversation.channel} · {thread.last_seq} events · ${cost:.4f}"
        )
        print_events(console, thread.events, verbose=True)

    run(body)


def _decide(
    request_id: str,
    user: str | None,
    decision: HumanDecision,
    comment: str | None,
    sets: list[str] | None = None,
) -> None:
    actor = identity(user or default_user())

    async def body(ops: Opsloop) -> None:
        request = await ops.store.human_request(request_id)
        thread = await ops.store.load_thread(request.thread_id)
        changes = parse_sets(sets, request.request.arguments or {}) if sets else None
        event = ActionReceived(
            idempotency_key=f"cli:{new_id('act')}",
            conversation=ConversationRef(
                channel="cli", room="terminal", thread_key=thread.conversation.thread_key
            ),
            actor=actor,
            request_id=request_id,
            decision=decision,
            comment=comment,
            changes=changes,
        )
        outcome = await ops.submit(event)
        print_events(console, outcome.new_events)
        await ops.store.mark_thread_delivered(outcome.thread.id, channel="cli")

    run(body)


@app.command()
def approve(
    request_id: Annotated[
        str, typer.Argument(metavar="REQUEST_ID", help="The request's id (hr_...).")
    ],
    user: AsUser = None,
    comment: Annotated[str | None, typer.Option(help="A note kept with the approval.")] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Approve with a change to one argument (repeatable), e.g. --set version=1.4.3.",
        ),
    ] = None,
) -> None:
    """Approve a pending request: its exact recorded action (or your edit of it) runs.

    With --set, the edited call is checked like the original and is what runs.
    """
    _decide(request_id, user, HumanDecision.APPROVE, comment, sets)


@app.command()
def reject(
    request_id: Annotated[
        str, typer.Argument(metavar="REQUEST_ID", help="The request's id (hr_...).")
    ],
    reason: Annotated[str, typer.Option(help="Why; the agent reports it.")],
    user: AsUser = None,
) -> None:
    """Reject a pending request; the agent is told the reason."""
    _decide(request_id, user, HumanDecision.REJECT, reason)


@app.command()
def answer(
    request_id: Annotated[
        str, typer.Argument(metavar="REQUEST_ID", help="The question's id (hr_...).")
    ],
    text: Annotated[str, typer.Argument(metavar="TEXT", help="Your answer.")],
    user: AsUser = None,
) -> None:
    """Answer a question the agent asked; the thread resumes with your answer."""
    _decide(request_id, user, HumanDecision.ANSWER, text)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (run once before starting a new version)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(str(exc), 2)

    async def body() -> str | None:
        database = Database(settings.database)
        try:
            await database.migrate()
            return await database.current_revision()
        finally:
            await database.dispose()

    revision = guarded(body())
    console.print(f"database schema at revision {revision}")


def _add_plugin_commands() -> None:
    try:
        plugins = load_plugins()
    except ConfigError as exc:
        errors.print(f"warning: {exc}")
        return
    for plugin in plugins:
        if plugin.cli is not None:
            plugin.cli(app)


_add_plugin_commands()


def main() -> None:
    """Entry point of the ``opsloop`` console script."""
    app()
