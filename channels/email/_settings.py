"""The email channel's settings, from the environment like :mod:`bot.config`."""

from __future__ import annotations

import hashlib
import hmac
from functools import cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import Settings, env, validated

__all__ = ["EmailSettings", "link_key", "load_email_settings"]

Tls = Literal["ssl", "starttls", "none"]


class EmailSettings(BaseSettings):
    """Where the bot reads and sends mail. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    address: str | None = Field(
        default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+$", validation_alias=env("EMAIL_ADDRESS")
    )
    """The bot's own address: mail to it starts threads, replies come from it."""
    imap_host: str | None = Field(default=None, validation_alias=env("IMAP_HOST"))
    """IMAP server; unset means no inbound mail (no gateway)."""
    imap_port: int | None = Field(default=None, ge=1, le=65535, validation_alias=env("IMAP_PORT"))
    """IMAP port; default 993 with TLS ``ssl``, else 143."""
    imap_user: str | None = Field(default=None, validation_alias=env("IMAP_USER"))
    """IMAP login name."""
    imap_password: SecretStr | None = Field(default=None, validation_alias=env("IMAP_PASSWORD"))
    """IMAP password."""
    imap_mailbox: str = Field(default="INBOX", validation_alias=env("IMAP_MAILBOX"))
    """The mailbox (folder) watched."""
    imap_tls: Tls = Field(default="ssl", validation_alias=env("IMAP_TLS"))
    """``ssl`` (implicit TLS), ``starttls`` or ``none`` (loopback and tests only)."""
    imap_poll_seconds: float = Field(default=60.0, gt=0, validation_alias=env("IMAP_POLL_SECONDS"))
    """Seconds between checks when the server has no IDLE (and the IDLE renewal ceiling)."""
    smtp_host: str | None = Field(default=None, validation_alias=env("SMTP_HOST"))
    """SMTP server for outbound mail."""
    smtp_port: int | None = Field(default=None, ge=1, le=65535, validation_alias=env("SMTP_PORT"))
    """SMTP port; default 465 with TLS ``ssl``, 587 with ``starttls``, else 25."""
    smtp_user: str | None = Field(default=None, validation_alias=env("SMTP_USER"))
    """SMTP login name; unset means no SMTP authentication."""
    smtp_password: SecretStr | None = Field(default=None, validation_alias=env("SMTP_PASSWORD"))
    """SMTP password."""
    smtp_tls: Tls = Field(default="starttls", validation_alias=env("SMTP_TLS"))
    """``starttls``, ``ssl`` (implicit TLS) or ``none`` (loopback and tests only)."""
    link_base_url: str | None = Field(default=None, validation_alias=env("EMAIL_LINK_BASE_URL"))
    """Base URL of the Approve / Reject links; default the console URL."""
    link_secret: SecretStr | None = Field(default=None, validation_alias=env("EMAIL_LINK_SECRET"))
    """Key signing the links; default derived from OPSLOOP_API_TOKEN; neither means no links."""
    authserv_id: str | None = Field(default=None, validation_alias=env("EMAIL_AUTHSERV_ID"))
    """The authserv-id our receiving server writes in Authentication-Results."""
    trust_mail_server: bool = Field(default=False, validation_alias=env("EMAIL_TRUST_MAIL_SERVER"))
    """Treat every delivered sender as authenticated (the server rejects forged mail itself)."""
    accept_unauthenticated: bool = Field(
        default=False, validation_alias=env("EMAIL_ACCEPT_UNAUTHENTICATED")
    )
    """Let mail that failed authentication start threads (never answer requests)."""
    max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=10_000, validation_alias=env("EMAIL_MAX_BYTES")
    )
    """Largest mail read, attachments included; bigger mail is refused and recorded."""

    @model_validator(mode="after")
    def _complete(self) -> EmailSettings:
        if self.imap_host:
            missing = [
                name
                for name, value in (
                    ("EMAIL_ADDRESS", self.address),
                    ("IMAP_USER", self.imap_user),
                    ("IMAP_PASSWORD", self.imap_password),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"IMAP_HOST is set, so set {', '.join(missing)} too")
            if not (self.authserv_id or self.trust_mail_server):
                raise ValueError(
                    "set EMAIL_AUTHSERV_ID (the authserv-id in your server's "
                    "Authentication-Results) or EMAIL_TRUST_MAIL_SERVER=true"
                )
        return self

    @property
    def imap_configured(self) -> bool:
        """Whether inbound mail is configured."""
        return bool(self.imap_host)

    @property
    def imap_port_number(self) -> int:
        """The IMAP port to connect to."""
        return self.imap_port or (993 if self.imap_tls == "ssl" else 143)

    @property
    def smtp_port_number(self) -> int:
        """The SMTP port to connect to."""
        return self.smtp_port or {"ssl": 465, "starttls": 587, "none": 25}[self.smtp_tls]

    @property
    def domain(self) -> str:
        """The domain of the bot's address."""
        return (self.address or "opsloop@localhost").rpartition("@")[2].lower()

    def links_base(self, settings: Settings) -> str:
        """Where approval links point."""
        return (self.link_base_url or settings.console_url).rstrip("/")


def link_key(email: EmailSettings, settings: Settings) -> bytes | None:
    """The key that signs approval links, or ``None`` when links are off."""
    if email.link_secret is not None:
        return email.link_secret.get_secret_value().encode()
    if settings.api_token is not None:
        token = settings.api_token.get_secret_value().encode()
        return hmac.new(token, b"opsloop email approval links", hashlib.sha256).digest()
    return None


@cache
def load_email_settings() -> EmailSettings:
    """Read and validate the email settings once, or raise one :class:`ConfigError`."""
    return validated(EmailSettings, "email configuration")
