"""How a provider's HTTP failure becomes an opsloop error, the same for every provider.

Timeouts, 408, 429 and 5xx are :class:`~bot.errors.ModelUnavailableError` (worth a retry or
the next provider), carrying the provider's ``Retry-After``; any other status is a plain
:class:`~bot.errors.ModelError`. Messages are short and never contain the API key.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from bot.errors import ModelError, ModelUnavailableError

__all__ = ["UNUSABLE", "parse_retry_after", "status_error", "unusable_answer"]

UNUSABLE = (AttributeError, KeyError, TypeError, ValueError)
"""What translating a garbled answer raises: HTML where JSON was due, truncated JSON, a
JSON value of the wrong shape (``json.JSONDecodeError`` and pydantic's errors are
``ValueError`` subclasses)."""


def unusable_answer(provider: str, exc: BaseException) -> ModelUnavailableError:
    """A provider answered with something that is not a response: worth a retry or fallback.

    A proxy's login page or a cut connection is a fault of the path to the model, like a
    5xx, so retries, the breaker and the fallback chain apply.
    """
    return ModelUnavailableError(
        f"{provider} sent an unusable answer ({type(exc).__name__}); "
        "is a proxy or gateway in between?"
    )


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> float | None:
    """Seconds a provider asked us to wait: ``Retry-After`` as seconds or as an HTTP date.

    Args:
        headers: the response headers (looked up by lower-case name).
        now: the current time, for a date.

    Returns:
        The delay in seconds (never negative), or ``None`` when absent or unreadable.
    """
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT, even when it does not say so
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def status_error(
    provider: str, status: int, headers: Mapping[str, str], detail: str | None, *, secret: str
) -> ModelError:
    """Map a provider's HTTP error to ours, keeping ``secret`` out of the message.

    Args:
        provider: the provider's short name, for the message.
        status: the HTTP status code.
        headers: the response headers, for ``Retry-After``.
        detail: the provider's own explanation, when it gave one.
        secret: the API key, scrubbed from anything the provider echoed back.

    Returns:
        :class:`ModelUnavailableError` for 408, 429 and 5xx (529 is Anthropic's "overloaded")
        with the ``Retry-After`` delay; a plain :class:`ModelError` for any other status.
    """
    if status in (408, 429) or status >= 500:
        label = {408: "timed out", 429: "rate limited us", 529: "is overloaded"}.get(status)
        return ModelUnavailableError(
            f"{provider} {label or 'had a server error'} (HTTP {status})",
            retry_after=parse_retry_after(headers),
        )
    if status in (401, 403):
        # The provider's own wording can quote (part of) the key back: say nothing of it.
        what = "rejected the API key" if status == 401 else "denied access"
        return ModelError(f"{provider} {what} (HTTP {status}); check its API key and model")
    text = " ".join((detail or "").split())
    if secret:
        text = text.replace(secret, "***")
    if len(text) > 160:
        text = text[:157] + "..."
    return ModelError(
        f"{provider} rejected the request (HTTP {status})" + (f": {text}" if text else "")
    )
