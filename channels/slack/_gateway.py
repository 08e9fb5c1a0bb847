"""Slack's Socket Mode: a websocket opsloop opens to Slack, for teams without a public URL."""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ConfigError
from bot.plugins import ChannelContext
from channels.slack._app import build_app
from channels.slack._directory import Directory
from channels.slack._settings import SlackSettings
from channels.slack._workspaces import InstallationStore

__all__ = ["SocketModeGateway"]

log = logging.getLogger(__name__)


class SocketModeGateway:
    """A :data:`bot.plugins.Gateway`: Slack's envelopes in, acknowledged once stored."""

    def __init__(self, settings: SlackSettings, *, ping_interval: float = 10) -> None:
        """Connect with ``settings.app_token``; check the connection every ``ping_interval`` s."""
        if settings.app_token is None:
            raise ConfigError("Socket Mode needs SLACK_APP_TOKEN")
        self.settings = settings
        self.ping_interval = ping_interval
        self.directory = Directory(settings.directory_ttl)

    async def __call__(self, context: ChannelContext) -> None:
        """Serve until cancelled.

        Raises:
            ConfigError: Slack refused the app token, or installations have no tables.
        """
        settings = self.settings
        assert settings.app_token is not None
        database = context.ops.store.db
        if settings.oauth:
            assert settings.client_id is not None
            await InstallationStore(settings.client_id, database).check()
        app = build_app(
            settings, lambda: context, database, socket_mode=True, directory=self.directory
        )
        app_token = settings.app_token.get_secret_value()
        web = AsyncWebClient(base_url=settings.api_url)
        try:
            # Opened here rather than inside the handler, whose connect() retries forever:
            # a wrong token must stop start-up with a clear message.
            opened = await web.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            error = exc.response.get("error")
            raise ConfigError(f"Slack refused SLACK_APP_TOKEN: {error}") from None
        handler = AsyncSocketModeHandler(
            app, app_token, web_client=web, ping_interval=self.ping_interval
        )
        handler.client.wss_uri = opened["url"]
        await handler.connect_async()  # type: ignore[no-untyped-call]  # bolt leaves it bare
        log.info("Slack Socket Mode connected")
        try:
            await asyncio.Event().wait()
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
