"""Who is calling the API: the admin token, a per-person token, or a console session.

Every request resolves to a :class:`Caller`: an identity someone authenticated, the scopes
it holds, and the per-person token it came with, if any. Routes act as the caller; a body
that names someone else is refused unless the caller holds the ``service`` scope (see
:func:`speaker`). The shared ``OPSLOOP_API_TOKEN`` is the admin credential (:data:`ADMIN`),
never a person.

The session cookie is signed with a key derived from the token, and carries only the
session's secret; the database says whether that session is still active, so a session
ends when it is revoked (signing out, ``opsloop sessions revoke``), when it expires, or
when the token changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from bot.errors import AuthenticationError
from bot.events import ADMIN, Identity
from bot.store import SCOPES, ApiTokens, ConsoleSession, ConsoleSessions, Scope

__all__ = [
    "PERSON_SCOPES",
    "SESSION_SECRET",
    "Caller",
    "console_session",
    "key_id",
    "need",
    "require_auth",
    "session_identity",
    "session_key",
    "sessions_of",
    "speaker",
    "token_matches",
    "tokens_of",
]

PERSON_SCOPES: frozenset[Scope] = frozenset({"read", "act", "decide"})
"""What a person signed in to the console may do."""

SESSION_SECRET = "sid"
"""The key of the session's secret in the signed cookie."""


def _token(request: Request) -> str | None:
    secret = request.app.state.settings.api_token
    return secret.get_secret_value() if secret is not None else None


def token_matches(request: Request, offered: str) -> bool:
    """Whether ``offered`` is the configured token (compared in constant time)."""
    token = _token(request)
    return token is not None and hmac.compare_digest(offered.encode(), token.encode())


def key_id(key: str) -> str:
    """A short, non-secret name for a cookie-signing key, kept with the sessions it signs."""
    return hashlib.sha256(f"key id:{key}".encode()).hexdigest()[:16]


def session_key(token: str | None) -> str:
    """The cookie-signing key: derived from the token, so a new token ends old sessions."""
    if token is None:
        return secrets.token_hex(32)
    return hmac.new(token.encode(), b"opsloop console session", hashlib.sha256).hexdigest()


def sessions_of(request: Request) -> ConsoleSessions:
    """The console sessions kept in the app's database."""
    return ConsoleSessions(request.app.state.ops.store.db)


async def console_session(request: Request) -> ConsoleSession | None:
    """The request's active console session, if its cookie names one (checked once a request)."""
    if "console_session" in request.scope.get("state", {}):
        found: ConsoleSession | None = request.state.console_session
        return found
    found = None
    secret = request.session.get(SESSION_SECRET)
    if _token(request) is not None and isinstance(secret, str) and secret:
        found = await sessions_of(request).check(secret)
    request.state.console_session = found
    return found


@dataclass(frozen=True)
class Caller:
    """Who is calling, as authenticated, and what they may do."""

    identity: Identity
    """The person (``web:<id>``, ``oidc:<id>``) or :data:`ADMIN`; ``auth`` says how."""
    scopes: frozenset[Scope]
    """What the credential allows."""
    token_id: str | None = None
    """The per-person token used, if any (``via`` names it when it speaks for another)."""

    @property
    def credential(self) -> str:
        """What the caller presented, in words for error messages."""
        return "session" if self.token_id is None and self.identity != ADMIN else "token"

    @property
    def is_admin(self) -> bool:
        """Whether it may manage everyone's tokens and read everything."""
        return "admin" in self.scopes

    def may(self, scope: Scope) -> bool:
        """Whether the credential holds ``scope`` (``admin`` reads too)."""
        return scope in self.scopes or (scope == "read" and self.is_admin)


def tokens_of(request: Request) -> ApiTokens:
    """The per-person tokens kept in the app's database."""
    return ApiTokens(request.app.state.ops.store.db)


def session_identity(session: ConsoleSession) -> Identity:
    """Whom a console session speaks for: the identity it signed in (or switched to).

    The API-token form signs in :data:`ADMIN`; a login link, ``web:<person>``; OpenID
    Connect, ``oidc:<person>`` with the IdP's groups. Each carries how it was authenticated.

    Raises:
        HTTPException: 401 for a session that names nobody (none is made any more).
    """
    if session.principal == ADMIN.principal:
        return ADMIN
    found = session.identity
    if found is None:
        raise HTTPException(401, "this console session names nobody: sign in again")
    return found


async def _resolve(request: Request) -> Caller:
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    offered = offered.strip() if scheme.lower() == "bearer" else ""
    if offered.startswith("opl_"):
        try:
            token = await tokens_of(request).check(offered)
        except AuthenticationError as exc:
            raise HTTPException(401, str(exc)) from None
        who = Identity(channel="web", user_id=token.person, display_name=token.person, auth="token")
        return Caller(who, frozenset(token.scopes), token.id)
    if offered and token_matches(request, offered):
        return Caller(ADMIN, frozenset(SCOPES))
    if offered and _token(request) is not None:
        raise HTTPException(401, "unknown API token: make one with `opsloop tokens create`")
    session = await console_session(request)
    if session is not None:
        identity = session_identity(session)
        return Caller(identity, frozenset(SCOPES) if identity == ADMIN else PERSON_SCOPES)
    if _token(request) is None:
        raise HTTPException(401, "no API token is configured (set OPSLOOP_API_TOKEN)")
    raise HTTPException(
        401, "authentication required: send 'Authorization: Bearer <token>' or log in"
    )


async def require_auth(request: Request) -> Caller:
    """The authenticated caller (resolved once a request); 401 when there is none."""
    found: Caller | None = getattr(request.state, "caller", None)
    if found is None:
        found = await _resolve(request)
        request.state.caller = found
    return found


def need(scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the caller, who must hold ``scope`` (403 otherwise)."""

    async def check(request: Request) -> Caller:
        caller = await require_auth(request)
        if not caller.may(scope):
            raise HTTPException(403, f"{caller.credential} lacks the {scope!r} scope")
        return caller

    return check


def speaker(caller: Caller, named: str | None) -> Identity:
    """Who a request speaks for: the caller, or the person ``named`` in its body.

    A body may name the caller (as well-behaved clients always did), or, with the
    ``service`` scope, another web user, who is then recorded with ``via`` the token.

    Raises:
        HTTPException: 403 when the body names someone the caller may not speak for.
    """
    me = caller.identity
    if named is not None and named.startswith("web:"):
        named = named.removeprefix("web:")  # the principal form names the same web user
    if named is None or named == me.principal or (me.channel == "web" and named == me.user_id):
        return me
    if me.principal == ADMIN.principal:
        raise HTTPException(
            403,
            f"the admin token speaks for nobody, so not for {named!r}: make them a token "
            f"(opsloop tokens create --user {named}) or leave the field out to act as admin",
        )
    if "service" not in caller.scopes or caller.token_id is None:
        raise HTTPException(
            403,
            f"{me.principal} may not speak for web:{named} (only a token with the 'service'"
            " scope may); leave the field out to act as yourself",
        )
    return Identity(
        channel="web",
        user_id=named,
        display_name=named,
        auth="token",
        via=f"token:{caller.token_id}",
    )
