"""The plugin as installed: settings from the environment, routes, gateway, manifests."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
import yaml

from bot.api import create_app
from bot.config import Settings
from bot.errors import ConfigError
from bot.plugins import load_plugins
from channels.slack import SocketModeGateway, load_slack_settings, plugin
from channels.slack._workspaces import BOT_SCOPES
from tests.fakes import RecordingDispatcher

SLACK = Path(__file__).resolve().parents[3] / "channels" / "slack"
ENV = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "SLACK_CLIENT_ID",
    "SLACK_CLIENT_SECRET",
    "SLACK_ALLOW_BOTS",
    "SLACK_COMMAND",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_installed_plugin_is_this_one() -> None:
    assert plugin in load_plugins()
    assert set(plugin.senders) == {"slack"}
    assert plugin.settings is not None and plugin.settings.__name__ == "SlackSettings"


def test_no_slack_settings_means_no_gateway() -> None:
    assert plugin.gateway is not None and plugin.gateway() is None


def test_an_app_token_and_a_bot_token_start_socket_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A1-1")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    assert plugin.gateway is not None
    assert isinstance(plugin.gateway(), SocketModeGateway)


def test_an_app_token_alone_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A1-1")
    assert plugin.gateway is not None
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN: set it"):
        plugin.gateway()


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-user-token", "SLACK_BOT_TOKEN: must be a bot token"),
        ("SLACK_APP_TOKEN", "xoxb-1", "SLACK_APP_TOKEN: must be an app-level token"),
        ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL: must be an http"),
        ("SLACK_CLIENT_ID", "1.2", "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"),
        ("SLACK_COMMAND", "ops", "SLACK_COMMAND: String should match pattern"),
    ],
)
def test_bad_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=problem):
        load_slack_settings()


def test_secrets_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-very-secret")
    shown = repr(load_slack_settings())
    assert "very-secret" not in shown
    assert load_slack_settings(SLACK_API_URL="http://127.0.0.1:9/api").api_url.endswith("/api/")


async def paths_with(settings: Settings, monkeypatch: pytest.MonkeyPatch, **env: str) -> set[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = create_app(settings, dispatcher=RecordingDispatcher(), plugins=(plugin,))
    return set(app.openapi()["paths"])


async def test_the_request_url_exists_only_with_a_signing_secret(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "/slack/events" not in await paths_with(settings, monkeypatch)
    single = await paths_with(
        settings, monkeypatch, SLACK_SIGNING_SECRET="s", SLACK_BOT_TOKEN="xoxb-1"
    )
    assert "/slack/events" in single and "/slack/install" not in single
    several = await paths_with(
        settings, monkeypatch, SLACK_CLIENT_ID="1.2", SLACK_CLIENT_SECRET="c"
    )
    assert {"/slack/events", "/slack/install", "/slack/oauth_redirect"} <= several


async def test_the_request_url_answers_401_to_unsigned_requests(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, sqlite_database, make_ops
) -> None:
    from bot.model.offline import OfflineModel

    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    ops = await make_ops(sqlite_database, OfflineModel())
    app = create_app(settings, ops=ops, dispatcher=RecordingDispatcher(), plugins=(plugin,))
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post("/slack/events", json={"type": "event_callback"})
    assert response.status_code == 401


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.http.yml"])
def test_the_manifests_ask_for_what_opsloop_uses(name: str) -> None:
    manifest = yaml.safe_load((SLACK / name).read_text(encoding="utf-8"))
    assert tuple(sorted(manifest["oauth_config"]["scopes"]["bot"])) == BOT_SCOPES
    settings = manifest["settings"]
    assert {"app_mention", "message.im", "message.channels", "message.groups"} <= set(
        settings["event_subscriptions"]["bot_events"]
    )
    assert settings["interactivity"]["is_enabled"] is True
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/ops"
    http = name == "manifest.http.yml"
    assert settings["socket_mode_enabled"] is not http
    if http:
        urls = {
            command["url"],
            settings["event_subscriptions"]["request_url"],
            settings["interactivity"]["request_url"],
        }
        assert urls == {"https://opsloop.example.com/slack/events"}
        assert manifest["oauth_config"]["redirect_urls"] == [
            "https://opsloop.example.com/slack/oauth_redirect"
        ]
