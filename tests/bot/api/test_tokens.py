"""``/api/tokens``: a person manages their own tokens; admin anyone's; no scope is handed up."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.events import utcnow
from bot.store import ApiTokens
from tests.bot.api.harness import Api, error_of


async def test_a_person_makes_lists_and_revokes_their_own_tokens(api: Api) -> None:
    me = await api.person("dev-1")
    response = await me.post("/api/tokens", json={"label": "ci", "scopes": ["read"]})
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["token"].startswith(f"opl_{made['id']}_")
    assert (made["person"], made["scopes"], made["label"], made["status"]) == (
        "dev-1",
        ["read"],
        "ci",
        "active",
    )
    lasts = datetime.fromisoformat(made["expires_at"]) - datetime.fromisoformat(made["created_at"])
    assert lasts == timedelta(days=90)
    fresh = api.client_with(made["token"])
    assert (await fresh.get("/api/threads")).status_code == 200

    listed = (await me.get("/api/tokens")).json()["tokens"]
    assert made["id"] in [t["id"] for t in listed]
    assert all(t["person"] == "dev-1" and "token" not in t for t in listed)
    assert all("secret" not in key for t in listed for key in t)

    response = await me.delete(f"/api/tokens/{made['id']}")
    assert response.json()["status"] == "revoked"
    assert "was revoked" in error_of(await fresh.get("/api/threads"), 401)
    assert made["id"] not in [t["id"] for t in (await me.get("/api/tokens")).json()["tokens"]]
    ended = (await me.get("/api/tokens", params={"all": "true"})).json()["tokens"]
    assert made["id"] in [t["id"] for t in ended]


async def test_a_person_cannot_touch_other_people_s_tokens(api: Api) -> None:
    theirs = await api.mint("oncall-1")
    [their_token] = await ApiTokens(api.ops.store.db).list_tokens(person="oncall-1")
    me = await api.person("dev-1")
    response = await me.post("/api/tokens", json={"user": "oncall-1"})
    assert "only admin" in error_of(response, 403)
    response = await me.get("/api/tokens", params={"user": "oncall-1"})
    assert "only admin" in error_of(response, 403)
    listed = (await me.get("/api/tokens")).json()["tokens"]
    assert their_token.id not in [t["id"] for t in listed]
    error_of(await me.delete(f"/api/tokens/{their_token.id}"), 404)
    assert (await api.client_with(theirs).get("/api/threads")).status_code == 200


async def test_no_one_hands_out_a_scope_they_lack(api: Api) -> None:
    me = await api.person("dev-1")  # read, act, decide
    response = await me.post("/api/tokens", json={"scopes": ["read", "service"]})
    assert "scopes you lack: ['service']" in error_of(response, 403)
    reader = api.client_with(await api.mint("dev-1", scopes=["read"]))
    error_of(await reader.post("/api/tokens", json={"scopes": ["read"]}), 403)


async def test_admin_manages_anyone_s_tokens_for_people_the_policy_knows(api: Api) -> None:
    response = await api.client.post(
        "/api/tokens", json={"user": "oncall-1", "scopes": ["decide", "read"], "expires": "2h"}
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["person"], made["scopes"]) == ("oncall-1", ["read", "decide"])
    listed = (await api.client.get("/api/tokens")).json()["tokens"]
    assert [t["id"] for t in listed] == [made["id"]]
    assert (await api.client.delete(f"/api/tokens/{made['id']}")).status_code == 200

    response = await api.client.post("/api/tokens", json={"user": "mallory"})
    assert "unknown person 'mallory'" in error_of(response, 400)
    response = await api.client.post("/api/tokens", json={"user": "web:mallory"})
    assert response.json()["person"] == "mallory"
    response = await api.client.post("/api/tokens", json={})
    assert "name the token's 'user'" in error_of(response, 400)
    response = await api.client.post("/api/tokens", json={"user": "dev-1", "expires": "soon"})
    assert "30d" in error_of(response, 400)
    response = await api.client.post("/api/tokens", json={"user": "dev-1", "scopes": ["root"]})
    error_of(response, 422)


async def test_an_admin_scope_token_manages_others_as_its_own_person(api: Api) -> None:
    lead = api.client_with(await api.mint("oncall-1", scopes=["admin", "act"]))
    response = await lead.post("/api/tokens", json={"user": "dev-2", "scopes": ["read"]})
    assert response.status_code == 201, response.text
    assert (await lead.get("/api/tokens", params={"user": "dev-2"})).json()["tokens"]
    assert (await lead.get("/api/threads")).status_code == 200  # admin reads all
    # ...but it decides nothing: deciding is a scope of its own.
    error_of(await lead.post("/api/human-requests/hr_x", json={"decision": "approve"}), 403)


async def test_last_used_is_written_at_most_once_a_minute(api: Api) -> None:
    now = utcnow()
    clock = [now]
    tokens = ApiTokens(api.ops.store.db, clock=lambda: clock[0])
    made, secret = await tokens.create("dev-1", lasts=None)
    assert made.last_used_at is None
    assert (await tokens.check(secret)).last_used_at == now
    clock[0] = now + timedelta(seconds=59)
    await tokens.check(secret)
    assert (await tokens.get(made.id)).last_used_at == now  # type: ignore[union-attr]
    clock[0] = now + timedelta(seconds=61)
    await tokens.check(secret)
    assert (await tokens.get(made.id)).last_used_at == clock[0]  # type: ignore[union-attr]
