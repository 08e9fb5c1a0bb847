"""The few Discord REST calls delivery makes, over aiohttp, against ``DISCORD_API_URL``.

Delivery runs in workers, one outbound message per call, so it does not use discord.py's
``HTTPClient``: that client sleeps through any 429 shorter than 30 seconds and retries it
up to five times inside the request, which would hold a worker and could outlast the
outbox claim (another worker would then post the message again). Here a 429 or a 5xx ends
the attempt at once with :class:`DeliveryRetryError` carrying Discord's ``retry_after``,
and the job reschedules the message in order.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp

from bot.plugins import DeliveryRetryError

__all__ = ["DiscordAPIError", "DiscordREST"]

_USER_AGENT = "DiscordBot (https://github.com/opsloop/opsloop, 0.1.0) opsloop"


class DiscordAPIError(Exception):
    """Discord refused a request (4xx other than 429)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        """Keep the status and Discord's JSON error code."""
        body = body if isinstance(body, dict) else {}
        self.status = status
        self.code = int(body.get("code", 0) or 0)
        message = str(body.get("message", "")) or "no message"
        if isinstance(body.get("errors"), dict):  # 50035: which fields Discord refused
            message += " (" + ", ".join(_fields(body["errors"])) + ")"
        super().__init__(f"Discord {method} {path}: {status} (code {self.code}) {message}")


class DiscordREST:
    """One short-lived session of bot-authenticated calls (``async with``)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 20.0) -> None:
        """Call ``base_url`` as the bot whose token is ``token``."""
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bot {token}", "User-Agent": _USER_AGENT}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> DiscordREST:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """Make one call; its JSON answer (``None`` for an empty one).

        Raises:
            DeliveryRetryError: rate limited (with Discord's ``retry_after``), Discord is
                failing (5xx), or it could not be reached.
            DiscordAPIError: Discord refused the request.
        """
        assert self._session is not None, "use DiscordREST as an async context manager"
        try:
            async with self._session.request(method, self._base + path, json=payload) as response:
                body: Any = None
                if response.content_type == "application/json":
                    body = await response.json()
                if response.status == 429:
                    raise DeliveryRetryError(
                        f"Discord rate limit on {method} {path}",
                        retry_after=_retry_after(response, body),
                    )
                if response.status >= 500:
                    raise DeliveryRetryError(f"Discord {method} {path}: {response.status}")
                if response.status >= 400:
                    raise DiscordAPIError(method, path, response.status, body)
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryRetryError(f"Discord unreachable: {type(exc).__name__}") from exc


def _fields(errors: dict[str, Any], where: str = "") -> list[str]:
    """The paths of the fields in Discord's nested ``errors`` object, with their reasons."""
    found = []
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            reasons = "; ".join(str(e.get("message", "")) for e in value if isinstance(e, dict))
            found.append(f"{where}: {reasons}")
        elif isinstance(value, dict):
            found += _fields(value, f"{where}.{key}" if where else key)
    return found


def _retry_after(response: aiohttp.ClientResponse, body: Any) -> float:
    # The body's value has millisecond precision; the header is whole seconds.
    if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
        return float(body["retry_after"])
    for header in ("Retry-After", "X-RateLimit-Reset-After"):
        try:
            return float(response.headers[header])
        except (KeyError, ValueError):
            continue
    return 1.0
