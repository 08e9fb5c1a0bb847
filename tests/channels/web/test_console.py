"""The web console in-process: sign-in as a person, sessions, pages, escaping, delivery.

The app runs with its lifespan over ``httpx2.ASGITransport`` on a real SQLite database and
the offline model. The dispatcher only records what the API enqueued; the test then does
the worker's job itself (``workers.jobs.process_item``, ``deliver_thread``) in the same loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from sqlalchemy import text

from bot.api import _hooks, _routes, create_app
from bot.app import Opsloop
from bot.config import Settings, load_settings
from bot.model.offline import OfflineModel
from bot.store import ApiTokens, ConsoleSessions, Database
from channels import web
from channels.web import _account, _pages
from channels.web._render import status_label
from tests.fakes import RecordingDispatcher
from workers.jobs import deliver_thread, process_item

TOKEN = "console-test-token-0123456789"
SCRIPT = "<script>alert('owned')</script>"


@dataclass
class Console:
    client: httpx2.AsyncClient
    ops: Opsloop
    dispatcher: RecordingDispatcher
    browsers: list[httpx2.AsyncClient] = field(default_factory=list)
    """Clients of other browsers on the same server, closed with the app."""

    async def login(self, user: str = "dev-1") -> None:
        """Through a one-time link for ``web:<user>``, as ``opsloop login --as`` prints it."""
        code = await ConsoleSessions(self.ops.store.db).new_login_code(f"web:{user}")
        response = await self.client.get("/login", params={"code": code})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/"

    def browser(self) -> Console:
        """Another browser (its own cookies) on the same server."""
        client = httpx2.AsyncClient(
            transport=self.client._transport, base_url="http://console.test"
        )
        self.browsers.append(client)
        return Console(client, self.ops, self.dispatcher, self.browsers)

    async def csrf(self) -> str:
        """The CSRF token the console's pages carry for this browser."""
        html = (await self.client.get("/threads")).text
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
        assert found, "a signed-in page carries the CSRF token"
        return found[1]

    async def post_token(self, token: str) -> httpx2.Response:
        """The sign-in form, with the API token pasted in."""
        return await self.client.post(
            "/login",
            content=urlencode({"token": token}),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )

    async def act_as(self, user: str) -> httpx2.Response:
        """The development-identities switch, as console.js posts it."""
        headers = {"x-csrf-token": await self.csrf()} if "session" in self.client.cookies else {}
        return await self.client.post("/console/as", json={"user": user}, headers=headers)

    async def work(self) -> None:
        """Run every enqueued item as a worker would, then deliver what it produced."""
        while self.dispatcher.calls:
            kind, arg = self.dispatcher.calls.pop(0)
            if kind == "process":
                await process_item(self.ops, self.dispatcher, arg)
            elif kind == "deliver":
                assert await deliver_thread(self.ops, web.plugin.senders, arg) is None
            else:
                raise AssertionError(f"the console never asks to {kind}")

    async def thread(self, thread_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/threads/{thread_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def say(self, text: str, thread_id: str | None = None) -> str:
        """Post as the console does: no name in the body, the session says who."""
        if thread_id is None:
            response = await self.client.post("/api/threads", json={"text": text})
        else:
            response = await self.client.post(
                f"/api/threads/{thread_id}/messages", json={"text": text}
            )
        assert response.status_code in {201, 202}, response.text
        await self.work()
        thread: str = response.json()["id"]
        return thread

    async def decide(self, request_id: str, decision: str, **extra: Any) -> None:
        response = await self.client.post(
            f"/api/human-requests/{request_id}", json={"decision": decision, **extra}
        )
        assert response.status_code == 202, response.text
        await self.work()


MakeConsole = Callable[..., Awaitable[Console]]


@pytest.fixture
def console_settings(tmp_path: Path) -> Settings:
    return load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_API_TOKEN=TOKEN)


@pytest.fixture
async def make_console(
    sqlite_database: Database,
    make_ops: Callable[..., Awaitable[Opsloop]],
    console_settings: Settings,
) -> AsyncIterator[MakeConsole]:
    opened: list[tuple[httpx2.AsyncClient, Any]] = []
    consoles: list[Console] = []

    async def make(settings: Settings = console_settings) -> Console:
        ops = await make_ops(sqlite_database, OfflineModel())
        dispatcher = RecordingDispatcher()
        app = create_app(settings, ops=ops, dispatcher=dispatcher, plugins=(web.plugin,))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://console.test"
        )
        opened.append((client, lifespan))
        consoles.append(Console(client=client, ops=ops, dispatcher=dispatcher))
        return consoles[-1]

    yield make
    for console in consoles:
        for other in console.browsers:
            await other.aclose()
    for client, lifespan in opened:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def console(make_console: MakeConsole) -> Console:
    return await make_console()


def page_data(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="console-data">(.*?)</script>', html)
    assert found, "the chat page embeds its data"
    data: dict[str, Any] = json.loads(found[1])
    return data


# ---------------------------------------------------------------- signing in


async def test_the_login_link_starts_a_session_and_lands_on_the_chat(console: Console) -> None:
    await console.login()
    response = await console.client.get("/")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert 'id="composer"' in response.text
    assert "Sign out" in response.text


@pytest.mark.parametrize("query", ["?code=spent-or-made-up", "?code=", ""])
async def test_a_wrong_or_missing_code_starts_no_session(console: Console, query: str) -> None:
    response = await console.client.get(f"/login{query}")
    assert response.status_code == (401 if query else 200)  # the bare form is no failure
    assert "text/html" in response.headers["content-type"]
    said = "expired or was already used" if "code=" in query else "not signed in"
    assert said in response.text
    assert "opsloop login --as" in response.text  # tells people where links come from
    assert 'method="post" action="/login"' in response.text  # and offers the token form
    assert (await console.client.get("/")).status_code == 303


async def test_a_wrong_token_in_the_form_gets_401_and_no_session(console: Console) -> None:
    response = await console.post_token("wrong-token")
    assert response.status_code == 401
    assert "Invalid token" in response.text
    assert (await console.client.get("/")).status_code == 303
    response = await console.post_token(TOKEN)
    assert response.status_code == 303
    assert (await console.client.get("/")).status_code == 200


async def test_login_says_so_when_the_server_has_no_token(
    make_console: MakeConsole, tmp_path: Path
) -> None:
    console = await make_console(load_settings(OPSLOOP_HOME=str(tmp_path)))
    response = await console.post_token("anything")
    assert response.status_code == 401
    assert "No API token is configured" in response.text
    code = await ConsoleSessions(console.ops.store.db).new_login_code("web:dev-1")
    response = await console.client.get("/login", params={"code": code})
    assert response.status_code == 401
    assert "No API token is configured" in response.text


@pytest.mark.parametrize("path", ["/", "/?thread=th_x", "/threads", "/threads/th_x"])
async def test_pages_need_a_session(console: Console, path: str) -> None:
    response = await console.client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_the_api_needs_a_session(console: Console) -> None:
    response = await console.client.post("/api/threads", json={"text": "hi", "user": "dev-1"})
    assert response.status_code == 401
    assert console.dispatcher.of("process") == []


async def test_a_failed_login_ends_a_session_and_a_bare_one_keeps_it(console: Console) -> None:
    await console.login()
    response = await console.client.get("/login")
    assert response.status_code == 303  # signed in already: straight to the chat
    assert response.headers["location"] == "/"
    assert (await console.post_token("wrong")).status_code == 401
    assert (await console.client.get("/")).status_code == 303


async def test_logout_ends_the_session(console: Console) -> None:
    await console.login()
    response = await console.client.get("/logout")
    assert response.status_code == 200
    assert "You are signed out" in response.text
    assert (await console.client.get("/threads")).status_code == 303
    assert (await console.client.get("/api/threads")).status_code == 401


async def test_an_api_token_in_the_address_signs_nobody_in(console: Console) -> None:
    """Regression: ``GET /login?token=`` took the API token in the URL.

    The token then stayed in browser history and proxy logs; it is refused there now.
    """
    response = await console.client.get("/login", params={"token": TOKEN})
    assert response.status_code == 401
    assert "not accepted in a link" in response.text
    assert (await console.client.get("/")).status_code == 303
    assert (await console.client.get("/api/threads")).status_code == 401


async def test_a_login_link_works_once_and_only_while_fresh(console: Console) -> None:
    sessions = ConsoleSessions(console.ops.store.db)
    code = await sessions.new_login_code("web:dev-1")
    first = await console.client.get("/login", params={"code": code})
    assert first.status_code == 303
    # Opening the used link again in the same browser does not sign it out.
    reopened = await console.client.get("/login", params={"code": code})
    assert reopened.status_code == 401
    assert (await console.client.get("/api/threads")).status_code == 200
    console.client.cookies.clear()
    again = await console.client.get("/login", params={"code": code})
    assert again.status_code == 401
    assert "expired or was already used" in again.text
    stale = await sessions.new_login_code("web:dev-1", ttl=timedelta(seconds=-1))
    assert (await console.client.get("/login", params={"code": stale})).status_code == 401
    # Only hashes are kept: a copy of the database signs nobody in.
    async with console.ops.store.db.transaction(write=False) as connection:
        stored = (await connection.execute(text("SELECT * FROM console_login_codes"))).all()
        stored += (await connection.execute(text("SELECT * FROM console_sessions"))).all()
    assert len(stored) == 3
    assert not any(code in str(value) for row in stored for value in row)


async def test_signing_out_revokes_the_session_so_a_copied_cookie_is_refused(
    console: Console,
) -> None:
    """Regression: signing out only cleared the browser's cookie; a copy of it still worked."""
    await console.login()
    copied = console.client.cookies["session"]
    assert (await console.client.get("/logout")).status_code == 200
    replay = {"cookie": f"session={copied}"}
    assert (await console.client.get("/api/threads", headers=replay)).status_code == 401
    assert (await console.client.get("/threads", headers=replay)).status_code == 303
    [ended] = await ConsoleSessions(console.ops.store.db).list_sessions(include_ended=True)
    assert ended.revoked_at is not None and ended.method == "login-link"


async def test_a_revoked_session_is_refused_at_once(console: Console) -> None:
    """Regression: a console session could only be ended by rotating the API token."""
    await console.login()
    assert (await console.client.get("/api/threads")).status_code == 200
    sessions = ConsoleSessions(console.ops.store.db)
    [active] = await sessions.list_sessions()
    assert await sessions.revoke(active.id)
    assert (await console.client.get("/api/threads")).status_code == 401
    assert (await console.client.get("/")).status_code == 303
    assert await sessions.list_sessions() == []
    assert not await sessions.revoke(active.id)  # once


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
async def test_the_api_docs_need_a_token_or_a_session(console: Console, path: str) -> None:
    """Regression: the OpenAPI schema and the interactive docs answered without a token."""
    response = await console.client.get(path)
    assert response.status_code == 401
    assert response.json()["error"].startswith("authentication required")
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert (await console.client.get(path, headers=bearer)).status_code == 200
    await console.login()
    response = await console.client.get(path)
    assert response.status_code == 200
    if path == "/openapi.json":
        assert "/api/threads" in response.json()["paths"]
    else:
        assert "/openapi.json" in response.text


OPEN_PATHS = {"/healthz", "/readyz", "/login", "/logout", "/static", "/hooks/{name}"}
"""What the README says answers without a token (besides Slack's and email's own routes)."""


async def test_everything_else_needs_a_token_or_a_session(console: Console) -> None:
    """Every route of the app, unauthenticated: 401, or the console's redirect to sign in."""
    app = console.client._transport.app  # type: ignore[attr-defined]
    # The app's own routes, and those of the routers it includes.
    routes = [
        *app.routes,
        *_routes.router.routes,
        *_hooks.router.routes,
        *_pages.router.routes,
        *_account.router.routes,
    ]
    checked = 0
    for route in routes:
        path = getattr(route, "path", "")
        if path in OPEN_PATHS:
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        gone = 404 if path == "/console/as" else None  # no switch without dev identities
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            response = await console.client.request(method, url, json={})
            redirected = response.status_code == 303 and response.headers["location"] == "/login"
            assert response.status_code in {401, gone} or redirected, (method, path, response)
            checked += 1
    assert checked >= 15
    assert console.dispatcher.calls == []


async def test_pages_carry_strict_security_headers(console: Console) -> None:
    await console.login()
    for path in ("/", "/threads", "/logout", "/login"):
        headers = (await console.client.get(path)).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


async def test_static_files_are_served_and_nothing_comes_from_the_internet(
    console: Console,
) -> None:
    for name in ("console.css", "chat.css", "api.js", "console.js", "chat.js", "chat-view.js"):
        response = await console.client.get(f"/static/{name}")
        assert response.status_code == 200, name
    root = Path(web.__file__).parent
    for path in [*root.glob("templates/*.html"), *root.glob("static/*")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path.name
        assert "innerHTML" not in text, path.name


# ---------------------------------------------------------------- who you are


async def test_a_login_link_for_dev_1_signs_in_as_dev_1_and_the_page_says_so(
    console: Console,
) -> None:
    await console.login("dev-1")
    html = (await console.client.get("/")).text
    assert page_data(html)["principal"] == "web:dev-1"
    whoami = html[html.index('id="whoami"') : html.index("</div>", html.index('id="whoami"'))]
    assert '<span class="whoami-name" title="web:dev-1">dev-1</span>' in whoami
    assert ">login-link</span>" in whoami
    assert '<span class="role">developer</span>' in whoami
    assert 'href="/logout">Sign out</a>' in html
    # No way to be anyone else: no switch, no banner.
    for absent in ('id="acting-as"', "acting-user", "Acting as", 'id="dev-banner"'):
        assert absent not in html, absent
    [session] = await ConsoleSessions(console.ops.store.db).list_sessions()
    assert (session.principal, session.auth) == ("web:dev-1", "login-link")


async def test_the_api_token_form_signs_in_the_admin_not_a_person(console: Console) -> None:
    assert (await console.post_token(TOKEN)).status_code == 303
    html = (await console.client.get("/")).text
    assert page_data(html)["principal"] == "admin:admin"
    assert '<span class="whoami-name" title="admin:admin">admin</span>' in html
    assert '<span class="role none">no role</span>' in html
    [session] = await ConsoleSessions(console.ops.store.db).list_sessions()
    assert (session.principal, session.auth, session.method) == ("admin:admin", "admin", "admin")


async def test_a_new_sign_in_replaces_the_session_and_its_person(console: Console) -> None:
    await console.login("dev-1")
    await console.login("oncall-1")
    assert page_data((await console.client.get("/")).text)["principal"] == "web:oncall-1"
    [active] = await ConsoleSessions(console.ops.store.db).list_sessions()
    assert active.principal == "web:oncall-1"


async def test_there_is_no_acting_as_switch_without_development_identities(
    console: Console,
) -> None:
    await console.login("dev-1")
    response = await console.act_as("oncall-1")
    assert response.status_code == 404
    assert page_data((await console.client.get("/")).text)["principal"] == "web:dev-1"
    [session] = await ConsoleSessions(console.ops.store.db).list_sessions()
    assert (session.principal, session.auth) == ("web:dev-1", "login-link")


@pytest.fixture
def dev_identities(tmp_path: Path) -> Settings:
    return load_settings(
        OPSLOOP_HOME=str(tmp_path), OPSLOOP_API_TOKEN=TOKEN, OPSLOOP_DEV_IDENTITIES="true"
    )


async def test_with_development_identities_a_banner_shows_and_the_switch_works(
    make_console: MakeConsole, dev_identities: Settings
) -> None:
    console = await make_console(dev_identities)
    assert (await console.act_as("oncall-1")).status_code == 401  # still needs a session
    await console.login("dev-1")
    for path in ("/", "/threads", "/sessions", "/tokens"):
        html = (await console.client.get(path)).text
        assert 'class="dev-banner"' in html and "anyone can act as anyone" in html, path
    html = (await console.client.get("/")).text
    assert 'id="acting-user" name="user" value="dev-1"' in html
    for user in ("dev-1", "oncall-1"):
        assert f'<option value="{user}">' in html

    response = await console.act_as("oncall-1")
    assert response.status_code == 200, response.text
    assert response.json() == {"user": "oncall-1", "principal": "web:oncall-1", "roles": ["oncall"]}
    html = (await console.client.get("/threads")).text
    assert 'value="oncall-1"' in html and '<span class="role">oncall</span>' in html
    assert page_data((await console.client.get("/")).text)["principal"] == "web:oncall-1"
    [session] = await ConsoleSessions(console.ops.store.db).list_sessions()
    assert (session.principal, session.auth) == ("web:oncall-1", "dev")
    thread_id = await console.say("what is running in staging?")
    sender = (await console.thread(thread_id))["events"][0]["sender"]
    assert (sender["user_id"], sender["auth"]) == ("oncall-1", "dev")  # recorded as such

    for bad in ("", "two words", "bell\x07", "x" * 129):
        assert (await console.act_as(bad)).status_code == 422, bad
    no_token = await console.client.post("/console/as", json={"user": "dev-2"})
    assert no_token.status_code == 403
    assert page_data((await console.client.get("/")).text)["principal"] == "web:oncall-1"


async def test_the_chat_page_carries_the_policy_s_roles(console: Console) -> None:
    await console.login()
    html = (await console.client.get("/")).text
    assert "oncall-1" in page_data(html)["roles"]["oncall"]  # roles name people
    assert "<option" not in html  # nobody to pick from: you are who signed in


# ---------------------------------------------------------------- sessions page


async def test_the_sessions_page_lists_your_own_and_revokes_one(console: Console) -> None:
    laptop = console.browser()
    await laptop.login("dev-1")
    other = console.browser()
    await other.login("oncall-1")
    await console.login("dev-1")
    sessions = ConsoleSessions(console.ops.store.db)
    mine = {s.id: s for s in await sessions.list_sessions(principal="web:dev-1")}
    [theirs] = await sessions.list_sessions(principal="web:oncall-1")
    assert len(mine) == 2

    html = (await console.client.get("/sessions")).text
    assert "Your console sessions" in html
    for sid in mine:
        assert f'data-session="{sid}"' in html
    assert theirs.id not in html
    current = re.search(r'<tr data-session="(cs_\w+)" class="current">', html)
    assert current and current[1] in mine
    assert html.count("this browser") == 1
    [laptop_id] = set(mine) - {current[1]}

    # A form without this browser's CSRF token (another site's) revokes nothing.
    for form in ({}, {"csrf": "forged"}):
        response = await console.client.post(
            f"/sessions/{laptop_id}/revoke",
            content=urlencode(form),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 403
    cross_site = await console.client.post(
        f"/sessions/{laptop_id}/revoke",
        content=urlencode({"csrf": await console.csrf()}),
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "origin": "https://evil.example",
        },
    )
    assert cross_site.status_code == 403
    assert (await laptop.client.get("/api/threads")).status_code == 200

    # Someone else's session is not yours to revoke.
    response = await revoke(console, theirs.id)
    assert response.headers["location"] == "/sessions?revoked="
    assert (await other.client.get("/api/threads")).status_code == 200

    response = await revoke(console, laptop_id)
    assert response.status_code == 303
    assert response.headers["location"] == f"/sessions?revoked={laptop_id}"
    assert (await laptop.client.get("/api/threads")).status_code == 401
    shown = (await console.client.get(response.headers["location"])).text
    assert "revoked: its browser is signed out" in shown
    assert laptop_id not in shown.replace(f"Session <code>{laptop_id}</code>", "")

    # Revoking this browser's own session signs it out.
    response = await revoke(console, current[1])
    assert response.headers["location"] == "/login"
    assert (await console.client.get("/api/threads")).status_code == 401


async def test_the_admin_sees_and_revokes_everyone_s_sessions(console: Console) -> None:
    other = console.browser()
    await other.login("oncall-1")
    assert (await console.post_token(TOKEN)).status_code == 303
    html = (await console.client.get("/sessions")).text
    assert "Every console session" in html and "web:oncall-1" in html
    [theirs] = await ConsoleSessions(console.ops.store.db).list_sessions(principal="web:oncall-1")
    response = await revoke(console, theirs.id)
    assert response.headers["location"] == f"/sessions?revoked={theirs.id}"
    assert (await other.client.get("/api/threads")).status_code == 401


# ---------------------------------------------------------------- tokens page


async def post_form(console: Console, path: str, **fields: Any) -> httpx2.Response:
    """A console form, as the browser posts it (with this browser's CSRF token)."""
    return await console.client.post(
        path,
        content=urlencode({"csrf": await console.csrf(), **fields}, doseq=True),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


async def test_a_person_makes_a_token_sees_it_once_and_revokes_it(console: Console) -> None:
    await console.login("dev-1")
    response = await post_form(
        console, "/tokens", label="my laptop", scope=["read", "act"], expires="30d"
    )
    assert response.status_code == 201, response.text
    found = re.search(r'<code id="new-token-secret">(opl_(tk_\w+?)_[\w-]+)</code>', response.text)
    assert found, response.text
    secret, token_id = found[1], found[2]
    assert "shown only this once" in response.text

    listing = (await console.client.get("/tokens")).text
    assert f'data-token="{token_id}"' in listing and "my laptop" in listing
    assert secret not in listing and "opl_" not in listing  # shown once only

    # The token acts as dev-1, whatever the body says.
    bearer = {"authorization": f"Bearer {secret}"}
    api = console.browser()
    assert (await api.client.get("/api/threads", headers=bearer)).status_code == 200
    launched = await api.client.post("/api/threads", json={"text": "hi"}, headers=bearer)
    assert launched.status_code == 201, launched.text
    await console.work()
    thread = await console.thread(launched.json()["id"])
    sender = thread["events"][0]["sender"]
    assert (sender["user_id"], sender["auth"]) == ("dev-1", "token")
    as_other = await api.client.post(
        "/api/threads", json={"text": "hi", "user": "oncall-1"}, headers=bearer
    )
    assert as_other.status_code == 403

    response = await post_form(console, f"/tokens/{token_id}/revoke")
    assert response.status_code == 303
    assert response.headers["location"] == f"/tokens?revoked={token_id}"
    assert (await api.client.get("/api/threads", headers=bearer)).status_code == 401
    assert f'data-token="{token_id}"' not in (await console.client.get("/tokens")).text


async def test_tokens_are_a_person_s_own_with_no_more_than_their_scopes(
    console: Console,
) -> None:
    other = console.browser()
    await other.login("oncall-1")
    made = await post_form(other, "/tokens", scope=["read"])
    [theirs] = re.findall(r'data-token="(tk_\w+)"', made.text)
    await console.login("dev-1")
    page = (await console.client.get("/tokens")).text
    assert "Your API tokens" in page and theirs not in page
    assert 'value="admin"' not in page and 'value="service"' not in page
    for scopes in (["read", "admin"], ["service"], ["bogus"], []):
        response = await post_form(console, "/tokens", scope=scopes)
        assert response.status_code == 400, scopes
        assert "pick scopes among act, decide, read" in response.text
    assert (await post_form(console, "/tokens", scope=["read"], expires="soon")).status_code == 400
    forged = await console.client.post(
        "/tokens",
        content=urlencode({"scope": "read"}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert forged.status_code == 403
    refused = await post_form(console, f"/tokens/{theirs}/revoke")
    assert refused.headers["location"] == "/tokens?revoked="
    tokens = await tokens_of_db(console)
    assert [t.id for t in await tokens.list_tokens(person="dev-1")] == []
    assert [t.id for t in await tokens.list_tokens(person="oncall-1")] == [theirs]


async def test_the_admin_makes_tokens_for_people_and_sees_them_all(console: Console) -> None:
    assert (await console.post_token(TOKEN)).status_code == 303
    response = await post_form(console, "/tokens", user="oncall-1", scope=["read", "decide"])
    assert response.status_code == 201, response.text
    assert "it acts as web:oncall-1 with read, decide" in response.text
    nobody = await post_form(console, "/tokens", user="mallory", scope=["read"])
    assert nobody.status_code == 400 and "unknown person" in nobody.text
    page = (await console.client.get("/tokens")).text
    assert "Every API token" in page and "<td>web:oncall-1</td>" in page


async def tokens_of_db(console: Console) -> ApiTokens:
    return ApiTokens(console.ops.store.db)


async def test_a_body_naming_someone_else_is_refused(console: Console) -> None:
    """The console's session is one person: the API will not act as anyone else for it."""
    await console.login("dev-1")
    thread_id = await console.say("deploy checkout 1.4.2 to production")
    [request] = (await console.thread(thread_id))["pending_requests"]
    for path, body in (
        ("/api/threads", {"text": "hi", "user": "oncall-1"}),
        (f"/api/threads/{thread_id}/messages", {"text": "hi", "user": "oncall-1"}),
        (
            f"/api/human-requests/{request['request_id']}",
            {"decision": "approve", "actor": "oncall-1"},
        ),
    ):
        response = await console.client.post(path, json=body)
        assert response.status_code == 403, (path, response.text)
    assert (await console.thread(thread_id))["pending_requests"] != []


async def revoke(console: Console, session_id: str) -> httpx2.Response:
    return await console.client.post(
        f"/sessions/{session_id}/revoke",
        content=urlencode({"csrf": await console.csrf()}),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


# ---------------------------------------------------------------- a whole conversation


async def test_an_approval_flow_through_the_session_then_the_list_and_timeline(
    console: Console,
) -> None:
    await console.login("dev-1")
    thread_id = await console.say("deploy checkout 1.4.2 to production")
    thread = await console.thread(thread_id)
    [request] = thread["pending_requests"]
    await console.decide(request["request_id"], "approve")  # dev-1 is not an approver
    oncall = console.browser()
    await oncall.login("oncall-1")
    await oncall.decide(request["request_id"], "approve")
    thread = await console.thread(thread_id)
    kinds = [e["kind"] for e in thread["events"]]
    assert "decision_refused" in kinds
    assert kinds[-2:] == ["agent_reply", "status"]
    assert thread["status"] == "waiting"
    # The web sender took every message: nothing is left pending or failed.
    assert await console.ops.store.count_outbound("sent") >= 3
    assert await console.ops.store.count_outbound("pending") == 0
    assert await console.ops.store.count_outbound("failed") == 0

    listing = (await console.client.get("/threads")).text
    assert f'href="/threads/{thread_id}"' in listing
    assert "deploy checkout 1.4.2 to production" in listing
    # "waiting" in the API; the console says the agent answered (display only).
    assert (
        '<span class="badge status-waiting" data-status="waiting" '
        'title="the agent answered; waiting for the next message">answered</span>'
    ) in listing
    assert ">waiting<" not in listing
    assert 'href="/threads?status=waiting" title="the agent answered' in listing
    paused = (await console.client.get("/threads?status=paused")).text
    assert "No threads with status paused." in paused
    answered = (await console.client.get("/threads?status=waiting")).text
    assert f'href="/threads/{thread_id}"' in answered

    timeline = (await console.client.get(f"/threads/{thread_id}")).text
    assert timeline.count('class="event kind-model_call"') == 2
    assert "offline-patterns" in timeline
    assert "prompt <code>" in timeline
    assert 'approved by <span class="principal">web:oncall-1</span>' in timeline
    assert "may not decide request" in timeline  # the refusal, for the audit trail
    assert 'id="total-cost"' in timeline
    assert "expires" not in timeline  # decided: the outcome line says what happened
    assert 'data-status="running" title="the agent is working on it">working</span>' in timeline


async def test_a_thread_waiting_on_an_approver_says_so_in_the_list_and_timeline(
    console: Console,
) -> None:
    await console.login()
    thread_id = await console.say("deploy checkout 1.4.2 to production")
    assert (await console.thread(thread_id))["status"] == "paused"  # the API's value stays
    waiting = (
        'data-status="paused" title="a step waits for an approver&#39;s decision">'
        "waiting for approval</span>"
    )
    for path in ("/threads", "/threads?status=paused", f"/threads/{thread_id}"):
        assert waiting in (await console.client.get(path)).text, path
    timeline = (await console.client.get(f"/threads/{thread_id}")).text
    assert "· expires " in timeline  # still open: when it lapses matters
    assert "pending" in timeline


@pytest.mark.parametrize(
    ("status", "pending", "label"),
    [
        ("running", [], "working"),
        ("waiting", [], "answered"),
        ("paused", [], "paused"),
        ("paused", ["approval"], "waiting for approval"),
        ("paused", ["question"], "waiting for an answer"),
        ("paused", ["question", "approval"], "waiting for approval"),
        ("failed", [], "failed"),
        ("done", [], "done"),
    ],
)
def test_statuses_are_worded_for_people(status: str, pending: list[str], label: str) -> None:
    assert status_label(status, pending)[0] == label


async def test_an_unknown_thread_is_a_404_page(console: Console) -> None:
    await console.login()
    response = await console.client.get("/threads/th_nope")
    assert response.status_code == 404
    assert "No such thread" in response.text


# ---------------------------------------------------------------- escaping


async def test_messages_and_user_ids_are_escaped_everywhere(console: Console) -> None:
    await console.login("<b>mallory</b>")
    thread_id = await console.say(f"what is running in staging? {SCRIPT}")
    escaped = "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"
    for path in ("/threads", f"/threads/{thread_id}", "/"):
        html = (await console.client.get(path)).text
        assert SCRIPT not in html, path
        assert "<b>mallory</b>" not in html, path
        assert "&lt;b&gt;mallory&lt;/b&gt;" in html or "\\u003cb\\u003e" in html, path
    assert escaped in (await console.client.get(f"/threads/{thread_id}")).text
    assert page_data((await console.client.get("/")).text)["user"] == "<b>mallory</b>"
    sessions = (await console.client.get("/sessions")).text
    assert "<b>mallory</b>" not in sessions
