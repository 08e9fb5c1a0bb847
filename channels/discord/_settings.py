"""The Discord channel's settings, from the environment (listed in ``.env.example``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import env, validated
from bot.errors import ConfigError

__all__ = ["DISCORD_API", "DiscordSettings", "load_discord_settings"]

DISCORD_API = "https://discord.com/api/v10"
"""Discord's own REST API, the version discord.py 2.x speaks."""


class DiscordSettings(BaseSettings):
    """How opsloop reaches Discord. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    bot_token: SecretStr | None = Field(default=None, validation_alias=env("DISCORD_BOT_TOKEN"))
    """The bot's token; unset means the Discord channel is off."""
    guild_ids: str = Field(default="", validation_alias=env("DISCORD_GUILD_IDS"))
    """Comma-separated guild ids to register ``/ops`` in at once; unset means globally."""
    api_url: str = Field(default=DISCORD_API, validation_alias=env("DISCORD_API_URL"))
    """The REST API base; tests point it at a local fake."""
    message_content: bool = Field(default=False, validation_alias=env("DISCORD_MESSAGE_CONTENT"))
    """Whether the privileged message-content intent is on (enables ``!ops`` and follow-ups
    in threads without a mention)."""

    @field_validator("guild_ids")
    @classmethod
    def _snowflakes(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise ValueError("must be comma-separated numeric guild ids")
        return ",".join(parts)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as " + DISCORD_API)
        return value.rstrip("/")

    @property
    def guilds(self) -> tuple[int, ...]:
        """The guild ids as numbers."""
        return tuple(int(p) for p in self.guild_ids.split(",") if p)

    @property
    def token(self) -> str:
        """The bot token.

        Raises:
            ConfigError: DISCORD_BOT_TOKEN is not set.
        """
        if self.bot_token is None:
            raise ConfigError("DISCORD_BOT_TOKEN is not set: the Discord channel is off")
        return self.bot_token.get_secret_value()


def load_discord_settings(**overrides: object) -> DiscordSettings:
    """Read and validate the Discord settings, or raise one :class:`ConfigError` listing each."""
    return validated(DiscordSettings, "Discord configuration", **overrides)
