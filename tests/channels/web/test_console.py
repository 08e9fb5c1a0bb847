"""The web console in-process: sign-in, sessions, "acting as", pages, escaping, delivery.

The app runs with its lifespan over ``httpx2.ASGITransport`` on a real SQLite database and
the offline model. The dispatcher only records what the API enqueued; the test then does
the worker's job itself (``workers.jobs.process_item``, ``deliver_thread``) in the same loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
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
from channels.web import _pages
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

    async def login(self) -> None:
        """Through a one-time link, as ``opsloop run`` prints it."""
        code = await ConsoleSessions(self.ops.store.db).new_login_code()
        response = await self.client.get("/login", params={"code": code})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/"

    async def post_token(self, token: str) -> httpx2.Response:
        """The sign-in form, with the API token pasted in."""
        return await self.client.post(
            "/login",
            content=urlencode({"token": token}),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )

    async def act_as(self, user: str) -> httpx2.Response:
        return await self.client.post("/console/as", json={"user": user})

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

    async def as_person(self, user: str) -> dict[str, str]:
        """Headers that call the API as ``user`` (a console session acts only as its own
        person, so these helpers speak for people with their per-person tokens)."""
        _, token = await ApiTokens(self.ops.store.db).create(user)
        return {"Authorization": f"Bearer {token}"}

    async def say(self, text: str, user: str, thread_id: str | None = None) -> str:
        headers = await self.as_person(user)
        if thread_id is None:
            response = await self.client.post("/api/threads", json={"text": text}, headers=headers)
        else:
            response = await self.client.post(
                f"/api/threads/{thread_id}/messages", json={"text": text}, headers=headers
            )
        assert response.status_code in {201, 202}, response.text
        await self.work()
        thread: str = response.json()["id"]
        return thread

    async def decide(self, request_id: str, decision: str, actor: str, **extra: Any) -> None:
        response = await self.client.post(
            f"/api/human-requests/{request_id}",
            json={"decision": decision, **extra},
            headers=await self.as_person(actor),
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
        return Console(client=client, ops=ops, dispatcher=dispatcher)

    yield make
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
    assert "opsloop sessions link" in response.text  # tells people where links come from
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
    code = await ConsoleSessions(console.ops.store.db).new_login_code()
    response = await console.client.get("/login", params={"code": code})
    assert response.status_code == 401
    assert "No API token is configured" in response.text


@pytest.mark.parametrize("path", ["/", "/?thread=th_x", "/threads", "/threads/th_x"])
async def test_pages_need_a_session(console: Console, path: str) -> None:
    response = await console.client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_the_api_and_acting_as_need_a_session(console: Console) -> None:
    assert (await console.act_as("dev-1")).status_code == 401
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
    code = await sessions.new_login_code()
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
    stale = await sessions.new_login_code(ttl=timedelta(seconds=-1))
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
    assert ended.revoked_at is not None and ended.method == "login-code"


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
    routes = [*app.routes, *_routes.router.routes, *_hooks.router.routes, *_pages.router.routes]
    checked = 0
    for route in routes:
        path = getattr(route, "path", "")
        if path in OPEN_PATHS:
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            response = await console.client.request(method, url, json={})
            redirected = response.status_code == 303 and response.headers["location"] == "/login"
            assert response.status_code == 401 or redirected, (method, path, response.status_code)
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


# ---------------------------------------------------------------- acting as


async def test_the_console_acts_as_operator_until_someone_is_chosen(console: Console) -> None:
    await console.login()
    html = (await console.client.get("/")).text
    assert 'id="acting-user" name="user" value="operator"' in html
    assert page_data(html)["user"] == "operator"

    response = await console.act_as("oncall-1")
    assert response.status_code == 200
    assert response.json() == {"user": "oncall-1", "principal": "web:oncall-1", "roles": ["oncall"]}
    html = (await console.client.get("/threads")).text
    assert 'value="oncall-1"' in html
    assert '<span class="role">oncall</span>' in html
    assert page_data((await console.client.get("/")).text)["user"] == "oncall-1"


async def test_acting_as_refuses_ids_policy_could_not_name(console: Console) -> None:
    await console.login()
    for bad in ("", "two words", "bell\x07", "x" * 129):
        response = await console.act_as(bad)
        assert response.status_code == 422, bad
    assert page_data((await console.client.get("/")).text)["user"] == "operator"


async def test_the_chat_page_offers_the_policy_s_web_users_and_roles(console: Console) -> None:
    await console.login()
    html = (await console.client.get("/")).text
    for user in ("dev-1", "oncall-1"):
        assert f'<option value="{user}">' in html
    assert "oncall-1" in page_data(html)["roles"]["oncall"]  # roles name people


# ---------------------------------------------------------------- a whole conversation


async def test_an_approval_flow_through_the_session_then_the_list_and_timeline(
    console: Console,
) -> None:
    await console.login()
    thread_id = await console.say("deploy checkout 1.4.2 to production", "dev-1")
    thread = await console.thread(thread_id)
    [request] = thread["pending_requests"]
    await console.decide(request["request_id"], "approve", "dev-1")  # not an approver
    await console.decide(request["request_id"], "approve", "oncall-1")
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
    thread_id = await console.say("deploy checkout 1.4.2 to production", "dev-1")
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
    await console.login()
    assert (await console.act_as("<b>mallory</b>")).status_code == 200
    thread_id = await console.say(f"what is running in staging? {SCRIPT}", "dev-1")
    escaped = "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;"
    for path in ("/threads", f"/threads/{thread_id}", "/"):
        html = (await console.client.get(path)).text
        assert SCRIPT not in html, path
        assert "<b>mallory</b>" not in html, path
        assert "&lt;b&gt;mallory&lt;/b&gt;" in html or "\\u003cb\\u003e" in html, path
    assert escaped in (await console.client.get(f"/threads/{thread_id}")).text
    assert page_data((await console.client.get("/")).text)["user"] == "<b>mallory</b>"


async def test_a_console_session_never_speaks_for_a_user_the_body_names(console: Console) -> None:
    await console.login()  # a link that names nobody signs in as admin, who speaks for nobody
    for path, body in [
        ("/api/threads", {"text": "deploy checkout 1.4.2 to production", "user": "oncall-1"}),
        ("/api/human-requests/hr_x", {"decision": "approve", "actor": "oncall-1"}),
    ]:
        response = await console.client.post(path, json=body)
        assert response.status_code == 403, response.text
        assert "speaks for nobody" in response.json()["error"]
    assert await console.ops.store.list_threads() == []
