"""``Idempotency-Key`` on the API's POSTs: a retried request gets the first one's answer.

A client that lost the answer to a POST (a timeout, a dropped connection) sends it again
with the same ``Idempotency-Key`` header; the event is stored once, and the retry is
answered as the first request was (with ``Idempotent-Replayed: true``). The same key with a
different body is refused with 409: it is a client bug, not a retry.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import HTTPException, Request, Response

from bot.app import Opsloop
from bot.store import InboxItem

__all__ = ["HEADER", "accept", "event_key"]

HEADER = "Idempotency-Key"


def event_key(request: Request, scope: str) -> str | None:
    """The inbox key for this request's ``Idempotency-Key`` within ``scope``, if it has one.

    Raises:
        HTTPException: 400 for a key that is empty, too long or not printable ASCII.
    """
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    raw = raw.strip()
    if not 1 <= len(raw) <= 255 or not raw.isascii() or not raw.isprintable():
        raise HTTPException(400, f"{HEADER} must be 1 to 255 printable ASCII characters")
    return "api:" + hashlib.sha256(f"{scope}\n{raw}".encode()).hexdigest()[:48]


async def accept(ops: Opsloop, event: Any, response: Response) -> InboxItem:
    """Store ``event``; a repeat of an earlier request gets the item that one stored.

    A repeat is the same event as stored (text trimmed the same way), but for when it
    arrived.

    Raises:
        HTTPException: 409 when the key was used for a different request.
    """
    item = await ops.ingest(event)
    if item is not None:
        return item
    item = await ops.store.inbox_item_by_key(event.idempotency_key)
    if _comparable(item.event) != _comparable(ops.checked(event)):
        raise HTTPException(409, f"this {HEADER} was used for a different request")
    response.headers["Idempotent-Replayed"] = "true"
    return item


def _comparable(event: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = event.model_dump(mode="json", exclude={"received_at"})
    return dumped
