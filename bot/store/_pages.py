"""Keyset pages of the long lists (threads, human requests) behind an opaque cursor.

A page asks the database for one row more than it shows, from where the last page ended, by
an index in the list's order: the page costs the same with a hundred rows or a million. The
cursor names the last row shown (its time and id) and which list it belongs to.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

from bot.errors import BadInputError

__all__ = ["MAX_PAGE", "Page", "check_limit", "decode_cursor", "encode_cursor"]

MAX_PAGE = 500
"""The longest page any list hands out."""

T = TypeVar("T")
Listing = Literal["threads", "requests"]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next (``None`` on the last page)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(listing: Listing, at: datetime, key: str) -> str:
    """The cursor of the page after the row (``at``, ``key``) of ``listing``."""
    raw = json.dumps([listing, at.isoformat(), key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(listing: Listing, cursor: str) -> tuple[datetime, str]:
    """The row a cursor of ``listing`` points after.

    Raises:
        BadInputError: the cursor is not one this list handed out.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, at, key = json.loads(raw)
        when = datetime.fromisoformat(at)
        if kind != listing or not isinstance(key, str) or when.tzinfo is None:
            raise ValueError(kind)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadInputError(
            f"cursor {cursor[:60]!r} is not one the {listing} list handed out: "
            "pass the next_cursor of the previous page as it is"
        ) from None
    return when, key


def check_limit(limit: int) -> int:
    """``limit`` if it is a page size this store hands out.

    Raises:
        BadInputError: it is below 1 or above :data:`MAX_PAGE`.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise BadInputError(f"limit {limit}: give 1 to {MAX_PAGE}")
    return limit
