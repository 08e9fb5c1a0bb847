"""PROVISIONAL stand-in for h-console's sign-in (replaced when h-console is merged).

Signing a browser in as one person: ends any old session, starts a fresh one for ``who``.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from bot.api import SESSION_SECRET, sessions_of
from bot.events import Identity
from bot.store import SESSION_TTL

__all__ = ["end_session", "sign_in"]


async def end_session(request: Request) -> None:
    """Revoke the session this cookie names, if any, and forget it."""
    secret = request.session.get(SESSION_SECRET)
    if isinstance(secret, str) and secret:
        await sessions_of(request).revoke_secret(secret)
    request.session.clear()
    request.state.console_session = None


async def sign_in(request: Request, who: Identity, *, ttl: timedelta | None = None) -> Response:
    """End any session this browser has, start a fresh one for ``who``; 303 to the chat."""
    await end_session(request)
    session, secret = await sessions_of(request).start(
        method=who.auth or "unknown",
        user_name=who.principal,
        key_id=request.app.state.session_key_id,
        ttl=ttl or SESSION_TTL,
    )
    request.session[SESSION_SECRET] = secret
    request.state.console_session = session
    return RedirectResponse("/", status_code=303)
