"""Who the API acts for: per-person tokens, the admin token, scopes, sessions, ``via``.

No path lets a caller decide, write or launch as a person other than the one the
credential names; the admin token speaks for nobody and decides only where policy says.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import text

from bot.api._auth import session_key
from bot.errors import DecisionRefusedError
from bot.events import ADMIN, Identity, Reply, utcnow
from bot.model import ScriptedModel
from bot.policy import ApprovalRule, Person, Policy, load_policy
from bot.store import ApiTokens, ConsoleSessions
from tests.bot.api.harness import DEPLOY, TOKEN, Api, MakeApi, error_of, kinds


async def _stored(api: Api) -> tuple[int, int]:
    threads = await api.ops.store.list_threads()
    inbox = len(api.dispatcher.of("process"))
    return len(threads), inbox


# ---------------------------------------------------------------- speaking for someone else


async def test_a_person_s_token_cannot_speak_for_anyone_else(api: Api) -> None:
    thread_id, request_id = await api.paused_on_deploy(user="dev-2")
    before = await _stored(api)
    dev = await api.person("dev-1")
    for path, body in [
        ("/api/threads", {"text": "deploy checkout 1.4.2 to production", "user": "oncall-1"}),
        (f"/api/threads/{thread_id}/messages", {"text": "approve it", "user": "oncall-1"}),
        (f"/api/human-requests/{request_id}", {"decision": "approve", "actor": "oncall-1"}),
        (f"/api/threads/{thread_id}/pause", {"actor": "oncall-1"}),
        (f"/api/threads/{thread_id}/resume", {"actor": "oncall-1"}),
    ]:
        response = await dev.post(path, json=body)
        message = error_of(response, 403)
        assert "web:dev-1 may not speak for web:oncall-1" in message, path
    assert await _stored(api) == before
    assert (await api.ops.store.human_request(request_id)).status == "pending"


async def test_a_person_deciding_as_themselves_is_checked_by_policy(api: Api) -> None:
    # dev-1 asked; their own token may not approve it (not on call, and four-eyes).
    thread_id, request_id = await api.paused_on_deploy(user="dev-1")
    item = await api.decide(request_id, "approve", "dev-1")
    with pytest.raises(DecisionRefusedError, match="web:dev-1 may not decide"):
        await api.work(item)
    refused = (await api.thread(thread_id))["events"][-1]
    assert refused["kind"] == "decision_refused"
    assert refused["actor"]["channel"] == "web"
    assert refused["actor"]["user_id"] == "dev-1"
    assert refused["actor"]["auth"] == "token"
    assert refused["actor"]["via"] is None


async def test_four_eyes_holds_for_an_on_call_person_s_own_token(api: Api) -> None:
    thread_id, request_id = await api.paused_on_deploy(user="oncall-1")
    item = await api.decide(request_id, "approve", "oncall-1")
    with pytest.raises(DecisionRefusedError, match="four-eyes"):
        await api.work(item)
    item = await api.decide(request_id, "approve", "oncall-2")
    await api.work(item)
    thread = await api.thread(thread_id)
    [response] = [e for e in thread["events"] if e["kind"] == "human_response"]
    assert response["actor"]["user_id"] == "oncall-2"
    assert response["actor"]["auth"] == "token"
    [message] = [e for e in thread["events"] if e["kind"] == "user_message"]
    assert (message["sender"]["user_id"], message["sender"]["auth"]) == ("oncall-1", "token")


async def test_naming_yourself_is_still_accepted(api: Api) -> None:
    oncall = await api.person("oncall-2")
    thread_id, request_id = await api.paused_on_deploy(user="dev-1")
    response = await oncall.post(
        f"/api/human-requests/{request_id}", json={"decision": "approve", "actor": "oncall-2"}
    )
    assert response.status_code == 202, response.text
    await api.work(response.json()["inbox_item"])
    assert (await api.thread(thread_id))["status"] == "waiting"


async def test_the_principal_form_names_the_same_web_user(api: Api) -> None:
    """Regression: ``"actor": "web:dev-1"`` was read as the user ``web:dev-1`` (refused as
    ``web:web:dev-1``), though the docs name people by principal everywhere."""
    dev = await api.person("dev-1")
    response = await dev.post("/api/threads", json={"text": "what runs?", "user": "web:dev-1"})
    assert response.status_code == 201, response.text
    response = await dev.post("/api/threads", json={"text": "hi", "user": "web:oncall-1"})
    message = error_of(response, 403)
    assert "may not speak for web:oncall-1" in message and "web:web:" not in message


# ---------------------------------------------------------------- tokens that do not work


async def test_revoked_expired_and_unknown_tokens_get_401(api: Api) -> None:
    tokens = ApiTokens(api.ops.store.db)
    revoked = api.client_with(await api.mint("oncall-1"))
    assert (await revoked.get("/api/threads")).status_code == 200
    [listed] = await tokens.list_tokens(person="oncall-1")
    assert await tokens.revoke(listed.id)
    assert f"API token {listed.id} was revoked" in error_of(await revoked.get("/api/threads"), 401)

    expired = api.client_with(await api.mint("oncall-2", expires_at=utcnow() - timedelta(1)))
    assert "expired at" in error_of(await expired.get("/api/threads"), 401)
    response = await expired.post("/api/threads", json={"text": "hi"})
    assert "expired at" in error_of(response, 401)

    # The right id with a wrong secret is unknown, and says nothing about the token.
    wrong = api.client_with(f"opl_{listed.id}_" + "x" * 43)
    assert error_of(await wrong.get("/api/threads"), 401) == "unknown API token"
    garbled = api.client_with("opl_nonsense")
    assert error_of(await garbled.get("/api/threads"), 401) == "unknown API token"
    # Any other bearer that is not the admin token is unknown too (not "log in").
    stranger = api.client_with("nonsense")
    assert "unknown API token" in error_of(await stranger.get("/api/threads"), 401)
    assert await api.ops.store.list_threads() == []


async def test_a_token_expires_when_the_clock_says_so(api: Api) -> None:
    now = utcnow()
    clock = [now]
    tokens = ApiTokens(api.ops.store.db, clock=lambda: clock[0])
    _, secret = await tokens.create("dev-1", expires_at=now + timedelta(days=30))
    assert (await tokens.check(secret)).person == "dev-1"
    clock[0] = now + timedelta(days=30)
    with pytest.raises(Exception, match="expired"):
        await tokens.check(secret)


async def test_only_a_hash_of_the_token_is_stored(api: Api) -> None:
    secret_token = await api.mint("dev-1", label="laptop")
    async with api.ops.store.db.session() as session:
        rows = (await session.execute(text("SELECT * FROM api_tokens"))).mappings().all()
    [row] = rows
    secret = secret_token.split("_", 3)[3]
    assert row["id"] == "_".join(secret_token.split("_")[1:3])
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in row.values())
    assert row["person"] == "dev-1"
    assert row["scopes"] == "read act decide"
    client = api.client_with(secret_token)
    assert (await client.get("/api/threads")).status_code == 200


# ---------------------------------------------------------------- scopes

APPROVE = {"decision": "approve"}


@pytest.mark.parametrize(
    ("scopes", "method", "path", "body", "lacking"),
    [
        (["read"], "POST", "/api/threads", {"text": "hi"}, "act"),
        (["act"], "GET", "/api/threads", None, "read"),
        (
            ["read", "act"],
            "POST",
            "/api/human-requests/{request}",
            {"decision": "approve"},
            "decide",
        ),
        (["decide"], "POST", "/api/threads/{thread}/pause", {}, "act"),
        (["decide"], "GET", "/api/human-requests", None, "read"),
        (["act", "decide"], "GET", "/api/tools", None, "read"),  # it shows who approves
    ],
)
async def test_a_token_without_the_scope_gets_403(
    api: Api, scopes: list[Any], method: str, path: str, body: Any, lacking: str
) -> None:
    thread_id, request_id = await api.paused_on_deploy(user="dev-1")
    client = api.client_with(await api.mint("oncall-1", scopes=scopes))
    path = path.format(thread=thread_id, request=request_id)
    response = await client.request(method, path, json=body)
    assert error_of(response, 403) == f"token lacks the {lacking!r} scope"
    assert (await api.ops.store.human_request(request_id)).status == "pending"


# ---------------------------------------------------------------- service tokens


async def test_a_service_token_speaks_for_another_and_records_via(api: Api) -> None:
    token = await api.mint("chatbridge", scopes=["read", "act", "decide", "service"])
    [made] = await ApiTokens(api.ops.store.db).list_tokens(person="chatbridge")
    bridge = api.client_with(token)
    thread_id, request_id = await api.paused_on_deploy(user="dev-1")
    response = await bridge.post(
        f"/api/human-requests/{request_id}", json={"decision": "approve", "actor": "oncall-1"}
    )
    assert response.status_code == 202, response.text
    await api.work(response.json()["inbox_item"])
    thread = await api.thread(thread_id)
    [decided] = [e for e in thread["events"] if e["kind"] == "human_response"]
    assert decided["actor"]["user_id"] == "oncall-1"
    assert decided["actor"]["auth"] == "token"
    assert decided["actor"]["via"] == f"token:{made.id}"
    assert thread["status"] == "waiting"

    # Without a name it speaks as itself, which policy does not know as anyone.
    launched = await bridge.post("/api/threads", json={"text": "what runs in staging?"})
    await api.work(launched.json()["inbox_item"])
    thread = await api.thread(launched.json()["id"])
    sender = thread["events"][0]["sender"]
    assert (sender["user_id"], sender["via"]) == ("chatbridge", None)


# ---------------------------------------------------------------- the admin token


async def test_the_admin_token_speaks_for_nobody(api: Api) -> None:
    _, request_id = await api.paused_on_deploy()
    for path, body in [
        ("/api/threads", {"text": "hi", "user": "dev-1"}),
        (f"/api/human-requests/{request_id}", {"decision": "approve", "actor": "oncall-1"}),
    ]:
        response = await api.client.post(path, json=body)
        assert "the admin token speaks for nobody" in error_of(response, 403)
    assert (await api.ops.store.human_request(request_id)).status == "pending"


async def test_an_admin_decision_is_recorded_as_admin_and_refused_in_production(
    api: Api,
) -> None:
    thread_id, request_id = await api.paused_on_deploy()
    response = await api.client.post(
        f"/api/human-requests/{request_id}", json={"decision": "approve"}
    )
    assert response.status_code == 202, response.text
    with pytest.raises(DecisionRefusedError, match="admin:admin may not decide"):
        await api.work(response.json()["inbox_item"])
    thread = await api.thread(thread_id)
    refused = thread["events"][-1]
    assert refused["kind"] == "decision_refused"
    assert refused["actor"]["channel"] == "admin"
    assert refused["actor"]["user_id"] == "admin"
    assert refused["actor"]["auth"] == "admin"
    assert thread["status"] == "paused"


def _admin_may_approve(policy: Policy) -> Policy:
    production = policy.rules[0]
    assert "production" in production.environments
    named = ApprovalRule.model_validate(
        {**production.model_dump(), "approvers": ("role:oncall", "admin")}
    )
    return policy.model_copy(update={"rules": (named, *policy.rules[1:])})


async def test_an_admin_decision_counts_where_a_rule_names_admin(make_api: MakeApi) -> None:
    api = await make_api(
        ScriptedModel([DEPLOY, Reply(text="deployed")]),
        policy=_admin_may_approve(load_policy()),
    )
    thread_id, request_id = await api.paused_on_deploy()
    response = await api.client.post(
        f"/api/human-requests/{request_id}", json={"decision": "approve", "comment": "break-glass"}
    )
    await api.work(response.json()["inbox_item"])
    thread = await api.thread(thread_id)
    [decided] = [e for e in thread["events"] if e["kind"] == "human_response"]
    assert (decided["actor"]["channel"], decided["actor"]["auth"]) == ("admin", "admin")
    call = next(e for e in thread["events"] if e["kind"] == "tool_call")
    assert call["approved_by"] == "admin:admin"
    assert "decision_refused" not in kinds(thread)


# ---------------------------------------------------------------- console sessions


async def _session_client(api: Api, **start: Any) -> httpx2.AsyncClient:
    """A browser signed in to a console session started with ``start``."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    _, secret = await ConsoleSessions(api.ops.store.db).start(
        key_id=app.state.session_key_id, **start
    )
    # The cookie the console's sign-in sets (Starlette's session): the secret, signed.
    payload = base64.b64encode(json.dumps({"sid": secret}).encode())
    cookie = TimestampSigner(session_key(TOKEN)).sign(payload).decode()
    client = api.client_with("unused")
    del client.headers["authorization"]
    client.cookies.set("session", cookie)
    return client


async def test_a_person_s_console_session_acts_only_as_that_person(api: Api) -> None:
    thread_id, request_id = await api.paused_on_deploy(user="dev-1")
    oncall = Identity(channel="web", user_id="oncall-1", auth="login-link")
    browser = await _session_client(api, method="login-code", identity=oncall)
    response = await browser.post(
        f"/api/human-requests/{request_id}", json={"decision": "approve", "actor": "oncall-2"}
    )
    assert "web:oncall-1 may not speak for web:oncall-2" in error_of(response, 403)
    response = await browser.post(f"/api/human-requests/{request_id}", json={"decision": "approve"})
    await api.work(response.json()["inbox_item"])
    thread = await api.thread(thread_id)
    [decided] = [e for e in thread["events"] if e["kind"] == "human_response"]
    assert (decided["actor"]["user_id"], decided["actor"]["auth"]) == ("oncall-1", "login-link")


async def test_an_admin_console_session_is_admin(api: Api) -> None:
    browser = await _session_client(api, method="api-token", identity=ADMIN)
    response = await browser.post("/api/threads", json={"text": "hi", "user": "dev-1"})
    assert "the admin token speaks for nobody" in error_of(response, 403)
    response = await browser.post("/api/threads", json={"text": "what runs in staging?"})
    assert response.status_code == 201, response.text
    await api.work(response.json()["inbox_item"])
    sender = (await api.thread(response.json()["id"]))["events"][0]["sender"]
    assert (sender["channel"], sender["auth"]) == ("admin", "admin")


async def test_an_sso_person_manages_the_tokens_of_the_person_the_policy_says_they_are(
    make_api: MakeApi,
) -> None:
    """A token speaks for a ``web:`` person; an SSO sign-in of that person makes theirs."""
    policy = load_policy()
    people = dict(policy.people)
    people["dev-1"] = Person(principals=(*people["dev-1"].principals, "oidc:dev-1@example.com"))
    api = await make_api(policy=policy.model_copy(update={"people": people}))
    known = Identity(channel="oidc", user_id="dev-1@example.com", auth="oidc")
    browser = await _session_client(api, method="oidc", identity=known)
    response = await browser.post("/api/tokens", json={"label": "laptop"})
    assert response.status_code == 201, response.text
    assert response.json()["person"] == "dev-1"
    listed = (await browser.get("/api/tokens")).json()["tokens"]
    assert [t["person"] for t in listed] == ["dev-1"]
    # Someone the policy does not know through SSO manages no one's tokens.
    stranger = Identity(channel="oidc", user_id="eve@example.com", auth="oidc")
    browser = await _session_client(api, method="oidc", identity=stranger)
    assert (await browser.post("/api/tokens", json={})).status_code in {400, 403}
