"""The Slack channel's settings, from the environment like the core's (``bot/config.py``)."""

from __future__ import annotations

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import env, validated
from bot.errors import ConfigError

__all__ = ["SlackSettings", "load_slack_settings"]


def _prefixed(value: SecretStr | None, prefix: str, what: str) -> SecretStr | None:
    if value is not None and not value.get_secret_value().startswith(prefix):
        raise ValueError(f"must be {what} (it starts with {prefix})")
    return value


class SlackSettings(BaseSettings):
    """How opsloop reaches Slack. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    bot_token: SecretStr | None = Field(default=None, validation_alias=env("SLACK_BOT_TOKEN"))
    """The bot token (``xoxb-…``) of a single workspace."""
    signing_secret: SecretStr | None = Field(
        default=None, validation_alias=env("SLACK_SIGNING_SECRET")
    )
    """Verifies HTTP requests from Slack; ``POST /slack/events`` exists only when it is set."""
    app_token: SecretStr | None = Field(default=None, validation_alias=env("SLACK_APP_TOKEN"))
    """App-level token (``xapp-…``, scope ``connections:write``) for Socket Mode."""
    api_url: str = Field(default="https://slack.com/api/", validation_alias=env("SLACK_API_URL"))
    """Base URL of Slack's Web API (tests point it at a local fake)."""
    authorize_url: str = Field(
        default="https://slack.com/oauth/v2/authorize",
        validation_alias=env("SLACK_AUTHORIZE_URL"),
    )
    """Where the install page sends people to approve the app (OAuth)."""
    client_id: str | None = Field(default=None, validation_alias=env("SLACK_CLIENT_ID"))
    """OAuth client id: set it (and the secret) to install opsloop in several workspaces."""
    client_secret: SecretStr | None = Field(
        default=None, validation_alias=env("SLACK_CLIENT_SECRET")
    )
    """OAuth client secret."""
    allow_bots: bool = Field(default=False, validation_alias=env("SLACK_ALLOW_BOTS"))
    """Treat other bots' messages as requests (opsloop's own are always ignored)."""
    command: str = Field(
        default="/ops", pattern=r"^/[a-z0-9_-]{1,31}$", validation_alias=env("SLACK_COMMAND")
    )
    """The slash command, as registered in the app manifest."""
    directory_ttl: float = Field(
        default=300.0, ge=0, le=86_400, validation_alias=env("SLACK_DIRECTORY_TTL")
    )
    """Seconds that people's names and user-group memberships are cached."""

    @field_validator("bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        return _prefixed(value, "xoxb-", "a bot token")

    @field_validator("app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        return _prefixed(value, "xapp-", "an app-level token")

    @field_validator("api_url", "authorize_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        # slack_sdk joins the method name straight onto the base URL.
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _oauth_pair(self) -> SlackSettings:
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together: set both")
        return self

    @property
    def oauth(self) -> bool:
        """Whether opsloop is installed per workspace through OAuth (several workspaces)."""
        return self.client_id is not None and self.client_secret is not None

    @property
    def can_post(self) -> bool:
        """Whether there is a way to get a bot token: one workspace's, or OAuth installations."""
        return self.bot_token is not None or self.oauth

    @property
    def http_mode(self) -> bool:
        """Whether Slack's HTTP requests are served (``POST /slack/events``)."""
        return self.signing_secret is not None

    @property
    def socket_mode(self) -> bool:
        """Whether the Socket Mode gateway runs."""
        return self.app_token is not None and self.can_post


def load_slack_settings(**overrides: object) -> SlackSettings:
    """Read and validate the Slack settings, or raise one :class:`ConfigError` listing each.

    Args:
        overrides: values that win over the environment (for tests).
    """
    settings = validated(SlackSettings, "Slack configuration", **overrides)
    if (settings.http_mode or settings.app_token is not None) and not settings.can_post:
        raise ConfigError(
            "invalid Slack configuration:\n  SLACK_BOT_TOKEN: set it (one workspace), or "
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (installed through OAuth)"
        )
    return settings
