"""Fixtures for the Discord channel: the fake Discord, a real opsloop, real discord.py clients."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.app import Opsloop
from bot.model import Model
from bot.model.offline import OfflineModel
from bot.plugins import ChannelContext
from bot.policy import Policy
from bot.store import Database
from channels.discord import DiscordSender, DiscordSettings
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import GUILD_ID, ONCALL_ROLE, guild_create
from tests.channels.discord.support import (
    BOB,
    ClientFactory,
    Harness,
    OpsloopClient,
    SignallingDispatcher,
    discord,
    feed,
)


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """The fake Discord; what discord.py is pointed at is restored afterwards."""
    server = FakeDiscord()
    url = await server.start()
    monkeypatch.setattr(discord.http.Route, "BASE", url)
    websocket = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(websocket, "DEFAULT_GATEWAY", websocket.DEFAULT_GATEWAY)
    yield server
    await server.stop()


@pytest.fixture
def discord_settings(fake: FakeDiscord) -> DiscordSettings:
    return DiscordSettings(
        DISCORD_BOT_TOKEN="test-token", DISCORD_API_URL=fake.url, DISCORD_GUILD_IDS=GUILD_ID
    )


@pytest.fixture
def oncall_policy(policy: Policy) -> Policy:
    """The default policy, with on-call granted to a Discord role and to BOB by name."""
    roles = {**policy.roles, "oncall": (f"discord-group:{ONCALL_ROLE}", f"discord:{BOB}")}
    return policy.model_copy(update={"roles": roles})


@pytest.fixture
def model() -> Model:
    """The model opsloop runs: the offline one, unless a test module overrides this."""
    return OfflineModel()


@pytest.fixture
async def ops(
    sqlite_database: Database, make_ops: Any, oncall_policy: Policy, model: Model
) -> Opsloop:
    ops: Opsloop = await make_ops(sqlite_database, model, policy_=oncall_policy)
    return ops


@pytest.fixture
def dispatcher() -> SignallingDispatcher:
    return SignallingDispatcher()


@pytest.fixture
def sender(discord_settings: DiscordSettings) -> DiscordSender:
    return DiscordSender(discord_settings)


@pytest.fixture
async def make_client(
    fake: FakeDiscord,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    discord_settings: DiscordSettings,
) -> AsyncIterator[ClientFactory]:
    """A logged-in client (a fresh instance each call: a restart), its guild received unless
    ``guild=False`` (just connected: Discord has not sent the guild's data yet)."""
    clients: list[OpsloopClient] = []

    async def make(
        app: Opsloop | None = None, *, guild: bool = True, **overrides: Any
    ) -> OpsloopClient:
        settings = discord_settings.model_copy(update=overrides)
        context = ChannelContext(ops=app or ops, dispatcher=dispatcher)
        client = OpsloopClient(context, settings)
        clients.append(client)
        await client.login(settings.token)
        if guild:
            feed(client, "GUILD_CREATE", guild_create(list(fake.channels.values())))
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def harness(
    fake: FakeDiscord,
    ops: Opsloop,
    dispatcher: SignallingDispatcher,
    sender: DiscordSender,
    make_client: ClientFactory,
) -> Harness:
    """Act out a scenario: clients of ``ops`` asking and clicking, the workers' jobs run."""
    return Harness(fake, ops, dispatcher, sender, make_client)


@pytest.fixture(autouse=True)
def _no_swallowed_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """discord.py logs (and swallows) exceptions raised in handlers: fail the test on them."""
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [f"{r.name}: {r.getMessage()}\n{r.exc_text or ''}" for r in errors]
