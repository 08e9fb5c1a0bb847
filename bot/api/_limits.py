"""Refuse what would break parsing before anything parses it.

That is oversized bodies, numbers that are not plain numbers, and JSON nested without
bound.

Channels with HTTP routes of their own (Slack) use the same checks.
"""

from __future__ import annotations

import json
import re

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "is_timestamp", "json_depth"]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)  # a string, or a bracket


def is_timestamp(value: str) -> bool:
    """Whether a header is a plain Unix time: 1 to 12 ASCII digits.

    ``str.isdigit()`` takes "²" and Arabic-Indic digits, and ``int()`` refuses over 4,300
    digits: both were 500s.
    """
    return _TIMESTAMP.fullmatch(value) is not None


def json_depth(raw: bytes, *, stop_past: int) -> int:
    """How deep brackets nest in a JSON text (strings aside), without parsing it.

    Parsers recurse, so a body nested 100,000 deep raises ``RecursionError``; this scan does
    not. It stops counting once past ``stop_past``.
    """
    depth = deepest = 0
    for token in _JSON_TOKEN.finditer(raw):
        char = token[0]
        if char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_past:
                    break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes gets 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        """Wrap ``app``."""
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the body as it arrives; past the limit, answer 413 and cut the app off."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        # Past 12 digits it is over any limit; int() of thousands of digits would raise.
        if (
            declared is not None
            and declared.isdigit()
            and (len(declared) > 12 or int(declared) > self.limit)
        ):
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    # The app sees the client go away and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except ClientDisconnect:
            if not refused:
                raise

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": f"request body over {self.limit} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
