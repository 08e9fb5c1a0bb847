"""The Bolt app both of Slack's modes share: HTTP requests and Socket Mode envelopes."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient

from bot.plugins import ChannelContext
from bot.store import Database
from channels.slack._blocks import (
    ANSWER,
    ANSWER_VIEW,
    APPROVE,
    EDIT,
    EDIT_VIEW,
    OPTION,
    REJECT,
    REJECT_VIEW,
)
from channels.slack._directory import Directory
from channels.slack._listeners import Listeners
from channels.slack._settings import SlackSettings
from channels.slack._workspaces import InstallationStore

__all__ = ["build_app"]

log = logging.getLogger(__name__)


async def _uninstalled(event: dict[str, Any]) -> None:
    log.error("Slack says %s: SLACK_BOT_TOKEN no longer works", event.get("type"))


def build_app(
    settings: SlackSettings,
    channel: Callable[[], ChannelContext],
    database: Database,
    *,
    socket_mode: bool,
    oauth: AsyncOAuthSettings | None = None,
    directory: Directory | None = None,
) -> AsyncApp:
    """A Bolt app whose listeners hand Slack's requests to ``channel()``.

    Args:
        settings: the Slack settings.
        channel: the fast path (looked up per request: the HTTP app has it only once started).
        database: where OAuth installations live, when there are any.
        socket_mode: for the Socket Mode gateway (no request signatures to check).
        oauth: the OAuth flow (install and redirect routes), in HTTP mode with OAuth.
        directory: the cache of people's names and groups.
    """
    token = None if settings.oauth or settings.bot_token is None else settings.bot_token
    installations = None
    if settings.oauth and oauth is None:
        assert settings.client_id is not None
        installations = InstallationStore(settings.client_id, database)
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
    app = AsyncApp(
        name="opsloop",
        logger=logging.getLogger("channels.slack.bolt"),
        client=AsyncWebClient(
            token=token.get_secret_value() if token else None, base_url=settings.api_url
        ),
        signing_secret=secret,
        request_verification_enabled=not socket_mode,
        process_before_response=True,
        oauth_settings=oauth,
        installation_store=installations,
        installation_store_bot_only=True if settings.oauth else None,
    )
    if settings.oauth:
        app.enable_token_revocation_listeners()  # forget a workspace's tokens on uninstall
    else:
        app.event("app_uninstalled")(_uninstalled)
        app.event("tokens_revoked")(_uninstalled)
    listeners = Listeners(settings, channel, directory or Directory(settings.directory_ttl))
    app.event("app_mention")(listeners.mention)
    app.event("message")(listeners.message)
    app.command(settings.command)(listeners.command)
    app.action(APPROVE)(listeners.approve)
    app.action(REJECT)(listeners.reject)
    app.action(EDIT)(listeners.edit)
    app.action(ANSWER)(listeners.answer)
    app.action(re.compile(rf"^{OPTION}_\d+$"))(listeners.option)
    app.view(REJECT_VIEW)(listeners.rejected)
    app.view(ANSWER_VIEW)(listeners.answered)
    app.view(EDIT_VIEW)(listeners.edited)
    return app
