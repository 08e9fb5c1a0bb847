"""Workspaces: a tenant is a Slack team; its bot token is the one token, or its installation.

With ``SLACK_BOT_TOKEN`` opsloop serves the one workspace that token belongs to. With
``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` it is installed per workspace through
Slack's OAuth flow (``GET /slack/install``), and each team's bot token is kept in opsloop's
database by slack_sdk's async SQLAlchemy installation store, in the tables of
:data:`TABLES` (created by a migration; see ``docs/slack.md``).
"""

from __future__ import annotations

from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, desc, select
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import ConfigError
from bot.store import Database
from channels.slack._settings import SlackSettings

__all__ = [
    "BOT_SCOPES",
    "INSTALL_PATH",
    "REDIRECT_PATH",
    "TABLES",
    "InstallationStore",
    "StateStore",
    "Workspaces",
    "oauth_settings",
]

BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "chat:write",
    "commands",
    "files:write",
    "groups:history",
    "im:history",
    "im:read",
    "im:write",
    "usergroups:read",
    "users:read",
)
"""The bot scopes opsloop asks for (the same as ``manifest.yml``)."""

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

TABLES = MetaData(naming_convention={"pk": "pk_%(table_name)s"})  # as bot/store/_tables.py
"""The tables of installations, their bots and pending OAuth states."""
_INSTALLATIONS = AsyncSQLAlchemyInstallationStore.build_installations_table(
    TABLES, "slack_installations"
)
_BOTS = AsyncSQLAlchemyInstallationStore.build_bots_table(TABLES, "slack_bots")
_STATES = AsyncSQLAlchemyOAuthStateStore.build_oauth_states_table(TABLES, "slack_oauth_states")


class InstallationStore(AsyncSQLAlchemyInstallationStore):
    """slack_sdk's async installation store, on opsloop's database and tables."""

    def __init__(self, client_id: str, database: Database) -> None:
        """Keep installations of the app ``client_id`` in ``database``."""
        super().__init__(client_id=client_id, engine=database.engine)
        self.metadata, self.installations, self.bots = TABLES, _INSTALLATIONS, _BOTS

    async def bot_token(self, team_id: str) -> str | None:
        """The newest bot token of a workspace (a Grid org's workspaces included)."""
        c = self.bots.c
        query = (
            select(c.bot_token)
            .where(c.client_id == self.client_id, c.team_id == team_id, c.bot_token.is_not(None))
            .order_by(desc(c.installed_at))
            .limit(1)
        )
        async with self.engine.connect() as connection:
            token: str | None = (await connection.execute(query)).scalar_one_or_none()
        return token

    async def check(self) -> None:
        """Make sure the tables exist.

        Raises:
            ConfigError: they do not: the database needs the Slack migration.
        """
        try:
            async with self.engine.connect() as connection:
                for table in TABLES.sorted_tables:
                    await connection.execute(select(table.c.id).limit(0))
        except SQLAlchemyError as exc:
            raise ConfigError(
                "Slack installations need the tables slack_installations, slack_bots and "
                f"slack_oauth_states (see docs/slack.md): {type(exc).__name__}"
            ) from exc


class StateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack_sdk's async OAuth state store, on opsloop's database and tables."""

    def __init__(self, database: Database, expiration_seconds: int = 600) -> None:
        """Keep OAuth states in ``database`` for ``expiration_seconds``."""
        super().__init__(expiration_seconds=expiration_seconds, engine=database.engine)
        self.metadata, self.oauth_states = TABLES, _STATES


def oauth_settings(
    settings: SlackSettings, database: Database, public_url: str | None
) -> AsyncOAuthSettings:
    """Bolt's OAuth flow: install and redirect routes, stores in ``database``."""
    assert settings.client_id is not None and settings.client_secret is not None
    return AsyncOAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        scopes=list(BOT_SCOPES),
        redirect_uri=f"{public_url.rstrip('/')}{REDIRECT_PATH}" if public_url else None,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=settings.authorize_url,
        installation_store=InstallationStore(settings.client_id, database),
        installation_store_bot_only=True,
        state_store=StateStore(database),
    )


class Workspaces:
    """The bot token to use for a team."""

    def __init__(self, settings: SlackSettings) -> None:
        """Tokens as ``settings`` say: the one bot token, or OAuth installations."""
        self.settings = settings

    async def token_for(self, team: str, database: Database) -> str:
        """The bot token for ``team``.

        Raises:
            ConfigError: opsloop is not installed in that workspace.
        """
        settings = self.settings
        if settings.oauth:
            assert settings.client_id is not None
            token = await InstallationStore(settings.client_id, database).bot_token(team)
            if token is None:
                raise ConfigError(f"opsloop is not installed in Slack workspace {team!r}")
            return token
        if settings.bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set")
        return settings.bot_token.get_secret_value()
