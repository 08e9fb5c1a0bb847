"""The Slack channel, on slack-bolt, in both of Slack's modes.

- HTTP: ``POST /slack/events`` on the API app (events, clicks, modals and the slash
  command), when ``SLACK_SIGNING_SECRET`` is set; with ``SLACK_CLIENT_ID`` and
  ``SLACK_CLIENT_SECRET`` also ``GET /slack/install`` and ``GET /slack/oauth_redirect``.
- Socket Mode: the gateway (``opsloop gateway``) when ``SLACK_APP_TOKEN`` is set.

Inbound, the listeners translate (``_inbound``) and hand events to the fast path; outbound,
:class:`SlackSender` turns bot outbound messages into Web API calls. See ``docs/slack.md``.
"""

from __future__ import annotations

from fastapi import FastAPI

from bot.plugins import Gateway, Plugin
from channels.slack._gateway import SocketModeGateway
from channels.slack._outbound import SlackSender
from channels.slack._routes import add_routes
from channels.slack._settings import SlackSettings, load_slack_settings
from channels.slack._workspaces import TABLES

__all__ = [
    "TABLES",
    "SlackSender",
    "SlackSettings",
    "SocketModeGateway",
    "load_slack_settings",
    "plugin",
    "slack_plugin",
]


def slack_plugin(settings: SlackSettings | None = None) -> Plugin:
    """The Slack plugin on ``settings``, or on the environment's, read when first needed."""

    def current() -> SlackSettings:
        return settings if settings is not None else load_slack_settings()

    def routes(app: FastAPI) -> None:
        found = current()
        if found.http_mode:
            add_routes(app, found)

    def gateway() -> Gateway | None:
        found = current()
        return SocketModeGateway(found) if found.socket_mode else None

    return Plugin(
        name="slack",
        routes=routes,
        senders={"slack": SlackSender(settings)},
        gateway=gateway,
        settings=SlackSettings,
        tables=TABLES,
    )


plugin = slack_plugin()
"""The installed plugin: Slack settings come from the environment."""
