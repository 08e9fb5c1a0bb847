"""Console sign-in: one-time login codes and revocable sessions.

Only hashes of secrets are stored: a login code or a session secret read from the database
signs nobody in. A session is referred to by its public id (``cs_…``) to list or revoke it;
its secret travels only in the signed session cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, Index, String, and_, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from bot.events import new_id, utcnow
from bot.store._database import Database
from bot.store._tables import Base

__all__ = [
    "LOGIN_CODE_TTL",
    "SESSION_TTL",
    "ConsoleSession",
    "ConsoleSessionRow",
    "ConsoleSessions",
    "LoginCodeRow",
]

LOGIN_CODE_TTL = timedelta(minutes=15)
"""How long a printed login link works (once)."""
SESSION_TTL = timedelta(days=14)
"""How long a console session lasts unless revoked (as long as its cookie)."""
_TOUCH_EVERY = timedelta(minutes=1)
"""``last_seen_at`` is written at most this often, not on every request."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ConsoleSessionRow(Base):
    """A signed-in browser. General on purpose: later sign-in methods add rows, not tables."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str | None] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str | None] = mapped_column(String(16))
    """Which cookie-signing key signed it in: a session under another key is dead."""
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LoginCodeRow(Base):
    """A one-time login code, as ``opsloop run`` and ``opsloop sessions link`` print it."""

    __tablename__ = "console_login_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ConsoleSession(BaseModel):
    """A console session as listed; never its secret."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Public id (``cs_…``), to revoke it by."""
    user_name: str | None
    """Who signed in, where the method names a person (the API token names nobody)."""
    method: str
    """How it was authenticated: ``login-code`` or ``api-token``."""
    created_at: datetime
    """When it started."""
    last_seen_at: datetime
    """When it was last used (to the minute)."""
    expires_at: datetime
    """When it ends by itself."""
    revoked_at: datetime | None
    """When it was revoked (signed out, or by ``opsloop sessions revoke``)."""

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and now < self.expires_at


def _session(row: ConsoleSessionRow) -> ConsoleSession:
    return ConsoleSession(
        id=row.id,
        user_name=row.user_name,
        method=row.method,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class ConsoleSessions:
    """Login codes and console sessions in ``database``."""

    def __init__(self, database: Database) -> None:
        """Use ``database``."""
        self.db = database

    async def new_login_code(self, ttl: timedelta = LOGIN_CODE_TTL) -> str:
        """A fresh one-time login code; only its hash is kept."""
        code = secrets.token_urlsafe(16)
        now = utcnow()
        async with self.db.session() as session:
            session.add(
                LoginCodeRow(
                    code_hash=_digest(code), created_at=now, expires_at=now + ttl, used_at=None
                )
            )
        return code

    async def use_login_code(self, code: str) -> bool:
        """Spend ``code``: true once, for an unexpired code; false ever after."""
        now = utcnow()
        async with self.db.session() as session:
            result = await session.execute(
                update(LoginCodeRow)
                .where(
                    LoginCodeRow.code_hash == _digest(code),
                    LoginCodeRow.used_at.is_(None),
                    LoginCodeRow.expires_at > now,
                )
                .values(used_at=now)
            )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def start(
        self,
        *,
        method: str,
        user_name: str | None = None,
        key_id: str | None = None,
        ttl: timedelta = SESSION_TTL,
    ) -> tuple[ConsoleSession, str]:
        """Start a session; returns it and the secret for the cookie (shown only here)."""
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        row = ConsoleSessionRow(
            id=new_id("cs"),
            secret_hash=_digest(secret),
            user_name=user_name,
            method=method,
            key_id=key_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ttl,
            revoked_at=None,
        )
        async with self.db.session() as session:
            session.add(row)
        return _session(row), secret

    async def check(self, secret: str) -> ConsoleSession | None:
        """The active session whose secret is ``secret``, marked as seen; else ``None``.

        A read, on every authenticated request; the write of ``last_seen_at`` happens at most
        once a minute per session.
        """
        now = utcnow()
        table = ConsoleSessionRow.__table__
        async with self.db.transaction(write=False) as connection:
            row = (
                await connection.execute(
                    select(table).where(table.c.secret_hash == _digest(secret))
                )
            ).first()
        if row is None:
            return None
        found = ConsoleSession.model_validate(row, from_attributes=True)
        if not found.active(now):
            return None
        if now - found.last_seen_at >= _TOUCH_EVERY:
            async with self.db.transaction() as connection:
                await connection.execute(
                    update(ConsoleSessionRow)
                    .where(ConsoleSessionRow.id == found.id)
                    .values(last_seen_at=now)
                )
            found = found.model_copy(update={"last_seen_at": now})
        return found

    async def list_sessions(self, *, include_ended: bool = False) -> list[ConsoleSession]:
        """Sessions, newest first; only active ones unless ``include_ended``."""
        now = utcnow()
        query = select(ConsoleSessionRow).order_by(ConsoleSessionRow.created_at.desc())
        if not include_ended:
            query = query.where(
                ConsoleSessionRow.revoked_at.is_(None), ConsoleSessionRow.expires_at > now
            )
        async with self.db.session() as session:
            return [_session(row) for row in await session.scalars(query)]

    async def revoke(self, session_id: str) -> bool:
        """Revoke one session by its public id; false if there is no such active session."""
        return await self._revoke(ConsoleSessionRow.id == session_id) == 1

    async def revoke_secret(self, secret: str) -> bool:
        """Revoke the session with this secret (signing out)."""
        return await self._revoke(ConsoleSessionRow.secret_hash == _digest(secret)) == 1

    async def revoke_all(self) -> int:
        """Revoke every active session; how many there were."""
        return await self._revoke(ConsoleSessionRow.expires_at > utcnow())

    async def revoke_other_keys(self, key_id: str) -> int:
        """Revoke sessions signed in under another cookie key (the API token changed).

        Their cookies no longer verify anyway; this makes the list say so.
        """
        other = or_(ConsoleSessionRow.key_id.is_(None), ConsoleSessionRow.key_id != key_id)
        return await self._revoke(and_(other, ConsoleSessionRow.expires_at > utcnow()))

    async def _revoke(self, which: ColumnElement[bool]) -> int:
        async with self.db.session() as session:
            result = await session.execute(
                update(ConsoleSessionRow)
                .where(which, ConsoleSessionRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return int(result.rowcount)  # type: ignore[attr-defined]
