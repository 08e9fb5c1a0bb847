"""Who may use the API: a bearer token, or a console session started with it."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import HTTPException, Request

__all__ = ["require_auth", "session_key", "token_matches"]


def _token(request: Request) -> str | None:
    secret = request.app.state.settings.api_token
    return secret.get_secret_value() if secret is not None else None


def token_matches(request: Request, offered: str) -> bool:
    """Whether ``offered`` is the configured token (compared in constant time)."""
    token = _token(request)
    return token is not None and hmac.compare_digest(offered.encode(), token.encode())


def session_key(token: str | None) -> str:
    """The cookie-signing key: derived from the token, so a new token ends old sessions."""
    if token is None:
        return secrets.token_hex(32)
    return hmac.new(token.encode(), b"opsloop console session", hashlib.sha256).hexdigest()


def require_auth(request: Request) -> None:
    """Accept ``Authorization: Bearer <token>`` or a console session; 401 otherwise."""
    if _token(request) is None:
        raise HTTPException(401, "no API token is configured (set OPSLOOP_API_TOKEN)")
    header = request.headers.get("authorization", "")
    scheme, _, offered = header.partition(" ")
    if scheme.lower() == "bearer" and token_matches(request, offered.strip()):
        return
    if request.session.get("authenticated") is True:
        return
    raise HTTPException(
        401, "authentication required: send 'Authorization: Bearer <token>' or log in"
    )
