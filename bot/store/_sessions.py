"""Console sign-in: one-time login codes and revocable sessions.

Only hashes of secrets are stored: a login code or a session secret read from the database
signs nobody in. A session is referred to by its public id (``cs_…``) to list or revoke it;
its secret travels only in the signed session cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import JSON, ColumnElement, Index, String, and_, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from bot.events import Identity, new_id, utcnow
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
    principal: Mapped[str | None] = mapped_column(String(255))
    """Who is signed in (``web:dev-1``, ``oidc:ann@example.com``, ``admin:admin``)."""
    auth: Mapped[str | None] = mapped_column(String(40))
    """How that identity was authenticated (``login-link``, ``oidc``, ``admin``, ``dev``)."""
    groups: Mapped[list[str] | None] = mapped_column(JSON)
    """The identity provider's groups (OIDC), for policy roles such as ``oidc-group:sre``."""
    display_name: Mapped[str | None] = mapped_column(String(255))
    """How to show the person."""
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
    principal: Mapped[str | None] = mapped_column(String(255))
    """Whom the link signs in (``web:dev-1``); a code naming nobody signs nobody in."""
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
    """How the browser signed in: ``login-link``, ``admin`` (the API token), ``oidc``…"""
    principal: str | None = None
    """Who is signed in; ``None`` for a session from before sessions named anyone."""
    auth: str | None = None
    """How that identity was authenticated; ``dev`` once switched with development identities."""
    groups: tuple[str, ...] = ()
    """The identity provider's groups."""
    display_name: str | None = None
    """How to show the person."""
    created_at: datetime
    """When it started."""
    last_seen_at: datetime
    """When it was last used (to the minute)."""
    expires_at: datetime
    """When it ends by itself."""
    revoked_at: datetime | None
    """When it was revoked (signed out, or by ``opsloop sessions revoke``)."""

    @field_validator("groups", mode="before")
    @classmethod
    def _no_groups(cls, value: Any) -> Any:
        return () if value is None else value

    @property
    def identity(self) -> Identity | None:
        """Whom this session acts as, or ``None`` if it names nobody."""
        channel, _, user_id = (self.principal or "").partition(":")
        if not channel or not user_id:
            return None
        return Identity(
            channel=channel,
            user_id=user_id,
            display_name=self.display_name,
            groups=self.groups,
            auth=self.auth,
        )

    def active(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and now < self.expires_at


def _auth_of(identity: Identity | None, method: str) -> str | None:
    if identity is None:
        return None
    return identity.auth or method


def _session(row: ConsoleSessionRow) -> ConsoleSession:
    return ConsoleSession(
        id=row.id,
        user_name=row.user_name,
        method=row.method,
        principal=row.principal,
        auth=row.auth,
        groups=tuple(row.groups or ()),
        display_name=row.display_name,
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

    async def new_login_code(self, principal: str, ttl: timedelta = LOGIN_CODE_TTL) -> str:
        """A fresh one-time login code that signs in ``principal``; only its hash is kept."""
        code = secrets.token_urlsafe(16)
        now = utcnow()
        async with self.db.session() as session:
            session.add(
                LoginCodeRow(
                    code_hash=_digest(code),
                    principal=principal,
                    created_at=now,
                    expires_at=now + ttl,
                    used_at=None,
                )
            )
        return code

    async def use_login_code(self, code: str) -> str | None:
        """Spend ``code``: the principal it signs in, once, while fresh; ``None`` ever after."""
        now = utcnow()
        async with self.db.session() as session:
            result = await session.execute(
                update(LoginCodeRow)
                .where(
                    LoginCodeRow.code_hash == _digest(code),
                    LoginCodeRow.used_at.is_(None),
                    LoginCodeRow.expires_at > now,
                    LoginCodeRow.principal.is_not(None),
                )
                .values(used_at=now)
                .returning(LoginCodeRow.principal)
            )
            principal: str | None = result.scalar_one_or_none()
        return principal

    async def start(
        self,
        *,
        method: str,
        identity: Identity | None = None,
        key_id: str | None = None,
        ttl: timedelta = SESSION_TTL,
    ) -> tuple[ConsoleSession, str]:
        """Start a session for ``identity``; returns it and the cookie's secret (shown only here).

        ``identity.auth`` (how it was authenticated) is kept with it; ``method`` says how the
        browser signed in.
        """
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        row = ConsoleSessionRow(
            id=new_id("cs"),
            secret_hash=_digest(secret),
            user_name=identity.label if identity else None,
            method=method,
            principal=identity.principal if identity else None,
            auth=_auth_of(identity, method),
            groups=list(identity.groups) if identity else None,
            display_name=identity.display_name if identity else None,
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

    async def act_as(self, session_id: str, identity: Identity, auth: str) -> ConsoleSession:
        """Make an active session act as ``identity`` from now on, authenticated by ``auth``.

        Only the development-identities switch does this; a real sign-in starts a new session.
        """
        values = {
            "principal": identity.principal,
            "auth": auth,
            "groups": list(identity.groups),
            "display_name": identity.display_name,
            "user_name": identity.label,
        }
        async with self.db.session() as session:
            await session.execute(
                update(ConsoleSessionRow).where(ConsoleSessionRow.id == session_id).values(values)
            )
            row = await session.get(ConsoleSessionRow, session_id)
            if row is None:
                raise LookupError(session_id)
            await session.refresh(row)
            return _session(row)

    async def list_sessions(
        self, *, include_ended: bool = False, principal: str | None = None
    ) -> list[ConsoleSession]:
        """Sessions, newest first; only active ones unless ``include_ended``.

        With ``principal``, only that identity's sessions.
        """
        now = utcnow()
        query = select(ConsoleSessionRow).order_by(ConsoleSessionRow.created_at.desc())
        if principal is not None:
            query = query.where(ConsoleSessionRow.principal == principal)
        if not include_ended:
            query = query.where(
                ConsoleSessionRow.revoked_at.is_(None), ConsoleSessionRow.expires_at > now
            )
        async with self.db.session() as session:
            return [_session(row) for row in await session.scalars(query)]

    async def revoke(self, session_id: str, *, principal: str | None = None) -> bool:
        """Revoke one session by its public id; false if there is no such active session.

        With ``principal``, only if the session is that identity's own.
        """
        which = ConsoleSessionRow.id == session_id
        if principal is not None:
            which = and_(which, ConsoleSessionRow.principal == principal)
        return await self._revoke(which) == 1

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
