"""What the Discord tests share besides fixtures: people, a waiting dispatcher, feeding, and
the harness that acts out a scenario (ask, click, work through) against the fake Discord.

discord.py imports ``audioop`` (for voice, which opsloop never uses), and on Python 3.11 and 3.12
that import raises a DeprecationWarning; the suite turns warnings into errors, so exactly
that warning is ignored while discord.py is first imported, here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import copy
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.app import Opsloop
from bot.store import HumanRequest
from channels.discord import DiscordSender
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import (
    CHANNEL_ID,
    COMMAND_ID,
    GUILD_ID,
    ONCALL_ROLE,
    member,
    message_payload,
    user,
)
from tests.fakes import RecordingDispatcher
from workers.jobs import deliver_thread, process_item

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

    from channels.discord._gateway import OpsloopClient

__all__ = [
    "ALICE",
    "BOB",
    "DEV",
    "EVE",
    "ClientFactory",
    "Harness",
    "OpsloopClient",
    "Prompt",
    "SignallingDispatcher",
    "buttons",
    "chat",
    "click",
    "discord",
    "drain",
    "feed",
    "member",
    "settled",
    "slash",
    "submit",
]

DEV = "1100000000000000010"
"""Asks for things; holds no role."""
ALICE = "1100000000000000011"
"""On call through a guild role (``discord-group:ONCALL_ROLE``)."""
BOB = "1100000000000000012"
"""On call by name in the policy (``discord:BOB``)."""
EVE = "1100000000000000013"
"""Not allowed to decide anything."""


class SignallingDispatcher(RecordingDispatcher):
    """Records what was enqueued, and lets a test wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()
        self.handled: set[int] = set()

    def process(self, item_id: int) -> None:
        super().process(item_id)
        self.changed.set()

    async def processed(self, count: int) -> list[int]:
        """The ids of the first ``count`` items enqueued for processing (5 s at most)."""
        async with asyncio.timeout(5):
            while len(self.of("process")) < count:
                self.changed.clear()
                await self.changed.wait()
        return list(self.of("process"))[:count]


def feed(client: OpsloopClient, event: str, payload: dict[str, Any]) -> None:
    """Hand a gateway dispatch to the client, exactly as its websocket reader does."""
    client._connection.parsers[event](payload)


async def settled() -> None:
    """Wait until every handler discord.py started (events, commands, buttons) has finished."""
    prefixes = ("discord.py:", "CommandTree-invoker", "discord-ui-")
    current = asyncio.current_task()
    async with asyncio.timeout(10):
        while pending := [
            t
            for t in asyncio.all_tasks()
            if t is not current and not t.done() and t.get_name().startswith(prefixes)
        ]:
            await asyncio.wait(pending)


PEOPLE = {
    DEV: member(DEV, "dev"),
    ALICE: member(ALICE, "alice", (ONCALL_ROLE,)),
    BOB: member(BOB, "bob"),
    EVE: member(EVE, "eve"),
}


def slash(fake: FakeDiscord, text: str, *, by: str = DEV, **where: Any) -> dict[str, Any]:
    """``/ops text`` as INTERACTION_CREATE."""
    data = {
        "id": COMMAND_ID,
        "name": "ops",
        "type": 1,
        "guild_id": GUILD_ID,
        "options": [{"name": "request", "type": 3, "value": text}],
    }
    return fake.interaction(2, data, by=PEOPLE[by], **where)


def click(fake: FakeDiscord, message_id: str, custom: str, *, by: str) -> dict[str, Any]:
    """A click on the button ``custom`` of a message the fake holds, as INTERACTION_CREATE."""
    message = copy.deepcopy(fake.messages[message_id])
    data = {"custom_id": custom, "component_type": 2}
    return fake.interaction(
        3, data, by=PEOPLE[by], channel_id=message["channel_id"], message=message
    )


def submit(
    fake: FakeDiscord,
    modal: dict[str, Any],
    message_id: str,
    value: str,
    *,
    by: str,
    values: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Submitting the modal an interaction response opened, with ``value`` typed in (or, by
    custom id, ``values``; a field not named keeps what it was prefilled with)."""
    # Discord sends back each text input's custom id and value, in the modal's rows.
    components = [
        {
            "type": 1,
            "components": [
                {
                    "type": 4,
                    "custom_id": field["custom_id"],
                    "value": value
                    if values is None
                    else values.get(field["custom_id"], field.get("value") or ""),
                }
                for field in row["components"]
            ],
        }
        for row in modal["components"]
    ]
    data = {"custom_id": modal["custom_id"], "components": components}
    message = copy.deepcopy(fake.messages[message_id])
    return fake.interaction(
        5, data, by=PEOPLE[by], channel_id=message["channel_id"], message=message
    )


def chat(
    fake: FakeDiscord,
    content: str,
    *,
    by: str | dict[str, Any] = DEV,
    channel_id: str = CHANNEL_ID,
    mentions: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A message written in a channel, as MESSAGE_CREATE; ``mentions`` are bot user ids."""
    author = PEOPLE[by] if isinstance(by, str) else by
    payload = message_payload(
        fake.next_id(),
        channel_id,
        author["user"],
        content,
        mentions=[user(m, "opsloop", bot=True) for m in mentions],
        mention_roles=list(roles),
    )
    payload["member"] = {k: v for k, v in author.items() if k != "user"}
    return payload


async def drain(ops: Opsloop, dispatcher: SignallingDispatcher, sender: Any) -> None:
    """Do the workers' job: process what was enqueued, then deliver every thread touched."""
    for item_id in dispatcher.of("process"):
        if item_id not in dispatcher.handled:
            dispatcher.handled.add(item_id)
            await process_item(ops, dispatcher, item_id)
    for thread_id in dict.fromkeys(dispatcher.of("deliver")):
        await deliver_thread(ops, {"discord": sender}, thread_id)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's buttons, row after row."""
    return [b for row in message["components"] for b in row["components"]]


ClientFactory = Callable[..., Awaitable[OpsloopClient]]


@dataclass
class Prompt:
    """A message with buttons opsloop posted in a thread, and the pending request behind it."""

    client: OpsloopClient
    """The client that was asked: the one that clicks, unless the test restarts."""
    thread: str
    message: dict[str, Any]
    request: HumanRequest

    def custom_id(self, action: str, *option: int) -> str:
        """The custom id of this prompt's button for ``action`` (and ``option``)."""
        return ":".join(["opsloop", action, self.request.id, *map(str, option)])


@dataclass
class Harness:
    """A real opsloop behind real discord.py clients, the fake Discord, and the workers' jobs."""

    fake: FakeDiscord
    ops: Opsloop
    dispatcher: SignallingDispatcher
    sender: DiscordSender
    make_client: ClientFactory

    async def client(self, **overrides: Any) -> OpsloopClient:
        """A new logged-in client of this opsloop (a second one plays a restart)."""
        return await self.make_client(self.ops, **overrides)

    async def ingest(self, client: OpsloopClient, event: str, payload: dict[str, Any]) -> int:
        """Feed a dispatch; the id of the one more inbox item it is enqueued as (5 s at most)."""
        count = len(self.dispatcher.of("process"))
        feed(client, event, payload)
        return (await self.dispatcher.processed(count + 1))[-1]

    async def receive(
        self, client: OpsloopClient, *messages: dict[str, Any], enqueued: int = 0
    ) -> None:
        """Feed each message as MESSAGE_CREATE; wait until ``enqueued`` inbox items are enqueued
        in all, then until every handler has finished."""
        for message in messages:
            feed(client, "MESSAGE_CREATE", message)
        await self.dispatcher.processed(enqueued)
        await settled()

    async def work(self) -> None:
        """Do the workers' job (see :func:`drain`)."""
        await drain(self.ops, self.dispatcher, self.sender)

    async def settle(self) -> None:
        """Do the workers' job, then wait for discord.py's handlers to finish."""
        await self.work()
        await settled()

    async def ask(self, client: OpsloopClient, text: str) -> tuple[dict[str, Any], str]:
        """``/ops text`` by DEV, worked through; the interaction and its Discord thread's id."""
        command = slash(self.fake, text)
        await self.ingest(client, "INTERACTION_CREATE", command)
        await self.work()
        return command, self.fake.original(command)["id"]

    async def prompt(
        self, client: OpsloopClient, thread: str, *, besides: Prompt | None = None
    ) -> Prompt:
        """The one message with buttons in ``thread`` (besides an earlier prompt), and the one
        pending request."""
        [message] = [
            m
            for m in self.fake.posted_in(thread)
            if m["components"] and (besides is None or m is not besides.message)
        ]
        [request] = await self.ops.store.human_requests()
        return Prompt(client, thread, message, request)

    async def prompted(self, text: str) -> Prompt:
        """A new client asks for ``text``; the prompt opsloop answers with."""
        client = await self.client()
        _, thread = await self.ask(client, text)
        return await self.prompt(client, thread)

    def click(self, prompt: Prompt, action: str, *option: int, by: str) -> dict[str, Any]:
        """A click by ``by`` on the prompt's button for ``action`` (see :func:`click`)."""
        return click(self.fake, prompt.message["id"], prompt.custom_id(action, *option), by=by)

    async def press(
        self,
        prompt: Prompt,
        action: str,
        *option: int,
        by: str,
        client: OpsloopClient | None = None,
    ) -> dict[str, Any]:
        """Click a button, wait for the decision to be ingested, and work it through; the click."""
        pressed = self.click(prompt, action, *option, by=by)
        await self.ingest(client or prompt.client, "INTERACTION_CREATE", pressed)
        await self.work()
        return pressed

    async def open_modal(self, prompt: Prompt, action: str, *, by: str) -> dict[str, Any]:
        """Click a button that asks for text; the one response: the modal to open."""
        opened = self.click(prompt, action, by=by)
        feed(prompt.client, "INTERACTION_CREATE", opened)
        await settled()
        [modal] = self.fake.callbacks(opened)
        return modal

    async def inbox(self, item_id: int) -> Any:
        """The event an inbox item holds."""
        return (await self.ops.store.inbox_item(item_id)).event

    async def events(self) -> list[Any]:
        """The events of every inbox item enqueued for processing, in order."""
        return [await self.inbox(i) for i in self.dispatcher.of("process")]

    async def log(self, request: HumanRequest) -> tuple[Any, ...]:
        """The event log of the thread a request was made in."""
        return (await self.ops.store.load_thread(request.thread_id)).events
