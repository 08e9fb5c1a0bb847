"""Settings from the environment (and an optional ``.env``), validated once at start-up.

Every setting is listed, with a comment, in ``.env.example``. A bad value stops start-up
with one line per problem (:func:`load_settings`); secret values are never shown.
"""

from __future__ import annotations

import ipaddress
import json
from functools import cached_property
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

__all__ = ["DEFAULT_PRICES", "Price", "Settings", "env", "load_settings", "validated"]


class Price(BaseModel):
    """US dollars per million tokens."""

    input: float
    """Uncached input tokens."""
    output: float
    """Output tokens."""
    cached_input: float = 0.0
    """Input tokens read from the prompt cache."""
    cache_write: float = 0.0
    """Input tokens written to the prompt cache."""


DEFAULT_PRICES: dict[str, Price] = {
    "claude-sonnet-4-6": Price(input=3.0, output=15.0, cached_input=0.30, cache_write=3.75),
    "claude-sonnet-4-5": Price(input=3.0, output=15.0, cached_input=0.30, cache_write=3.75),
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cached_input=0.10, cache_write=1.25),
    "claude-opus-4-1": Price(input=15.0, output=75.0, cached_input=1.50, cache_write=18.75),
    "gpt-4.1": Price(input=2.0, output=8.0, cached_input=0.50),
    "gpt-4.1-mini": Price(input=0.40, output=1.60, cached_input=0.10),
    "gpt-4o": Price(input=2.50, output=10.0, cached_input=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.60, cached_input=0.075),
}
"""Published list prices; override or extend with ``OPSLOOP_PRICES``."""


def env(name: str) -> AliasChoices:
    """The alias that reads a setting from the environment variable ``name``."""
    return AliasChoices(name, name.lower())


def _loopback(host: str) -> bool:
    """Whether ``host`` names this machine (plain http is acceptable only there)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """opsloop's configuration. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    home: Path = Field(default=Path("."), validation_alias=env("OPSLOOP_HOME"))
    """Where the embedded database and other local state live."""
    database_url: str | None = Field(default=None, validation_alias=env("DATABASE_URL"))
    """SQLAlchemy URL; unset means a SQLite file in ``home``."""
    redis_url: str | None = Field(default=None, validation_alias=env("REDIS_URL"))
    """Celery's broker; unset means an embedded file-system queue under ``home`` (no server)."""
    visibility_timeout: int = Field(
        default=900, ge=60, validation_alias=env("OPSLOOP_VISIBILITY_TIMEOUT")
    )
    """Seconds Redis keeps a task taken by a worker that died before it comes back."""
    sweep_interval: float = Field(
        default=15.0, gt=0, validation_alias=env("OPSLOOP_SWEEP_INTERVAL")
    )
    """Seconds between sweeps (expiry, lost work, stuck deliveries)."""
    sweep_grace: float = Field(default=60.0, ge=0, validation_alias=env("OPSLOOP_SWEEP_GRACE"))
    """Seconds before stored-but-unprocessed work counts as lost and is enqueued again."""
    api_token: SecretStr | None = Field(default=None, validation_alias=env("OPSLOOP_API_TOKEN"))
    """Bearer token for the HTTP API and the console login; without one every request is 401."""
    dev_identities: bool = Field(default=False, validation_alias=env("OPSLOOP_DEV_IDENTITIES"))
    """Development only: the console may act as anyone ("Acting as"); ``opsloop api`` refuses it."""
    bind: str = Field(
        default="127.0.0.1:8000",
        pattern=r"^[^\s:]+:\d{1,5}$",
        validation_alias=env("OPSLOOP_BIND"),
    )
    """host:port the HTTP API and console listen on (loopback only by default)."""
    public_url: str | None = Field(default=None, validation_alias=env("OPSLOOP_PUBLIC_URL"))
    """The URL people reach the console at, for links; default http://<bind>."""
    webhooks: SecretStr | None = Field(default=None, validation_alias=env("OPSLOOP_WEBHOOKS"))
    """Webhook secrets, ``name=secret,name2=secret2``; POST /hooks/NAME is signed with it."""
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, validation_alias=env("OPSLOOP_MAX_BODY_BYTES")
    )
    """Largest HTTP request body accepted."""

    oidc_issuer: str | None = Field(default=None, validation_alias=env("OPSLOOP_OIDC_ISSUER"))
    """OpenID Connect issuer URL (its discovery document is ``<issuer>/.well-known/...``);
    unset means no single sign-on. https, except on a loopback address."""
    oidc_client_id: str | None = Field(
        default=None, validate_default=True, validation_alias=env("OPSLOOP_OIDC_CLIENT_ID")
    )
    """The console's client id at the OpenID Provider; needed with an issuer."""
    oidc_client_secret: SecretStr | None = Field(
        default=None, validation_alias=env("OPSLOOP_OIDC_CLIENT_SECRET")
    )
    """The client secret; unset for a public client (PKCE alone)."""
    oidc_scopes: str = Field(
        default="openid email profile", validation_alias=env("OPSLOOP_OIDC_SCOPES")
    )
    """Scopes asked for, space-separated; must include ``openid``."""
    oidc_user_claim: str = Field(
        default="email", min_length=1, validation_alias=env("OPSLOOP_OIDC_USER_CLAIM")
    )
    """The ID token claim that names the person: ``oidc:<value>`` (``email``,
    ``preferred_username``, ``sub``…)."""
    oidc_groups_claim: str = Field(
        default="groups", min_length=1, validation_alias=env("OPSLOOP_OIDC_GROUPS_CLAIM")
    )
    """The ID token claim listing the person's groups (``oidc-group:<name>`` in policy)."""
    oidc_session_hours: float = Field(
        default=12.0, gt=0, validation_alias=env("OPSLOOP_OIDC_SESSION_HOURS")
    )
    """Hours a console session signed in through OpenID Connect lasts (at most the usual
    session lifetime)."""
    policy_file: Path | None = Field(default=None, validation_alias=env("OPSLOOP_POLICY_FILE"))
    """The team's policy file; unset means the bundled default policy."""
    prompts_dir: Path | None = Field(default=None, validation_alias=env("OPSLOOP_PROMPTS_DIR"))
    """Where prompt templates live; unset means the bundled ``prompts/``."""
    inventory: str = Field(default="demo", validation_alias=env("OPSLOOP_INVENTORY"))
    """``demo``, or ``package.module:factory`` returning the team's own inventory."""

    plugins: str = Field(default="", validation_alias=env("OPSLOOP_PLUGINS"))
    """Local plugin modules, comma-separated (``myteam.ops`` or ``myteam.ops:plugin``),
    imported from the working directory too, besides the installed ones."""
    disable_plugins: str = Field(default="", validation_alias=env("OPSLOOP_DISABLE_PLUGINS"))
    """Plugins whose tools, agents and prompts are left out, comma-separated (``agents``: the
    shipped agents)."""
    tools_dir: Path | None = Field(default=None, validation_alias=env("OPSLOOP_TOOLS_DIR"))
    """A folder of TOML/YAML declarations: runbooks (tools without Python), agents and MCP
    servers; unset means none."""
    agents: str = Field(default="", validation_alias=env("OPSLOOP_AGENTS"))
    """Replaces every plugin's tools and agents with one registry,
    ``package.module:registry`` (deprecated: plugins add up; unset means the plugins')."""

    @property
    def plugin_modules(self) -> tuple[str, ...]:
        """``OPSLOOP_PLUGINS`` as a list."""
        return tuple(s.strip() for s in self.plugins.split(",") if s.strip())

    @property
    def disabled_plugins(self) -> tuple[str, ...]:
        """``OPSLOOP_DISABLE_PLUGINS`` as a list."""
        return tuple(s.strip() for s in self.disable_plugins.split(",") if s.strip())

    models: str = Field(default="auto", validation_alias=env("OPSLOOP_MODELS"))
    """Fallback chain ``provider:model,provider:model``; ``auto`` picks from the API keys.

    Providers: ``anthropic``, ``openai``, ``offline`` (the pattern model; it also takes
    ``call TOOL key=value …``) and ``scripted:PATH``, decisions played from a JSON or YAML
    file in order within each thread (:mod:`bot.model.scripted`). ``offline`` and
    ``scripted`` always answer, so either can only come last."""
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=env("ANTHROPIC_API_KEY")
    )
    """Anthropic API key."""
    anthropic_base_url: str | None = Field(default=None, validation_alias=env("ANTHROPIC_BASE_URL"))
    """Anthropic API base URL; unset means Anthropic's own."""
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=env("OPENAI_API_KEY"))
    """OpenAI API key (any value for servers that need none, such as Ollama)."""
    openai_base_url: str | None = Field(default=None, validation_alias=env("OPENAI_BASE_URL"))
    """OpenAI-compatible base URL (Ollama, vLLM…); unset means OpenAI's own."""
    model_timeout: float = Field(default=60.0, gt=0, validation_alias=env("OPSLOOP_MODEL_TIMEOUT"))
    """Seconds before one model request times out."""
    model_retries: int = Field(
        default=2, ge=0, le=10, validation_alias=env("OPSLOOP_MODEL_RETRIES")
    )
    """Retries per provider on timeouts, 429 and 5xx (honouring Retry-After)."""
    breaker_failures: int = Field(default=5, ge=1, validation_alias=env("OPSLOOP_BREAKER_FAILURES"))
    """Consecutive failures that open a provider's circuit breaker."""
    breaker_reset: float = Field(default=30.0, gt=0, validation_alias=env("OPSLOOP_BREAKER_RESET"))
    """Seconds an open circuit waits before letting one trial request through."""
    prices_json: str | None = Field(default=None, validation_alias=env("OPSLOOP_PRICES"))
    """JSON ``{"model": {"input": 3.0, "output": 15.0, "cached_input": 0.3}}`` per 1M tokens."""

    max_message_chars: int = Field(
        default=16_000, ge=1, validation_alias=env("OPSLOOP_MAX_MESSAGE_CHARS")
    )
    """Longest message accepted from a person."""
    context_tokens: int = Field(
        default=8_000, ge=500, validation_alias=env("OPSLOOP_CONTEXT_TOKENS")
    )
    """Token budget of the rendered thread context before compaction."""
    max_consecutive_errors: int = Field(
        default=3, ge=1, validation_alias=env("OPSLOOP_MAX_CONSECUTIVE_ERRORS")
    )
    """Errors in a row after which a thread escalates to a human."""
    max_attempts: int = Field(default=5, ge=1, le=100, validation_alias=env("OPSLOOP_MAX_ATTEMPTS"))
    """Tries of one inbound event before it is marked failed with its reason (and the
    person told), so work that always fails stops being retried."""
    lease_seconds: float = Field(default=30.0, gt=0, validation_alias=env("OPSLOOP_LEASE_SECONDS"))
    """How long a worker's hold on a thread lasts unless renewed (a dead worker's lapses)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", validation_alias=env("OPSLOOP_LOG_LEVEL")
    )
    """Log level."""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("bind")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        port = int(value.rpartition(":")[2])
        if not 1 <= port <= 65535:
            raise ValueError(f"the port must be 1 to 65535, not {port}")
        return value

    @field_validator("models")
    @classmethod
    def _chain_shape(cls, value: str) -> str:
        value = value.strip()
        if value == "auto":
            return value
        for part in (p.strip() for p in value.split(",")):
            provider, _, name = part.partition(":")
            if provider not in {"anthropic", "openai", "offline", "scripted"} or (
                provider != "offline" and not name
            ):
                raise ValueError(
                    f"{part!r} is not provider:model with provider anthropic, openai or offline "
                    "(or scripted:PATH)"
                )
        return value

    @field_validator("prices_json")
    @classmethod
    def _prices_parse(cls, value: str | None) -> str | None:
        if not value:
            return value
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(
                f"must be a JSON object of model prices (not JSON: {exc.args[0]})"
            ) from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object of model prices, by model name")
        for name, price in parsed.items():
            try:
                Price.model_validate(price)
            except ValidationError as exc:
                first = exc.errors(include_input=False, include_url=False)[0]
                field = ".".join(str(p) for p in first["loc"]) or "price"
                raise ValueError(
                    f"must be a JSON object of model prices ({name}.{field}: {first['msg']})"
                ) from None
        return value

    @field_validator("webhooks")
    @classmethod
    def _webhooks_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for part in value.get_secret_value().split(","):
                name, _, secret = part.strip().partition("=")
                if not name or len(secret) < 16:
                    raise ValueError("must be name=secret pairs, each secret 16+ characters")
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_shape(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value.strip())
        if url.scheme not in {"https", "http"} or not url.hostname:
            raise ValueError("must be the issuer's URL, e.g. https://idp.example.com/realms/ops")
        if url.query or url.fragment:
            raise ValueError("must be the issuer's URL, without a query or fragment")
        if url.scheme == "http" and not _loopback(url.hostname):
            raise ValueError("must be an https:// URL (plain http only on a loopback address)")
        return value.strip()

    @field_validator("oidc_client_id")
    @classmethod
    def _client_with_issuer(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = value.strip() if value else None
        issuer = info.data.get("oidc_issuer")
        if issuer and not value:
            raise ValueError("is needed when OPSLOOP_OIDC_ISSUER is set")
        if value and not issuer and "oidc_issuer" in info.data:
            raise ValueError("is set but OPSLOOP_OIDC_ISSUER is not (single sign-on stays off)")
        return value

    @field_validator("oidc_scopes")
    @classmethod
    def _scopes_have_openid(cls, value: str) -> str:
        scopes = value.split()
        if "openid" not in scopes:
            raise ValueError("must include openid (space-separated scopes)")
        return " ".join(scopes)

    @property
    def webhook_secrets(self) -> dict[str, bytes]:
        """Webhook secrets by name."""
        if self.webhooks is None:
            return {}
        pairs = (p.strip().partition("=") for p in self.webhooks.get_secret_value().split(","))
        return {name: secret.encode() for name, _, secret in pairs}

    @property
    def console_url(self) -> str:
        """Where the console is reached."""
        return (self.public_url or f"http://{self.bind}").rstrip("/")

    def thread_page(self, thread_id: str) -> str | None:
        """The thread's page in the console, for links in chat messages.

        ``None`` without a public URL: a link to this machine's loopback address means
        nothing to anyone else.
        """
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}/threads/{thread_id}"

    @cached_property
    def prices(self) -> dict[str, Price]:
        """The price table: defaults overlaid with ``OPSLOOP_PRICES``."""
        table = dict(DEFAULT_PRICES)
        if self.prices_json:
            for name, price in json.loads(self.prices_json).items():
                table[name] = Price.model_validate(price)
        return table

    @property
    def database(self) -> str:
        """The async SQLAlchemy URL to connect to."""
        url = self.database_url or f"sqlite:///{(self.home / 'opsloop.db').resolve()}"
        if url.startswith("sqlite:"):
            return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
        if url.startswith("postgresql:"):
            return "postgresql+psycopg:" + url.removeprefix("postgresql:")
        return url


S = TypeVar("S", bound=BaseSettings)


def _env_name(model: type[BaseSettings], where: int | str) -> str:
    """The environment variable of a setting an error names (by field name or by alias)."""
    field = model.model_fields.get(str(where))
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return str(where).upper()


def validated(model: type[S], what: str, **overrides: object) -> S:
    """Read ``model`` from the environment, or raise one :class:`ConfigError`.

    The error has a line per bad setting, named by its environment variable; values are
    never shown (they may be secrets).

    Args:
        model: the settings class.
        what: how the message names the settings ("configuration", "Slack configuration").
        overrides: values that win over the environment (for tests and the CLI).
    """
    try:
        return model(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            name = _env_name(model, error["loc"][0]) if error["loc"] else "SETTINGS"
            lines.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError(f"invalid {what}:\n  " + "\n  ".join(lines)) from None


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, or raise one :class:`ConfigError` listing each problem.

    Args:
        overrides: values that win over the environment (for tests and the CLI).
    """
    settings = validated(Settings, "configuration", **overrides)
    if not settings.home.is_dir():
        raise ConfigError(
            f"invalid configuration:\n  OPSLOOP_HOME: {settings.home} is not a directory"
        )
    return settings
