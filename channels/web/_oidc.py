"""Single sign-on for the console: OpenID Connect, Authorization Code with PKCE (S256).

Authlib does the protocol: discovery, the authorization URL with its state, nonce and PKCE
challenge, the code exchange, and every check of the ID token (signature against the
provider's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``). This module keeps the sign-in's
transaction between the two redirects, turns the ID token's claims into an
:class:`~bot.events.Identity` (``oidc:<claim>``, with the provider's groups), and signs the
browser in.

The transaction rides in a cookie of its own: the console's session cookie is
``SameSite=Strict``, and a browser coming back from the provider (another site) does not
send it. This one is signed, lives ten minutes, is scoped to ``/login/oidc`` and is
``SameSite=Lax``, which a top-level GET from another site does carry.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc.errors import JoseError

from bot.config import Settings
from bot.events import Identity
from bot.store import SESSION_TTL
from channels.web._render import page
from channels.web._signin import sign_in

__all__ = ["CALLBACK_PATH", "add_oidc_routes", "identity_from_claims", "logout_url", "sso_on"]

CALLBACK_PATH = "/login/oidc/callback"
"""Where the provider sends the browser back: register ``<console URL>/login/oidc/callback``."""
TRANSACTION_COOKIE = "opsloop_oidc"
TRANSACTION_SECONDS = 600
"""How long a started sign-in may take at the provider."""
ID_TOKEN = "oidc_id_token"
"""The session cookie's key for the ID token, sent back as ``id_token_hint`` on logout."""
_MAX_ID_CHARS = 200

router = APIRouter(include_in_schema=False)


class SignInProblem(Exception):
    """A sign-in that cannot finish: shown on the sign-in page, never a 500."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SingleSignOn:
    """The configured OpenID Provider, as the routes use it."""

    client: StarletteOAuth2App
    settings: Settings
    cookies: URLSafeTimedSerializer

    @property
    def redirect_uri(self) -> str:
        """The callback address, as registered at the provider."""
        return self.settings.console_url + CALLBACK_PATH

    @property
    def session_ttl(self) -> timedelta:
        """How long a console session started by single sign-on lasts."""
        return min(SESSION_TTL, timedelta(hours=self.settings.oidc_session_hours))

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once), checked to be the issuer's own."""
        try:
            found: dict[str, Any] = await self.client.load_server_metadata()
        except (httpx2.HTTPError, ValueError) as exc:
            raise SignInProblem(
                f"The sign-in service could not be reached ({type(exc).__name__}); "
                "try again, or ask an administrator to check OPSLOOP_OIDC_ISSUER.",
                502,
            ) from None
        configured = str(self.settings.oidc_issuer).rstrip("/")
        if str(found.get("issuer", "")).rstrip("/") != configured:
            self.client.server_metadata = {}  # fetch again next time, it may be fixed
            raise SignInProblem(
                "The sign-in service's discovery document names another issuer than "
                "OPSLOOP_OIDC_ISSUER: ask an administrator to fix the setting.",
                502,
            )
        return found


def sso_on(request: Request) -> bool:
    """Whether single sign-on is configured (the sign-in page then offers it)."""
    return getattr(request.app.state, "oidc", None) is not None


def _sso(request: Request) -> SingleSignOn:
    sso: SingleSignOn | None = getattr(request.app.state, "oidc", None)
    if sso is None:
        raise HTTPException(404, "single sign-on is not configured (OPSLOOP_OIDC_ISSUER)")
    return sso


def _problem_page(request: Request, problem: SignInProblem) -> Response:
    response = page(
        request,
        "login.html",
        status=problem.status,
        problem=None,
        configured=request.app.state.settings.api_token is not None,
        signed_out=False,
        sso=True,
        sso_problem=str(problem),
    )
    response.delete_cookie(TRANSACTION_COOKIE, path="/login/oidc")
    return response


def identity_from_claims(claims: dict[str, Any], settings: Settings) -> Identity:
    """The person the provider vouched for, from the ID token's (already checked) claims.

    Raises:
        SignInProblem: the claim that names people is missing or not a short string, or it
            is ``email`` and the provider says that address is not verified.
    """
    claim = settings.oidc_user_claim
    value = claims.get(claim)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_ID_CHARS:
        raise SignInProblem(
            f"The sign-in service did not say who you are: your ID token has no usable "
            f"'{claim}' claim (OPSLOOP_OIDC_USER_CLAIM). Ask an administrator to add it "
            "at the provider, or to name another claim."
        )
    if claim == "email" and claims.get("email_verified") is False:
        raise SignInProblem(
            "The sign-in service has not verified your email address, which names you here: "
            "verify it there, then sign in again."
        )
    user_id = value.strip()
    raw_groups = claims.get(settings.oidc_groups_claim)
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    groups = (
        tuple(g for g in raw_groups if isinstance(g, str) and g)
        if isinstance(raw_groups, list)
        else ()
    )
    name = claims.get("name") or claims.get("preferred_username")
    email = claims.get("email")
    verified = claims.get("email_verified") is True
    return Identity(
        channel="oidc",
        user_id=user_id,
        display_name=name if isinstance(name, str) and name else user_id,
        email=email if verified and isinstance(email, str) and email else None,
        groups=groups,
        auth="oidc",
    )


@router.get("/login/oidc")
async def start(request: Request) -> Response:
    """Send the browser to the provider; the transaction waits in a short-lived cookie."""
    sso = _sso(request)
    try:
        await sso.metadata()
        started = await sso.client.create_authorization_url(sso.redirect_uri)
    except SignInProblem as problem:
        return _problem_page(request, problem)
    transaction = {
        "state": started["state"],
        "nonce": started["nonce"],
        "code_verifier": started["code_verifier"],
        "redirect_uri": sso.redirect_uri,
    }
    response = RedirectResponse(started["url"], status_code=302)
    response.set_cookie(
        TRANSACTION_COOKIE,
        sso.cookies.dumps(transaction),
        max_age=TRANSACTION_SECONDS,
        path="/login/oidc",
        httponly=True,
        samesite="lax",
        secure=sso.settings.console_url.startswith("https://"),
    )
    return response


def _transaction(request: Request, sso: SingleSignOn) -> dict[str, str]:
    """The sign-in this browser started, if it matches the provider's answer."""
    error = request.query_params.get("error")
    if error:
        said = request.query_params.get("error_description") or error
        raise SignInProblem(f"The sign-in service did not sign you in: {said[:300]}")
    raw = request.cookies.get(TRANSACTION_COOKIE, "")
    try:
        transaction = sso.cookies.loads(raw, max_age=TRANSACTION_SECONDS) if raw else None
    except BadSignature:
        transaction = None
    state = request.query_params.get("state", "")
    if (
        not isinstance(transaction, dict)
        or not state
        or not hmac.compare_digest(state.encode(), str(transaction.get("state", "")).encode())
    ):
        raise SignInProblem(
            "This sign-in was not started here, or took longer than ten minutes: sign in again."
        )
    return transaction


async def _verified_claims(sso: SingleSignOn, transaction: dict[str, str], code: str) -> Any:
    """Exchange the code (with the PKCE verifier); Authlib checks the ID token it returns."""
    try:
        await sso.metadata()
        token = await sso.client.fetch_access_token(
            code=code,
            redirect_uri=transaction["redirect_uri"],
            code_verifier=transaction["code_verifier"],
        )
        claims = await sso.client.parse_id_token(token, nonce=transaction["nonce"])
    except httpx2.HTTPError as exc:
        raise SignInProblem(
            f"The sign-in service could not be reached ({type(exc).__name__}); try again.", 502
        ) from None
    except (AuthlibBaseError, JoseError, ValueError) as exc:
        raise SignInProblem(f"The sign-in service's answer did not check out: {exc}") from None
    if claims is None:
        raise SignInProblem("The sign-in service sent no ID token (is 'openid' a scope?).")
    return token, claims


@router.get(CALLBACK_PATH)
async def callback(request: Request) -> Response:
    """The provider's answer: check it, sign the person in, then continue to the console."""
    sso = _sso(request)
    try:
        transaction = _transaction(request, sso)
        code = request.query_params.get("code", "")
        if not code:
            raise SignInProblem("The sign-in service sent no authorization code: sign in again.")
        token, claims = await _verified_claims(sso, transaction, code)
        who = identity_from_claims(dict(claims), sso.settings)
    except SignInProblem as problem:
        return _problem_page(request, problem)
    await sign_in(request, who, ttl=sso.session_ttl)
    request.session[ID_TOKEN] = token["id_token"]
    # A page, not a redirect: after a chain of redirects that began at another site the
    # browser would not send the SameSite=Strict session cookie on to "/"; a navigation this
    # page starts is a same-site one.
    response = page(request, "sso_continue.html", who=who)
    response.delete_cookie(TRANSACTION_COOKIE, path="/login/oidc")
    return response


async def logout_url(request: Request) -> str | None:
    """Where to send a browser signing out of an SSO session: the provider's end-session page.

    ``None`` when the session did not come from single sign-on, or the provider has no
    ``end_session_endpoint``. Call it before the session ends: it reads the ID token.
    """
    sso: SingleSignOn | None = getattr(request.app.state, "oidc", None)
    id_token = request.session.get(ID_TOKEN)
    if sso is None or not isinstance(id_token, str) or not id_token:
        return None
    try:
        if not (await sso.metadata()).get("end_session_endpoint"):
            return None
        made = await sso.client.create_logout_url(
            post_logout_redirect_uri=sso.settings.console_url + "/logout",
            id_token_hint=id_token,
            client_id=sso.client.client_id,
        )
    except (SignInProblem, RuntimeError):
        return None  # signed out here all the same; the provider's own session stays
    url: str = made["url"]
    return url


def _cookie_key(settings: Settings) -> str:
    """Signs the transaction cookie; shared by every process that has the same API token."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    if token is None:
        return secrets.token_hex(32)
    return hmac.new(token.encode(), b"opsloop oidc transaction", "sha256").hexdigest()


def add_oidc_routes(app: FastAPI) -> None:
    """Add the single sign-on routes, configured from ``app.state.settings`` (off when unset)."""
    settings: Settings = app.state.settings
    app.state.oidc = None
    if settings.oidc_issuer is not None:
        oauth = OAuth()
        client_kwargs: dict[str, Any] = {
            "scope": settings.oidc_scopes,
            "code_challenge_method": "S256",
            "timeout": 10.0,
        }
        if settings.oidc_client_secret is None:
            client_kwargs["token_endpoint_auth_method"] = "none"
        client = oauth.register(
            "oidc",
            client_id=settings.oidc_client_id,
            client_secret=(
                settings.oidc_client_secret.get_secret_value()
                if settings.oidc_client_secret
                else None
            ),
            server_metadata_url=settings.oidc_issuer.rstrip("/")
            + "/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )
        app.state.oidc = SingleSignOn(
            client=client,
            settings=settings,
            cookies=URLSafeTimedSerializer(_cookie_key(settings), salt="opsloop oidc"),
        )
    app.include_router(router)
