"""Per-person API tokens: ``opl_<id>_<secret>``, of which only a hash of the secret is kept.

A token speaks for one person (``web:<person>``) with a set of scopes. Its public id
(``tk_…``) lists and revokes it and names it in the audit trail (``via="token:tk_…"``);
the secret is shown once, when the token is made, and a row read from the database signs
nobody in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Index, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from bot.errors import AuthenticationError
from bot.events import new_id, utcnow
from bot.store._database import Database
from bot.store._tables import Base

__all__ = [
    "DEFAULT_SCOPES",
    "DEFAULT_TOKEN_TTL",
    "SCOPES",
    "ApiToken",
    "ApiTokenRow",
    "ApiTokens",
    "Scope",
]

Scope = Literal["read", "act", "decide", "admin", "service"]
"""``read``: GET; ``act``: start threads, post, pause and resume; ``decide``: approve, reject,
answer; ``admin``: manage everyone's tokens and sessions, read all; ``service``: speak for
another person (recorded with ``via``)."""
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_SCOPES: tuple[Scope, ...] = ("read", "act", "decide")
DEFAULT_TOKEN_TTL = timedelta(days=90)
_TOUCH_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often, not on every request."""
_SHAPE = re.compile(r"^opl_(tk_[0-9a-f]{16})_([A-Za-z0-9_-]{20,200})$")
_NO_MATCH = hashlib.sha256(b"no such token").hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokenRow(Base):
    """One per-person API token."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_person", "person"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(String(200))
    label: Mapped[str | None] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class ApiToken(BaseModel):
    """A token as listed; never its secret."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Public id (``tk_…``), to revoke it by."""
    person: str
    """Whom it speaks for: the web user id (policy principal ``web:<person>``)."""
    scopes: tuple[Scope, ...]
    """What it may do."""
    label: str | None
    """What it is for, in the owner's words."""
    created_at: datetime
    """When it was made."""
    expires_at: datetime | None
    """When it stops working by itself; ``None``: never."""
    revoked_at: datetime | None
    """When it was revoked."""
    last_used_at: datetime | None
    """When it was last used (to the minute)."""

    def status(self, now: datetime) -> Literal["active", "revoked", "expired"]:
        """Whether it works at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def _token(row: Any) -> ApiToken:  # a mapped row, or a Core row of the same columns
    return ApiToken(
        id=row.id,
        person=row.person,
        scopes=tuple(row.scopes.split()),
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class ApiTokens:
    """The per-person tokens kept in ``database``; ``clock`` says what time it is."""

    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        """Use ``database``, reading the time from ``clock``."""
        self.db = database
        self.clock = clock

    async def create(
        self,
        person: str,
        *,
        scopes: Iterable[Scope] = DEFAULT_SCOPES,
        label: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """Make a token for ``person``; returns it and the token string (shown only here)."""
        wanted = set(scopes)
        unknown = wanted - set(SCOPES)
        if unknown or not wanted:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}")
        secret = secrets.token_urlsafe(32)
        row = ApiTokenRow(
            id=new_id("tk"),
            person=person,
            scopes=" ".join(s for s in SCOPES if s in wanted),
            label=label,
            secret_hash=_digest(secret),
            created_at=self.clock(),
            expires_at=expires_at,
            revoked_at=None,
            last_used_at=None,
        )
        async with self.db.session() as session:
            session.add(row)
        return _token(row), f"opl_{row.id}_{secret}"

    async def check(self, offered: str) -> ApiToken:
        """The active token ``offered`` is, marked as used.

        Raises:
            AuthenticationError: unknown, malformed, revoked or expired; the message says which
                (revoked or expired only to whoever holds the right secret).
        """
        shape = _SHAPE.match(offered)
        token_id, secret = shape.groups() if shape else ("", offered)
        table = ApiTokenRow.__table__
        async with self.db.transaction(write=False) as connection:
            row = (
                await connection.execute(select(table).where(table.c.id == token_id))
                if shape
                else None
            )
            found = row.first() if row is not None else None
        # Compared in constant time, and against a stand-in when there is no such token.
        stored = found.secret_hash if found is not None else _NO_MATCH
        if not hmac.compare_digest(stored, _digest(secret)) or found is None:
            raise AuthenticationError("unknown API token")
        token = _token(found)
        now = self.clock()
        status = token.status(now)
        if status == "revoked":
            raise AuthenticationError(f"API token {token.id} was revoked")
        if status == "expired":
            when = f"{token.expires_at:%Y-%m-%d %H:%M} UTC"
            raise AuthenticationError(f"API token {token.id} expired at {when}")
        if token.last_used_at is None or now - token.last_used_at >= _TOUCH_EVERY:
            async with self.db.transaction() as connection:
                await connection.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == token.id).values(last_used_at=now)
                )
            token = token.model_copy(update={"last_used_at": now})
        return token

    async def get(self, token_id: str) -> ApiToken | None:
        """The token with this id, whatever its status."""
        async with self.db.session() as session:
            row = await session.get(ApiTokenRow, token_id)
            return _token(row) if row is not None else None

    async def list_tokens(
        self, *, person: str | None = None, include_ended: bool = False
    ) -> list[ApiToken]:
        """Tokens, newest first: one person's or everyone's; active ones unless asked."""
        query = select(ApiTokenRow).order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id)
        if person is not None:
            query = query.where(ApiTokenRow.person == person)
        async with self.db.session() as session:
            found = [_token(row) for row in await session.scalars(query)]
        now = self.clock()
        return [t for t in found if include_ended or t.status(now) == "active"]

    async def revoke(self, token_id: str, *, person: str | None = None) -> bool:
        """Revoke a token (only ``person``'s, if given); false if no such unrevoked token."""
        which: ColumnElement[bool] = ApiTokenRow.id == token_id
        if person is not None:
            which = which & (ApiTokenRow.person == person)
        async with self.db.session() as session:
            result = await session.execute(
                update(ApiTokenRow)
                .where(which, ApiTokenRow.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]
