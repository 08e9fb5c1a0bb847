"""Signing a browser in as one person, and the checks the console's own forms need.

Every way into the console ends here: a one-time login link (``opsloop login --as``), the
API token pasted into the sign-in form (the admin), and OpenID Connect. Each starts a fresh
session naming who signed in; whatever the browser held before is revoked first.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from bot.api import SESSION_SECRET, sessions_of
from bot.events import Identity
from bot.store import SESSION_TTL

__all__ = ["CSRF_FIELD", "check_csrf", "csrf_token", "end_session", "sign_in"]

CSRF_FIELD = "csrf"
"""The hidden form field (and key in the signed cookie) of the console's CSRF token."""


async def end_session(request: Request) -> None:
    """Revoke the session this cookie names, if any, and forget it."""
    secret = request.session.get(SESSION_SECRET)
    if isinstance(secret, str) and secret:
        await sessions_of(request).revoke_secret(secret)
    request.session.clear()
    request.state.console_session = None


async def sign_in(request: Request, who: Identity, *, ttl: timedelta | None = None) -> Response:
    """End any session this browser has, start a fresh one for ``who``; 303 to the chat.

    ``who.auth`` says how the person was authenticated (``login-link``, ``admin``,
    ``oidc``); it is kept with the session and on everything the session does. ``ttl``
    shortens the session (single sign-on's ``OPSLOOP_OIDC_SESSION_HOURS``).
    """
    await end_session(request)  # a fresh session: nothing carried over from before
    method = who.auth or "unknown"
    session, secret = await sessions_of(request).start(
        method=method,
        identity=who,
        key_id=request.app.state.session_key_id,
        ttl=min(ttl, SESSION_TTL) if ttl else SESSION_TTL,
    )
    request.session[SESSION_SECRET] = secret
    request.session[CSRF_FIELD] = secrets.token_urlsafe(24)
    request.state.console_session = session
    return RedirectResponse("/", status_code=303)


def csrf_token(request: Request) -> str:
    """This browser's CSRF token for the console's forms (made on first use)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(24)
        request.session[CSRF_FIELD] = token
    return token


def check_csrf(request: Request, offered: str | None) -> None:
    """403 unless ``offered`` is this browser's CSRF token and the request is same-origin.

    The session cookie is ``SameSite=Strict`` already; the token also stops a form posted
    from another site through a same-site path (a subdomain, an old browser).
    """
    expected = request.session.get(CSRF_FIELD)
    # Browsers say where a request comes from: Sec-Fetch-Site always; Origin is "null" under
    # the console's no-referrer policy, so only a real other origin counts against it.
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    own = {f"{request.url.scheme}://{request.url.netloc}", request.app.state.settings.console_url}
    if site not in {None, "same-origin", "none"} or origin not in {None, "null", *own}:
        raise HTTPException(403, "cross-site request refused")
    if not (
        isinstance(expected, str)
        and expected
        and offered
        and hmac.compare_digest(offered.encode(), expected.encode())
    ):
        raise HTTPException(403, "the form has expired: reload the page and try again")
