"""The plugin's wiring: settings, the gateway factory, and what loading it costs."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import Opsloop
from bot.errors import ConfigError
from bot.plugins import ChannelContext, Gateway, load_plugins
from channels.discord import DiscordSender, DiscordSettings, gateway, load_discord_settings, plugin
from tests.channels.discord.fake_discord import FakeDiscord
from tests.channels.discord.payloads import GUILD_ID, guild_create
from tests.channels.discord.support import SignallingDispatcher, discord, settled, slash

ROOT = Path(__file__).resolve().parents[3]

SetEnv = Callable[..., None]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SetEnv:
    """No DISCORD_* variables and no .env file; call it to set some (``DISCORD_X="..."``)."""
    for name in ("BOT_TOKEN", "GUILD_IDS", "API_URL", "MESSAGE_CONTENT"):
        monkeypatch.delenv(f"DISCORD_{name}", raising=False)
    monkeypatch.chdir(tmp_path)

    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_env


def configured_gateway() -> Gateway:
    """The gateway the environment configures: there is one."""
    run = gateway()
    assert run is not None
    return run


def test_the_plugin_is_installed_with_its_sender_gateway_and_settings() -> None:
    [found] = [p for p in load_plugins() if p.name == "discord"]
    assert found is plugin
    assert isinstance(plugin.senders["discord"], DiscordSender)
    assert plugin.settings is DiscordSettings


def test_defaults_are_discords_own_api_and_no_privileged_intent(clean_env: object) -> None:
    settings = load_discord_settings()
    assert settings.bot_token is None and settings.guilds == ()
    assert settings.api_url == "https://discord.com/api/v10"
    assert settings.message_content is False
    assert gateway() is None  # the channel is off without a token


def test_settings_come_from_the_environment(clean_env: SetEnv) -> None:
    clean_env(
        DISCORD_BOT_TOKEN="secret-token",
        DISCORD_GUILD_IDS=" 111, 222 ",
        DISCORD_API_URL="http://127.0.0.1:9/api/v10/",
        DISCORD_MESSAGE_CONTENT="true",
    )

    settings = load_discord_settings()
    assert settings.token == "secret-token" and "secret-token" not in repr(settings)
    assert settings.guilds == (111, 222)
    assert settings.api_url == "http://127.0.0.1:9/api/v10"
    assert settings.message_content is True
    assert callable(gateway())


def test_bad_settings_stop_start_up_naming_each_variable(clean_env: SetEnv) -> None:
    clean_env(
        DISCORD_BOT_TOKEN="secret-token",
        DISCORD_GUILD_IDS="ops-guild",
        DISCORD_API_URL="discord.com",
    )

    with pytest.raises(ConfigError) as raised:
        gateway()
    assert "DISCORD_GUILD_IDS: must be comma-separated numeric guild ids" in str(raised.value)
    assert "DISCORD_API_URL: must be an http(s) URL" in str(raised.value)
    assert "secret-token" not in str(raised.value)


def test_loading_the_plugin_does_not_import_discord_py() -> None:
    check = "import sys, channels.discord; assert 'discord' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True)


async def test_a_refused_token_stops_the_gateway_with_a_config_error(
    fake: FakeDiscord, ops: object, clean_env: SetEnv
) -> None:
    clean_env(DISCORD_BOT_TOKEN="refused", DISCORD_API_URL=fake.url)
    run = configured_gateway()

    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN: Discord refused the token"):
        await run(ChannelContext(ops=ops, dispatcher=SignallingDispatcher()))  # type: ignore[arg-type]
    assert [c.path for c in fake.calls] == ["/users/@me"]


async def test_the_gateway_connects_where_the_api_says_and_feeds_ingest(
    fake: FakeDiscord, ops: Opsloop, clean_env: SetEnv
) -> None:
    clean_env(DISCORD_BOT_TOKEN="test-token", DISCORD_API_URL=fake.url, DISCORD_GUILD_IDS=GUILD_ID)
    run = configured_gateway()
    dispatcher = SignallingDispatcher()
    running = asyncio.create_task(run(ChannelContext(ops=ops, dispatcher=dispatcher)))
    try:
        async with asyncio.timeout(5):
            await fake.gateway.identified.wait()
        identify = fake.gateway.identify()
        assert identify["token"] == "test-token"
        wanted = discord.Intents(guilds=True, guild_messages=True, dm_messages=True)
        assert identify["intents"] == wanted.value  # what opsloop reads; nothing privileged

        await fake.gateway.dispatch("GUILD_CREATE", guild_create(list(fake.channels.values())))
        command = slash(fake, "status of checkout in production")
        await fake.gateway.dispatch("INTERACTION_CREATE", command)
        [item_id] = await dispatcher.processed(1)
        await settled()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    event = (await ops.store.inbox_item(item_id)).event
    assert event.idempotency_key == f"discord:interaction:{command['id']}"
    assert fake.callbacks(command) == [{"type": 5}]


async def test_asking_for_message_content_the_portal_refuses_stops_the_gateway(
    fake: FakeDiscord, ops: Opsloop, clean_env: SetEnv
) -> None:
    clean_env(
        DISCORD_BOT_TOKEN="test-token", DISCORD_API_URL=fake.url, DISCORD_MESSAGE_CONTENT="true"
    )
    fake.gateway.privileged = False
    run = configured_gateway()

    with pytest.raises(ConfigError, match="Message Content intent is off"):
        async with asyncio.timeout(10):
            await run(ChannelContext(ops=ops, dispatcher=SignallingDispatcher()))
    assert discord.Intents._from_value(fake.gateway.identify()["intents"]).message_content
