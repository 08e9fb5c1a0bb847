"""``opsloop chat``: the terminal channel, one-shot or interactive."""

from __future__ import annotations

import asyncio
import shlex
import uuid
from typing import Annotated

import typer
from rich.markup import escape

from bot.app import Opsloop, Outcome
from bot.cli._common import console, default_user, identity, run
from bot.cli._render import event_json_lines, pending_requests, print_events
from bot.errors import UserFacingError
from bot.events import (
    ActionReceived,
    ConversationRef,
    HumanDecision,
    Identity,
    MessageReceived,
    new_id,
)

__all__ = ["chat"]

HELP = (
    "Type a request, e.g. 'what is running in staging?'.\n"
    "Commands: /approve [ID] [--as USER] [NOTE] · /reject [ID] [--as USER] REASON · "
    "/answer [ID] TEXT · /as USER · /new · /quit"
)


def _message(
    conversation: ConversationRef, sender: Identity, text: str, agent: str | None
) -> MessageReceived:
    return MessageReceived(
        idempotency_key=f"cli:{new_id('msg')}",
        conversation=conversation,
        sender=sender,
        text=text,
        agent=agent,
    )


def _conversation(thread: str | None) -> ConversationRef:
    return ConversationRef(channel="cli", room="terminal", thread_key=thread or uuid.uuid4().hex)


def chat(
    message: Annotated[
        list[str] | None,
        typer.Option(
            "-m",
            "--message",
            metavar="TEXT",
            help="Send this message and exit (repeat for several).",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="USER",
            help="Your user id (default: $OPSLOOP_USER, then $USER).",
            show_default=False,
        ),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Talk to this agent instead of letting the router pick."),
    ] = None,
    thread: Annotated[
        str | None,
        typer.Option(
            metavar="KEY", help="Continue the terminal conversation with this key (any word)."
        ),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print the thread's events as JSON lines.")
    ] = False,
) -> None:
    """Chat with opsloop in the terminal (interactive without -m)."""
    sender = identity(user or default_user())
    conversation = _conversation(thread)

    async def one_shot(ops: Opsloop) -> None:
        outcome: Outcome | None = None
        first = None
        for text in message or []:
            outcome = await ops.submit(_message(conversation, sender, text, agent))
            first = first or outcome.first_new_seq
            if not json_lines:
                print_events(console, outcome.new_events)
        assert outcome is not None and first is not None
        await ops.store.mark_thread_delivered(outcome.thread.id, channel="cli")
        if json_lines:
            for line in event_json_lines(outcome.thread, first):
                typer.echo(line)
            return
        console.print(f"[dim]thread {outcome.thread.id} · {outcome.thread.status.value}[/]")
        for request in pending_requests(outcome.thread.events):
            console.print(f"pending request: {request.request_id}")

    if message:
        run(one_shot)
        return
    console.print(f"opsloop chat as [bold]{sender.user_id}[/]. {HELP}")
    run(lambda ops: _interactive(ops, conversation, sender, agent))


async def _interactive(
    ops: Opsloop, conversation: ConversationRef, sender: Identity, agent: str | None
) -> None:
    pending: list[str] = []
    while True:
        try:
            line = (await asyncio.to_thread(input, f"{sender.user_id}> ")).strip()
        except EOFError:
            return
        if not line:
            continue
        if line in {"/quit", "/exit"}:
            return
        if line == "/help":
            console.print(HELP)
            continue
        if line == "/new":
            conversation = _conversation(None)
            console.print("[dim]new thread[/]")
            continue
        try:
            if line.startswith("/as "):
                sender = identity(line.removeprefix("/as "))
                continue
            event: ActionReceived | MessageReceived
            if line.startswith("/"):
                event = _command(conversation, sender, line, pending)
            else:
                event = _message(conversation, sender, line, agent)
            outcome = await ops.submit(event)
        except UserFacingError as exc:
            console.print(f"[red]{escape(str(exc))}[/]")
            continue
        print_events(console, outcome.new_events)
        await ops.store.mark_thread_delivered(outcome.thread.id, channel="cli")
        pending = [r.request_id for r in pending_requests(outcome.thread.events)]


def _command(
    conversation: ConversationRef, sender: Identity, line: str, pending: list[str]
) -> ActionReceived:
    words = shlex.split(line)
    name, rest = words[0], words[1:]
    decisions = {
        "/approve": HumanDecision.APPROVE,
        "/reject": HumanDecision.REJECT,
        "/answer": HumanDecision.ANSWER,
    }
    if name not in decisions:
        raise UserFacingError(f"unknown command {name}; {HELP}")
    actor = sender
    if "--as" in rest:
        at = rest.index("--as")
        if at + 1 >= len(rest):
            raise UserFacingError("--as needs a user id")
        actor = identity(rest[at + 1])
        del rest[at : at + 2]
    if rest and rest[0].startswith("hr_"):
        request_id = rest.pop(0)
    elif pending:
        request_id = pending[-1]
    else:
        raise UserFacingError("no pending request in this thread; give its id")
    return ActionReceived(
        idempotency_key=f"cli:{new_id('act')}",
        conversation=conversation,
        actor=actor,
        request_id=request_id,
        decision=decisions[name],
        comment=" ".join(rest) or None,
    )
