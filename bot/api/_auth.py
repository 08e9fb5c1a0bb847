"""Who may use the API: a bearer token, or a console session (a revocable database row).

The session cookie is signed with a key derived from the token, and carries only the
session's secret; the database says whether that session is still active, so a session
ends when it is revoked (signing out, ``opsloop sessions revoke``), when it expires, or
when the token changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request

from bot.store import ConsoleSession, ConsoleSessions

__all__ = [
    "SESSION_SECRET",
    "console_session",
    "key_id",
    "require_auth",
    "session_key",
    "sessions_of",
    "token_matches",
]

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


def _bearer_ok(request: Request) -> bool:
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_matches(request, offered.strip())


async def require_auth(request: Request) -> None:
    """Accept ``Authorization: Bearer <token>`` or an active console session; 401 otherwise."""
    if _token(request) is None:
        raise HTTPException(401, "no API token is configured (set OPSLOOP_API_TOKEN)")
    if _bearer_ok(request) or await console_session(request) is not None:
        return
    raise HTTPException(
        401, "authentication required: send 'Authorization: Bearer <token>' or log in"
    )
