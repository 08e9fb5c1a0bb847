"""Building the configured model chain from :class:`~bot.config.Settings`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import ConfigError
from bot.model._base import Model
from bot.model._resilience import BreakerModel, CircuitBreaker, FallbackModel, RetryingModel

if TYPE_CHECKING:
    from pydantic import SecretStr

    from bot.config import Settings

__all__ = ["build_model", "parse_chain"]

AUTO_ANTHROPIC = ("anthropic", "claude-sonnet-4-6")
"""What ``auto`` picks when an Anthropic key is set."""
AUTO_OPENAI = ("openai", "gpt-4.1-mini")
"""What ``auto`` picks when an OpenAI key or base URL is set (and no Anthropic key)."""


_ALWAYS_ANSWER = ("offline", "scripted")
"""Models that answer every request: nothing after them in a chain is ever asked."""


def _secret(value: SecretStr | None) -> str | None:
    return (value.get_secret_value() or None) if value is not None else None


def parse_chain(settings: Settings) -> list[tuple[str, str]]:
    """The ``(provider, model)`` pairs ``settings.models`` names, ``auto`` resolved.

    Raises:
        ConfigError: for an unknown provider, or ``offline`` or ``scripted`` anywhere but last.
    """
    spec = settings.models.strip()
    if spec == "auto":
        if _secret(settings.anthropic_api_key):
            return [AUTO_ANTHROPIC]
        if _secret(settings.openai_api_key) or settings.openai_base_url:
            return [AUTO_OPENAI]
        return [("offline", "")]
    chain: list[tuple[str, str]] = []
    for part in spec.split(","):
        provider, _, name = part.strip().partition(":")
        if provider not in ("anthropic", "openai", "offline", "scripted") or (
            provider != "offline" and not name
        ):
            raise ConfigError(f"OPSLOOP_MODELS: {part.strip()!r} is not provider:model")
        chain.append((provider, name))
    # Nothing after offline or a script would ever be asked: they always answer.
    for provider, _ in chain[:-1]:
        if provider in _ALWAYS_ANSWER:
            raise ConfigError(f"OPSLOOP_MODELS: {provider} can only be the last model in the chain")
    return chain


def _credentials(provider: str, name: str, settings: Settings) -> tuple[str, str | None]:
    """The API key and base URL for ``provider``; a :class:`ConfigError` says what is missing."""
    if provider == "anthropic":
        key = _secret(settings.anthropic_api_key)
        if key is None:
            raise ConfigError(
                f"OPSLOOP_MODELS names anthropic:{name} but ANTHROPIC_API_KEY is unset"
            )
        return key, settings.anthropic_base_url
    key = _secret(settings.openai_api_key)
    if key is None and not settings.openai_base_url:
        raise ConfigError(
            f"OPSLOOP_MODELS names openai:{name} but neither OPENAI_API_KEY nor "
            "OPENAI_BASE_URL is set"
        )
    # A local OpenAI-compatible server needs no key, but the SDK insists on one.
    return key or "unused", settings.openai_base_url


def _provider(provider: str, name: str, key: str, base_url: str | None, timeout: float) -> Model:
    # Imported here: each SDK takes a second or more to import, and only the chosen one is needed.
    if provider == "anthropic":
        from bot.model._anthropic import AnthropicModel

        return AnthropicModel(name, api_key=key, base_url=base_url, timeout=timeout)
    from bot.model._openai import OpenAIModel

    return OpenAIModel(name, api_key=key, base_url=base_url, timeout=timeout)


def _offline_model() -> Model:
    # Imported on use, so this module never depends on the offline model being importable.
    from bot.model.offline import OfflineModel

    return OfflineModel()


def build_model(settings: Settings, *, offline_factory: Callable[[], Model] | None = None) -> Model:
    """The model chain ``settings.models`` describes, ready to call.

    Each real provider is wrapped as ``BreakerModel(RetryingModel(provider))``: retries absorb
    a blip, and the breaker stops a provider that keeps failing from slowing every call down.
    More than one model becomes a :class:`FallbackModel`, tried in order.

    Args:
        settings: the validated settings.
        offline_factory: builds the offline model (tests inject one); defaults to
            ``bot.model.offline.OfflineModel``.

    Raises:
        ConfigError: when a provider in the chain lacks its API key, the chain is malformed,
            or a script (``scripted:PATH``) cannot be read.
    """
    chain = parse_chain(settings)
    # Every key is checked before any client exists, so a bad setting leaks no connections.
    credentials = {
        (provider, name): _credentials(provider, name, settings)
        for provider, name in chain
        if provider not in _ALWAYS_ANSWER
    }
    models: list[Model] = []
    for provider, name in chain:
        if provider == "offline":
            models.append((offline_factory or _offline_model)())
            continue
        if provider == "scripted":
            from bot.model.scripted import ScriptFileModel

            models.append(ScriptFileModel.from_file(Path(name).expanduser()))
            continue
        key, base_url = credentials[provider, name]
        inner = _provider(provider, name, key, base_url, settings.model_timeout)
        retrying = RetryingModel(inner, settings.model_retries)
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset)
        models.append(BreakerModel(retrying, breaker))
    return models[0] if len(models) == 1 else FallbackModel(models)
