"""Console sign-in through OpenID Connect, against a real OpenID Provider.

The provider is ``oidc-provider`` (tests/oidc/provider.mjs) on loopback; the console runs
in-process over ``httpx2.ASGITransport``. A second HTTP client plays the browser at the
provider: it follows the provider's redirects, fills in its login form and consents, and
hands the redirect back to the console. Nothing about the tokens is mocked: the console's
Authlib client fetches the discovery document and the JWKS, exchanges the code with the
PKCE verifier, and checks the ID token the provider signed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import pytest

from bot.api import create_app
from bot.app import Opsloop
from bot.config import load_settings
from bot.model.offline import OfflineModel
from bot.store import ConsoleSessions, Database
from channels import web
from channels.web._oidc import identity_from_claims
from tests.fakes import RecordingDispatcher
from tests.oidc.provider import (
    PASSWORDS,
    Provider,
    allow_loopback_http,
    free_port,
    running_provider,
)

TOKEN = "console-test-token-0123456789"
CONSOLE = "http://127.0.0.1:8000"
"""The console's public URL; the provider redirects the playing browser back to it."""
CALLBACK = f"{CONSOLE}/login/oidc/callback"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with running_provider(
        log, redirect_uris=[CALLBACK], post_logout_redirect_uris=[f"{CONSOLE}/logout"]
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch, _no_real_model_requests: None) -> None:
    allow_loopback_http(monkeypatch)


@dataclass
class Browser:
    """One browser: a cookie jar for the console and one for the provider."""

    console: httpx2.AsyncClient
    idp: httpx2.AsyncClient
    ops: Opsloop

    async def start(self) -> str:
        """Press "Sign in with SSO": the provider's authorization URL."""
        response = await self.console.get("/login/oidc")
        assert response.status_code == 302, response.text
        location: str = response.headers["location"]
        return location

    async def at_provider(self, url: str, user: str | None, *, consent: bool = True) -> str:
        """Do at the provider what a person does; the URL it sends the browser back to."""
        for _ in range(12):
            if url.startswith(CONSOLE):
                return url
            response = await self.idp.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            assert response.status_code == 200, response.text
            actions = re.findall(r'<form method="post" action="([^"]+)"', response.text)
            assert actions, response.text
            if actions[0].endswith("/login"):
                assert user is not None, "the provider asked to sign in again"
                form = {"username": user, "password": PASSWORDS[user]}
                response = await self.idp.post(urljoin(url, actions[0]), data=form)
            else:  # consent: Allow or Deny
                action = actions[0] if consent else actions[1]
                response = await self.idp.post(urljoin(url, action))
            assert response.is_redirect, response.text
            url = urljoin(url, response.headers["location"])
        raise AssertionError("the provider never sent the browser back")

    async def back(self, url: str) -> httpx2.Response:
        """Follow the provider's redirect back into the console."""
        parts = urlsplit(url)
        return await self.console.get(f"{parts.path}?{parts.query}")

    async def sign_in(self, user: str) -> httpx2.Response:
        return await self.back(await self.at_provider(await self.start(), user))


MakeBrowser = Callable[..., Awaitable[Browser]]


@pytest.fixture
async def make_browser(
    provider: Provider,
    sqlite_database: Database,
    make_ops: Callable[..., Awaitable[Opsloop]],
    tmp_path: Path,
) -> AsyncIterator[MakeBrowser]:
    opened: list[Any] = []
    apps: dict[str, Any] = {}

    async def make(**env: str) -> Browser:
        settings = load_settings(
            OPSLOOP_HOME=str(tmp_path),
            OPSLOOP_API_TOKEN=TOKEN,
            OPSLOOP_PUBLIC_URL=CONSOLE,
            **{**provider.settings(), **env},
        )
        key = repr(sorted(env.items()))
        if key not in apps:  # browsers share the console, as people do
            ops = await make_ops(sqlite_database, OfflineModel())
            app = create_app(
                settings, ops=ops, dispatcher=RecordingDispatcher(), plugins=(web.plugin,)
            )
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            opened.append(lifespan)
            apps[key] = (app, ops)
        app, ops = apps[key]
        console = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=CONSOLE)
        idp = httpx2.AsyncClient(follow_redirects=False, timeout=10)
        opened.extend([console, idp])
        return Browser(console=console, idp=idp, ops=ops)

    yield make
    for thing in reversed(opened):
        if isinstance(thing, httpx2.AsyncClient):
            await thing.aclose()
        else:
            await thing.__aexit__(None, None, None)


def _sessions(browser: Browser) -> ConsoleSessions:
    return ConsoleSessions(browser.ops.store.db)


# ---------------------------------------------------------------- the whole flow


async def test_a_person_signs_in_through_the_provider(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    page = await browser.console.get("/login")
    assert 'href="/login/oidc"' in page.text and "Sign in with SSO" in page.text

    # The console sends the browser to the provider with PKCE (S256), state and nonce.
    response = await browser.console.get("/login/oidc")
    assert response.status_code == 302
    authorize = urlsplit(response.headers["location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert f"{authorize.scheme}://{authorize.netloc}" == browser_issuer(browser)
    assert query["response_type"] == "code"
    assert query["client_id"] == "opsloop"
    assert query["redirect_uri"] == CALLBACK
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert query["state"] and query["nonce"]
    assert query["scope"].split() == ["openid", "email", "profile", "groups"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("opsloop_oidc=")
    for attribute in ("HttpOnly", "Path=/login/oidc", "SameSite=lax", "Max-Age=600"):
        assert attribute.lower() in cookie.lower()

    # At the provider: sign in as dev-1 and consent; it sends the browser back with a code.
    back = await browser.at_provider(response.headers["location"], "dev-1")
    assert "code=" in back and f"state={query['state']}" in back

    done = await browser.back(back)
    assert done.status_code == 200, done.text
    assert '<meta http-equiv="refresh" content="0; url=/">' in done.text
    assert "oidc:dev-1@example.com" in done.text
    assert "opsloop_oidc=" in done.headers.get("set-cookie", "")  # the transaction is dropped

    chat = await browser.console.get("/")
    assert chat.status_code == 200, chat.text
    [session] = await _sessions(browser).list_sessions()
    assert session.method == "oidc"
    who = session.identity
    assert who is not None
    assert who.principal == "oidc:dev-1@example.com"
    assert who.groups == ("developers",)
    assert who.auth == "oidc"
    assert who.display_name == "Dev One"
    lasts = session.expires_at - session.created_at
    assert timedelta(hours=11, minutes=59) < lasts <= timedelta(hours=12)


def browser_issuer(browser: Browser) -> str:
    settings = browser.console._transport.app.state.settings  # type: ignore[attr-defined]
    issuer: str = settings.oidc_issuer
    return issuer


async def test_a_wrong_password_stays_at_the_provider(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    url = await browser.start()
    response = await browser.idp.get(url, follow_redirects=True)
    [action] = re.findall(r'<form method="post" action="([^"]+)"', response.text)
    refused = await browser.idp.post(
        urljoin(str(response.url), action), data={"username": "dev-1", "password": "guess"}
    )
    assert refused.status_code == 401
    assert "Wrong username or password" in refused.text
    assert await _sessions(browser).list_sessions() == []


async def test_the_session_lasts_as_long_as_configured(make_browser: MakeBrowser) -> None:
    browser = await make_browser(OPSLOOP_OIDC_SESSION_HOURS="2")
    assert (await browser.sign_in("oncall-1")).status_code == 200
    [session] = await _sessions(browser).list_sessions()
    assert session.identity is not None
    assert session.identity.principal == "oidc:oncall-1@example.com"
    assert session.identity.groups == ("sre-oncall",)
    lasts = session.expires_at - session.created_at
    assert timedelta(hours=1, minutes=59) < lasts <= timedelta(hours=2)


async def test_another_claim_can_name_people(make_browser: MakeBrowser) -> None:
    browser = await make_browser(OPSLOOP_OIDC_USER_CLAIM="preferred_username")
    assert (await browser.sign_in("no-email")).status_code == 200
    [session] = await _sessions(browser).list_sessions()
    assert session.identity is not None
    assert session.identity.principal == "oidc:no-email"


# ---------------------------------------------------------------- what must not sign in


async def test_a_person_without_the_user_claim_is_told_why(make_browser: MakeBrowser) -> None:
    browser = await make_browser()  # names people by email; this account has none
    response = await browser.sign_in("no-email")
    assert response.status_code == 401
    assert "no usable &#39;email&#39; claim" in response.text
    assert "Sign in with SSO" in response.text
    assert await _sessions(browser).list_sessions() == []
    assert (await browser.console.get("/")).status_code == 303


async def test_denying_at_the_provider_signs_nobody_in(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    back = await browser.at_provider(await browser.start(), "dev-1", consent=False)
    assert "error=access_denied" in back
    response = await browser.back(back)
    assert response.status_code == 401
    assert "did not sign you in: The person denied the request" in response.text
    assert await _sessions(browser).list_sessions() == []


async def test_an_answer_to_a_sign_in_started_elsewhere_is_refused(
    make_browser: MakeBrowser,
) -> None:
    victim = await make_browser()
    attacker = await make_browser()
    # The attacker signs in at the provider and makes the victim's browser finish it
    # (login CSRF): the victim's browser never started that sign-in.
    back = await attacker.at_provider(await attacker.start(), "dev-1")
    response = await victim.back(back)
    assert response.status_code == 401
    assert "was not started here" in response.text
    assert await _sessions(victim).list_sessions() == []
    # The attacker's own browser could still use it: the refusal is about the state.
    assert (await attacker.back(back)).status_code == 200


async def test_a_state_that_does_not_match_is_refused(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    first = await browser.at_provider(await browser.start(), "dev-1")
    await browser.start()  # a second sign-in replaces the first one's transaction
    response = await browser.back(first)
    assert response.status_code == 401
    assert "was not started here" in response.text
    assert await _sessions(browser).list_sessions() == []


async def test_an_answer_is_used_once(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    back = await browser.at_provider(await browser.start(), "dev-1")
    assert (await browser.back(back)).status_code == 200
    again = await browser.back(back)
    assert again.status_code == 401
    assert len(await _sessions(browser).list_sessions()) == 1


async def test_an_unreachable_provider_is_a_page_not_a_500(
    make_browser: MakeBrowser,
) -> None:
    browser = await make_browser(OPSLOOP_OIDC_ISSUER=f"http://127.0.0.1:{free_port()}")
    response = await browser.console.get("/login/oidc")
    assert response.status_code == 502
    assert "could not be reached" in response.text


async def test_sso_is_off_without_an_issuer(make_browser: MakeBrowser) -> None:
    browser = await make_browser(OPSLOOP_OIDC_ISSUER="", OPSLOOP_OIDC_CLIENT_ID="")
    assert "Sign in with SSO" not in (await browser.console.get("/login")).text
    assert (await browser.console.get("/login/oidc")).status_code == 404
    assert (await browser.console.get("/login/oidc/callback?code=x&state=y")).status_code == 404


# ---------------------------------------------------------------- signing out


async def test_signing_out_ends_the_session_and_the_providers(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    done = await browser.sign_in("dev-1")
    assert done.status_code == 200
    response = await browser.console.get("/logout")
    assert response.status_code == 303
    end = urlsplit(response.headers["location"])
    query = {k: v[0] for k, v in parse_qs(end.query).items()}
    assert f"{end.scheme}://{end.netloc}{end.path}" == browser_issuer(browser) + "/session/end"
    assert query["post_logout_redirect_uri"] == f"{CONSOLE}/logout"
    assert query["id_token_hint"].count(".") == 2
    assert await _sessions(browser).list_sessions() == []  # ended here at once
    assert (await browser.console.get("/")).status_code == 303

    # The provider asks to confirm, then sends the browser back to the console's sign-out.
    page = await browser.idp.get(response.headers["location"])
    assert page.status_code == 200, page.text
    form = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)"', page.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
    assert form and xsrf, page.text
    url = urljoin(str(page.url), form[1])
    gone = await browser.idp.post(url, data={"xsrf": xsrf[1], "logout": "yes"})
    assert gone.is_redirect, gone.text
    assert gone.headers["location"].startswith(f"{CONSOLE}/logout")
    landed = await browser.back(gone.headers["location"])
    assert landed.status_code == 200
    assert "You are signed out" in landed.text

    # Signed out at the provider too: signing in again asks for the password again.
    again = await browser.at_provider(await browser.start(), "oncall-1")
    assert (await browser.back(again)).status_code == 200
    [session] = await _sessions(browser).list_sessions()
    assert session.identity is not None
    assert session.identity.principal == "oidc:oncall-1@example.com"


async def test_signing_out_of_a_link_session_stays_here(make_browser: MakeBrowser) -> None:
    browser = await make_browser()
    code = await _sessions(browser).new_login_code("web:dev-1")
    assert (await browser.console.get("/login", params={"code": code})).status_code == 303
    response = await browser.console.get("/logout")
    assert response.status_code == 200
    assert "You are signed out" in response.text


# ---------------------------------------------------------------- claims to an identity


def test_claims_become_an_oidc_identity_with_groups(tmp_path: Path) -> None:
    settings = load_settings(OPSLOOP_HOME=str(tmp_path))
    claims = {
        "sub": "abc",
        "email": "ann@example.com",
        "email_verified": True,
        "name": "Ann",
        "groups": ["sre-oncall", "", 7, "developers"],
    }
    who = identity_from_claims(claims, settings)
    assert who.principal == "oidc:ann@example.com"
    assert who.display_name == "Ann"
    assert who.email == "ann@example.com"
    assert who.groups == ("sre-oncall", "developers")
    assert who.auth == "oidc"
    unverified = identity_from_claims({**claims, "email_verified": "true"}, settings)
    assert unverified.email is None
    one_group = identity_from_claims({**claims, "groups": "admins"}, settings)
    assert one_group.groups == ("admins",)


def test_claims_without_the_user_claim_are_refused(tmp_path: Path) -> None:
    from channels.web._oidc import SignInProblem

    settings = load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_OIDC_USER_CLAIM="sub")
    assert identity_from_claims({"sub": 12345}, settings).principal == "oidc:12345"
    for bad in ({}, {"sub": ""}, {"sub": "  "}, {"sub": ["a"]}, {"sub": True}, {"sub": "x" * 201}):
        with pytest.raises(SignInProblem):
            identity_from_claims(bad, settings)

    by_email = load_settings(OPSLOOP_HOME=str(tmp_path))
    with pytest.raises(SignInProblem, match="not verified"):
        identity_from_claims({"email": "ann@example.com", "email_verified": False}, by_email)
    # Providers that do not say (Entra ID) are trusted to have checked it themselves.
    assert identity_from_claims({"email": "ann@example.com"}, by_email).email is None
