"""The HTTP API end to end: auth, the thread lifecycle, human decisions, webhooks, bad input.

The app runs in-process (``httpx2.ASGITransport``, lifespan included) on a real database with
a recording dispatcher; where a worker would run the queued work, the test awaits
``ops.process`` itself, in the same event loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.api._hooks import sign
from bot.config import load_settings
from bot.errors import DecisionRefusedError
from bot.events import CallTool, Reply, ThreadStatus
from bot.inventory import INVENTORY
from bot.model import ScriptedModel
from tests.bot.api.harness import DEPLOY, SECRET, TOKEN, Api, MakeApi, error_of, kinds

# ---------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer " + "x" * 24},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong", "not-bearer", "prefix", "empty"],
)
async def test_api_refuses_without_the_right_token(make_api: MakeApi, headers) -> None:
    api = await make_api(auth=False)
    for method, path in [
        ("GET", "/api/threads"),
        ("POST", "/api/threads"),
        ("GET", "/api/threads/th_x"),
        ("GET", "/api/human-requests"),
        ("POST", "/api/human-requests/hr_x"),
        ("GET", "/api/inbox/1"),
    ]:
        response = await api.client.request(
            method, path, headers=headers, json={"text": "hi", "user": "dev-1"}
        )
        message = error_of(response, 401)
        assert "authentication required" in message or "unknown API token" in message, (
            method,
            path,
        )
    assert api.dispatcher.calls == []
    assert await api.ops.store.list_threads() == []


async def test_api_refuses_everything_when_no_token_is_configured(
    make_api: MakeApi, tmp_path: Path
) -> None:
    api = await make_api(settings=load_settings(OPSLOOP_HOME=str(tmp_path)))
    response = await api.client.get("/api/threads")  # even with a bearer token
    assert "OPSLOOP_API_TOKEN" in error_of(response, 401)
    response = await api.client.post("/api/threads", json={"text": "hi", "user": "dev-1"})
    error_of(response, 401)
    assert api.dispatcher.calls == []


async def test_health_needs_no_token(make_api: MakeApi) -> None:
    api = await make_api(auth=False)
    response = await api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# ---------------------------------------------------------------- the lifecycle


async def test_launch_then_work_shows_the_timeline(make_api: MakeApi) -> None:
    model = ScriptedModel(
        [CallTool(tool="list_services", arguments={"environment": "staging"}), Reply(text="4 up")]
    )
    api = await make_api(model)
    launched = await api.launch("what is running in staging?")
    assert launched["status"] == "accepted"
    assert launched["id"].startswith("th_")
    assert api.dispatcher.calls == [("process", launched["inbox_item"])]

    # Accepted, not yet worked on: the thread exists, with no events.
    before = await api.thread(launched["id"])
    assert (before["status"], before["events"]) == ("waiting", [])
    item = (await api.client.get(f"/api/inbox/{launched['inbox_item']}")).json()
    assert item == {
        "id": launched["inbox_item"],
        "status": "pending",
        "thread_id": launched["id"],  # known from the moment it is accepted
        "error": None,
        "kind": "message",
        "attempts": 0,
    }

    await api.work(launched["inbox_item"])
    thread = await api.thread(launched["id"])
    assert thread["id"] == launched["id"]
    assert thread["status"] == "waiting"
    assert thread["agent"] == "inspector"
    assert kinds(thread) == [
        "user_message",
        "status",
        "model_call",
        "tool_call",
        "tool_result",
        "model_call",
        "agent_reply",
        "status",
    ]
    assert [e["seq"] for e in thread["events"]] == list(range(1, 9))
    assert thread["events"][0]["sender"]["user_id"] == "dev-1"
    assert thread["events"][0]["sender"]["channel"] == "web"
    assert thread["events"][6]["text"] == "4 up"
    assert thread["pending_requests"] == []
    assert isinstance(thread["cost_usd"], float)
    item = (await api.client.get(f"/api/inbox/{launched['inbox_item']}")).json()
    assert (item["status"], item["thread_id"], item["error"]) == ("done", launched["id"], None)


async def test_launch_with_an_agent_by_name(make_api: MakeApi) -> None:
    api = await make_api(ScriptedModel([Reply(text="hello")]))
    launched = await api.launch("anything at all", agent="deployer")
    await api.work(launched["inbox_item"])
    assert (await api.thread(launched["id"]))["agent"] == "deployer"


async def test_list_threads_filters_by_status(make_api: MakeApi) -> None:
    api = await make_api(ScriptedModel([Reply(text="ok"), DEPLOY]))
    done = await api.launch("what is running in staging?")
    await api.work(done["inbox_item"])
    paused, _ = await api.paused_on_deploy()

    response = await api.client.get("/api/threads")
    assert response.status_code == 200
    listed = response.json()["threads"]
    assert {t["id"] for t in listed} == {done["id"], paused}
    assert listed[0]["id"] == paused, "most recently active first"
    for status, expected in [("paused", [paused]), ("waiting", [done["id"]]), ("failed", [])]:
        response = await api.client.get("/api/threads", params={"status": status})
        assert [t["id"] for t in response.json()["threads"]] == expected, status
    response = await api.client.get("/api/threads", params={"limit": 1})
    assert [t["id"] for t in response.json()["threads"]] == [paused]


async def test_post_a_message_to_a_thread(make_api: MakeApi) -> None:
    api = await make_api(ScriptedModel([Reply(text="first"), Reply(text="second")]))
    launched = await api.launch("what is running in staging?")
    await api.work(launched["inbox_item"])

    dev2 = await api.person("dev-2")
    response = await dev2.post(
        f"/api/threads/{launched['id']}/messages", json={"text": "and now?", "user": "dev-2"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["id"], body["status"]) == (launched["id"], "accepted")
    await api.work(body["inbox_item"])
    thread = await api.thread(launched["id"])
    messages = [e for e in thread["events"] if e["kind"] == "user_message"]
    assert [(m["sender"]["user_id"], m["text"]) for m in messages] == [
        ("dev-1", "what is running in staging?"),
        ("dev-2", "and now?"),
    ]
    replies = [e["text"] for e in thread["events"] if e["kind"] == "agent_reply"]
    assert replies == ["first", "second"]
    assert thread["status"] == "waiting"


# ---------------------------------------------------------------- human decisions


async def test_approve_runs_the_recorded_call(make_api: MakeApi) -> None:
    api = await make_api(ScriptedModel([DEPLOY, Reply(text="deployed")]))
    thread_id, request_id = await api.paused_on_deploy()

    response = await api.client.get("/api/human-requests")
    assert response.status_code == 200
    [listed] = response.json()["requests"]
    assert listed["request_id"] == request_id
    assert (listed["thread_id"], listed["status"], listed["tool"]) == (
        thread_id,
        "pending",
        "deploy",
    )
    assert listed["arguments"] == DEPLOY.arguments
    assert listed["requested_by"] == "web:dev-1"

    item = await api.decide(request_id, "approve", "oncall-1", comment="go")
    await api.work(item)
    thread = await api.thread(thread_id)
    assert thread["status"] == "waiting"
    assert thread["pending_requests"] == []
    call = next(e for e in thread["events"] if e["kind"] == "tool_call")
    assert call["arguments"] == DEPLOY.arguments
    assert call["approved_by"] == "web:oncall-1"
    assert kinds(thread)[-2:] == ["agent_reply", "status"]
    status = await api.ops.runtime.resources[INVENTORY].service_status("checkout", "production")
    assert status["version"] == "1.4.2"
    response = await api.client.get("/api/human-requests", params={"status": "approved"})
    assert [r["request_id"] for r in response.json()["requests"]] == [request_id]
    assert (await api.client.get("/api/human-requests")).json()["requests"] == []

    # A second decision is accepted for the record, then refused when worked on.
    again = await api.decide(request_id, "reject", "oncall-2", comment="too late")
    with pytest.raises(DecisionRefusedError, match="already approved"):
        await api.work(again)
    item_view = (await api.client.get(f"/api/inbox/{again}")).json()
    assert item_view["status"] == "failed"
    assert "already approved by web:oncall-1" in item_view["error"]
    after = await api.thread(thread_id)
    assert kinds(after)[len(thread["events"]) :] == ["decision_refused"]
    assert after["events"][-1]["actor"]["user_id"] == "oncall-2"
    deploys = await api.ops.runtime.resources[INVENTORY].recent_deploys(
        "checkout", "production", 10
    )
    assert sum(d["version"] == "1.4.2" for d in deploys) == 1


async def test_reject_returns_the_reason_to_the_agent(api: Api) -> None:
    thread_id, request_id = await api.paused_on_deploy()
    item = await api.decide(request_id, "reject", "oncall-1", comment="change freeze")
    await api.work(item)
    thread = await api.thread(thread_id)
    result = next(e for e in thread["events"] if e["kind"] == "tool_result")
    assert result["output"] == {"rejected": True, "by": "web:oncall-1", "reason": "change freeze"}
    reply = next(e for e in reversed(thread["events"]) if e["kind"] == "agent_reply")
    assert "change freeze" in reply["text"]
    status = await api.ops.runtime.resources[INVENTORY].service_status("checkout", "production")
    assert status["version"] == "1.4.1"


async def test_four_eyes_refusal_is_recorded(api: Api) -> None:
    # web:oncall-1 may approve production changes, but not their own.
    thread_id, request_id = await api.paused_on_deploy(user="oncall-1")
    item = await api.decide(request_id, "approve", "oncall-1")
    with pytest.raises(DecisionRefusedError, match="four-eyes"):
        await api.work(item)

    response = await api.client.get(f"/api/inbox/{item}")
    assert response.status_code == 200
    view = response.json()
    assert (view["status"], view["thread_id"], view["kind"]) == ("failed", thread_id, "action")
    assert "four-eyes rule: web:oncall-1 may not approve their own request" in view["error"]
    thread = await api.thread(thread_id)
    assert thread["status"] == "paused"
    refused = thread["events"][-1]
    assert refused["kind"] == "decision_refused"
    assert refused["request_id"] == request_id
    assert refused["actor"]["user_id"] == "oncall-1"
    assert "four-eyes" in refused["reason"]
    assert [r["request_id"] for r in thread["pending_requests"]] == [request_id]

    # Someone else may still decide.
    item = await api.decide(request_id, "approve", "oncall-2")
    await api.work(item)
    assert (await api.thread(thread_id))["status"] == "waiting"


@pytest.mark.parametrize(
    ("decision", "actor", "comment", "why"),
    [
        ("approve", "dev-2", None, "may not decide"),
        ("reject", "oncall-1", None, "a rejection needs a reason"),
        ("answer", "oncall-1", "yes", "does not apply"),
    ],
)
async def test_refused_decisions_change_nothing(
    api: Api, decision: str, actor: str, comment: str | None, why: str
) -> None:
    thread_id, request_id = await api.paused_on_deploy()
    before = await api.thread(thread_id)
    extra = {"comment": comment} if comment else {}
    item = await api.decide(request_id, decision, actor, **extra)
    with pytest.raises(DecisionRefusedError, match=why):
        await api.work(item)
    view = (await api.client.get(f"/api/inbox/{item}")).json()
    assert view["status"] == "failed" and why in view["error"]
    after = await api.thread(thread_id)
    assert kinds(after) == [*kinds(before), "decision_refused"]
    assert after["status"] == "paused"
    assert after["pending_requests"] == before["pending_requests"]


# ---------------------------------------------------------------- pause and resume


async def test_pause_and_resume(make_api: MakeApi) -> None:
    api = await make_api(ScriptedModel([Reply(text="first"), Reply(text="second")]))
    launched = await api.launch("what is running in staging?")
    thread_id = launched["id"]
    await api.work(launched["inbox_item"])
    oncall = await api.person("oncall-1")

    response = await oncall.post(
        f"/api/threads/{thread_id}/pause", json={"actor": "oncall-1", "reason": "incident"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "paused"
    response = await oncall.post(f"/api/threads/{thread_id}/pause", json={})
    assert "paused already" in error_of(response, 400)

    # A message that arrives meanwhile is kept, not acted on.
    response = await (await api.person("dev-1")).post(
        f"/api/threads/{thread_id}/messages", json={"text": "still there?"}
    )
    await api.work(response.json()["inbox_item"])
    thread = await api.thread(thread_id)
    assert thread["status"] == "paused"
    assert kinds(thread)[-1] == "user_message"
    status = [e for e in thread["events"] if e["kind"] == "status"][-1]
    assert status["reason"] == "paused by web:oncall-1: incident"

    response = await oncall.post(f"/api/threads/{thread_id}/resume", json={})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"
    assert api.dispatcher.of("resume") == [thread_id]
    await api.ops.resume(thread_id)  # what the worker does with it
    thread = await api.thread(thread_id)
    assert thread["status"] == "waiting"
    assert [e["text"] for e in thread["events"] if e["kind"] == "agent_reply"] == [
        "first",
        "second",
    ]

    response = await oncall.post(f"/api/threads/{thread_id}/resume", json={})
    assert "not paused" in error_of(response, 400)
    thread = await api.thread(thread_id)
    reasons = [e["reason"] for e in thread["events"] if e["kind"] == "status"]
    assert "resumed by web:oncall-1" in reasons


async def test_resume_with_nothing_new_waits(api: Api) -> None:
    launched = await api.launch("what is running in staging?")
    await api.work(launched["inbox_item"])
    path = f"/api/threads/{launched['id']}"
    assert (await api.client.post(f"{path}/pause", json={})).status_code == 200
    response = await api.client.post(f"{path}/resume", json={})
    assert response.json()["status"] == "waiting"
    assert api.dispatcher.of("resume") == []


async def test_pause_or_resume_a_busy_thread_is_409(api: Api) -> None:
    launched = await api.launch("what is running in staging?")
    await api.work(launched["inbox_item"])
    thread_id = launched["id"]
    assert await api.ops.store.acquire_lease(thread_id, "someone", 30)
    for action in ("pause", "resume"):
        response = await api.client.post(f"/api/threads/{thread_id}/{action}", json={})
        assert "busy" in error_of(response, 409), action
    await api.ops.store.release_lease(thread_id, "someone")
    response = await api.client.post(f"/api/threads/{thread_id}/pause", json={})
    assert response.status_code == 200


async def test_a_thread_waiting_on_a_person_is_decided_not_resumed(api: Api) -> None:
    thread_id, request_id = await api.paused_on_deploy()
    response = await api.client.post(f"/api/threads/{thread_id}/resume", json={})
    assert request_id in error_of(response, 400)
    response = await api.client.post(f"/api/threads/{thread_id}/pause", json={})
    assert "paused already" in error_of(response, 400)
    assert (await api.thread(thread_id))["status"] == "paused"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "body",
    [
        {"text": 123, "user": "dev-1"},
        {"text": ["hi"], "user": "dev-1"},
        {"text": "hi", "user": 5},
        {"user": "dev-1"},
        {},
        {"text": "hi", "user": "dev-1", "admin": True},
        {"text": "", "user": "dev-1"},
        {"text": "hi", "user": ""},
        {"text": "hi", "user": "two words"},
        {"text": "hi", "user": "u" * 129},
        {"text": "hi", "user": "dev\x00-1"},
        {"text": "hi", "user": "dev\x1b[31m"},
        {"text": "hi", "user": "dev-1", "agent": 7},
        [],
        "hi",
        None,
    ],
)
async def test_launch_refuses_malformed_bodies(api: Api, body: Any) -> None:
    response = await api.client.post("/api/threads", json=body)
    assert error_of(response, 422) == "invalid request"
    details = response.json()["details"]
    assert details and all({"where", "problem"} <= d.keys() for d in details)
    assert api.dispatcher.calls == []
    assert await api.ops.store.list_threads() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/messages", {"user": "dev-1"}),
        ("/messages", {"text": "hi", "agent": "deployer"}),
        ("/pause", {"actor": ""}),
        ("/pause", {"reason": 5}),
        ("/resume", {"force": True}),
    ],
)
async def test_thread_actions_refuse_malformed_bodies(api: Api, path: str, body: Any) -> None:
    launched = await api.launch("what is running in staging?")
    response = await api.client.post(f"/api/threads/{launched['id']}{path}", json=body)
    error_of(response, 422)


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe", "actor": "oncall-1"},
        {"actor": "oncall-1"},
        {"decision": "approve", "actor": "oncall-1", "extra": 1},
        {"decision": ["approve"], "actor": "oncall-1"},
        {"decision": "approve", "actor": "oncall-1", "comment": "c" * 10_001},
        {"decision": "approve", "actor": "oncall\x00-1"},
    ],
)
async def test_decisions_refuse_malformed_bodies(api: Api, body: Any) -> None:
    _, request_id = await api.paused_on_deploy()
    response = await api.client.post(f"/api/human-requests/{request_id}", json=body)
    error_of(response, 422)
    assert (await api.ops.store.human_request(request_id)).status == "pending"


@pytest.mark.parametrize("raw", [b"{bad json", b'{"text": "hi", "user": "dev-1"', b"\xff\xfe"])
async def test_invalid_json_is_422(api: Api, raw: bytes) -> None:
    response = await api.client.post(
        "/api/threads", content=raw, headers={"content-type": "application/json"}
    )
    assert error_of(response, 422) == "invalid request"
    assert api.dispatcher.calls == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("   \n ", "empty"),
        ("hi\x00there", "NUL"),
        ("x" * 16_001, "the limit is 16,000"),
    ],
)
async def test_text_no_person_meant_is_400_and_nothing_is_stored(
    api: Api, text: str, why: str
) -> None:
    response = await api.client.post("/api/threads", json={"text": text})
    assert why in error_of(response, 400)
    assert api.dispatcher.calls == []
    assert await api.ops.store.list_threads() == []


@pytest.mark.parametrize(
    "raw", [b'{"text": "hi \\ud800", "user": "dev-1"}', b'{"text": "hi", "user": "\\udfff"}']
)
async def test_a_lone_surrogate_is_422(api: Api, raw: bytes) -> None:
    response = await api.client.post(
        "/api/threads", content=raw, headers={"content-type": "application/json"}
    )
    error_of(response, 422)
    assert "unicode" in response.json()["details"][0]["problem"]
    assert api.dispatcher.calls == []


async def test_a_megabyte_of_text_is_refused_with_a_clear_error(api: Api) -> None:
    response = await api.client.post("/api/threads", json={"text": "x" * 1_000_000, "user": "u"})
    assert "request body over 262144 bytes" in error_of(response, 413)
    assert api.dispatcher.calls == []
    assert await api.ops.store.list_threads() == []


async def test_oversized_body_declared_is_413(api: Api) -> None:
    body = json.dumps({"text": "x" * 300_000, "user": "dev-1"}).encode()
    response = await api.client.post(
        "/api/threads", content=body, headers={"content-type": "application/json"}
    )
    assert response.request.headers["content-length"] == str(len(body))
    error_of(response, 413)
    assert api.dispatcher.calls == []


async def chunks(total: int, size: int = 16_384) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


async def test_oversized_body_streamed_is_413(api: Api) -> None:
    response = await api.client.post(
        "/api/threads", content=chunks(400_000), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    error_of(response, 413)
    assert api.dispatcher.calls == []
    assert await api.ops.store.list_threads() == []


async def test_streamed_body_under_the_limit_is_read(api: Api) -> None:
    body = json.dumps({"text": "what is running in staging?"}).encode()

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    response = await api.client.post(
        "/api/threads", content=stream(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/threads/th_nonexistent", None),
        ("POST", "/api/threads/th_nonexistent/messages", {"text": "hi"}),
        ("POST", "/api/threads/th_nonexistent/pause", {}),
        ("POST", "/api/threads/th_nonexistent/resume", {}),
        ("POST", "/api/human-requests/hr_nonexistent", {"decision": "approve"}),
        ("GET", "/api/inbox/999999", None),
        ("GET", "/api/no-such-route", None),
        ("GET", "/nowhere", None),
    ],
)
async def test_unknown_ids_are_404(api: Api, method: str, path: str, body: Any) -> None:
    response = await api.client.request(method, path, json=body)
    error_of(response, 404)
    assert api.dispatcher.calls == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/threads/th_%00x", None),
        ("POST", "/api/threads/th_%00x/messages", {"text": "hi"}),
        ("POST", "/api/human-requests/hr_%00x", {"decision": "approve"}),
    ],
)
async def test_an_id_with_a_nul_byte_is_404(
    api: Api, request: pytest.FixtureRequest, method: str, path: str, body: Any
) -> None:
    error_of(await api.client.request(method, path, json=body), 404)


async def test_unknown_agent_is_refused(api: Api) -> None:
    response = await api.client.post("/api/threads", json={"text": "hi", "agent": "nobody"})
    assert "nobody" in error_of(response, 404)
    assert api.dispatcher.calls == []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/threads", {"status": "sleeping"}),
        ("/api/threads", {"limit": "0"}),
        ("/api/threads", {"limit": "many"}),
        ("/api/threads", {"limit": "501"}),
        ("/api/human-requests", {"status": "whatever"}),
        ("/api/inbox/abc", {}),
        ("/api/inbox/0", {}),
        ("/api/inbox/99999999999999999999", {}),
    ],
)
async def test_bad_query_and_path_values_are_422(api: Api, path: str, params: Any) -> None:
    error_of(await api.client.get(path, params=params), 422)


async def test_wrong_method_is_405(api: Api) -> None:
    error_of(await api.client.delete("/api/threads"), 405)


# ---------------------------------------------------------------- webhooks


def signed(
    body: bytes, *, secret: str = SECRET, at: float | None = None, delivery: str | None = None
) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    headers = {
        "X-Opsloop-Timestamp": timestamp,
        "X-Opsloop-Signature": sign(secret.encode(), timestamp, body),
        "content-type": "application/json",
    }
    if delivery is not None:
        headers["X-Opsloop-Delivery"] = delivery
    return headers


async def test_signed_webhook_starts_a_thread_once(make_api: MakeApi) -> None:
    api = await make_api(auth=False)  # webhooks are signed, not bearer-authenticated
    body = json.dumps(
        {"text": "what is running in staging?", "release": {"id": 42}, "thread": "rel-42"}
    ).encode()
    response = await api.client.post("/hooks/deploys", content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "accepted"
    item = accepted["inbox_item"]
    assert api.dispatcher.of("process") == [item]
    await api.work(item)
    thread_id = (await api.ops.store.inbox_item(item)).thread_id
    assert thread_id is not None
    thread = await api.ops.store.load_thread(thread_id)
    assert thread.conversation.channel == "webhook"
    assert thread.conversation.thread_key == "rel-42"
    [message] = [e for e in thread.events if e.kind == "user_message"]
    assert message.source == "webhook:deploys"
    assert message.sender.principal == "webhook:deploys"
    assert thread.status == ThreadStatus.WAITING


async def test_an_identical_webhook_without_delivery_id_is_a_duplicate(api: Api) -> None:
    body = json.dumps({"text": "what is running in staging?"}).encode()
    headers = signed(body)
    first = await api.client.post("/hooks/deploys", content=body, headers=headers)
    again = await api.client.post("/hooks/deploys", content=body, headers=headers)
    assert first.json()["status"] == "accepted"
    assert again.json() == {"status": "duplicate"}
    assert len(api.dispatcher.of("process")) == 1


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        (lambda body: signed(body, secret="w" * 20), "bad signature"),
        (lambda body: signed(body + b" "), "bad signature"),
        (lambda body: signed(body, at=time.time() - 360), "stale"),
        (lambda body: signed(body, at=time.time() + 360), "stale"),
        (lambda body: {"X-Opsloop-Signature": signed(body)["X-Opsloop-Signature"]}, "missing"),
        (lambda body: {"X-Opsloop-Timestamp": str(int(time.time()))}, "missing"),
        (lambda body: {**signed(body), "X-Opsloop-Timestamp": "soon"}, "missing"),
        (lambda body: {}, "missing"),
    ],
    ids=["wrong-secret", "body-changed", "stale", "future", "no-ts", "no-sig", "bad-ts", "none"],
)
async def test_webhook_signature_is_checked(api: Api, headers, why: str) -> None:
    body = json.dumps({"text": "deploy checkout 1.4.2 to production"}).encode()
    response = await api.client.post("/hooks/deploys", content=body, headers=headers(body))
    assert why in error_of(response, 401)
    assert api.dispatcher.calls == []
    assert await api.ops.store.list_threads() == []


async def test_unknown_webhook_is_404(api: Api) -> None:
    body = b'{"text": "hi"}'
    response = await api.client.post("/hooks/nope", content=body, headers=signed(body))
    assert "nope" in error_of(response, 404)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", '"text" string'),
        (b'"deploy"', '"text" string'),
        (b'{"message": "hi"}', '"text" string'),
        (b'{"text": 5}', '"text" string'),
        (b'{"text": "hi", "agent": 5}', '"agent" must be a string'),
        (b'{"text": "hi", "thread": ["a"]}', '"thread" must be a string'),
        (b'{"text": "  "}', "empty"),
    ],
)
async def test_webhook_bad_body_is_400(api: Api, body: bytes, why: str) -> None:
    response = await api.client.post("/hooks/deploys", content=body, headers=signed(body))
    assert why in error_of(response, 400)
    assert api.dispatcher.calls == []


@pytest.mark.parametrize(
    ("payload", "delivery"),
    [({"text": "hi", "thread": "t" * 600}, None), ({"text": "hi"}, "d" * 600)],
    ids=["thread", "delivery"],
)
async def test_a_webhook_accepted_is_one_a_worker_can_process(
    api: Api, request: pytest.FixtureRequest, payload: dict[str, str], delivery: str | None
) -> None:
    body = json.dumps(payload).encode()
    response = await api.client.post(
        "/hooks/deploys", content=body, headers=signed(body, delivery=delivery)
    )
    if response.status_code == 202:
        await api.work(response.json()["inbox_item"])
        assert len(await api.ops.store.list_threads()) == 1
    else:
        error_of(response, 400)


async def test_webhook_oversized_is_413(make_api: MakeApi) -> None:
    api = await make_api(raise_app_exceptions=False)
    body = json.dumps({"text": "x" * 300_000}).encode()
    response = await api.client.post("/hooks/deploys", content=body, headers=signed(body))
    error_of(response, 413)
    response = await api.client.post(
        "/hooks/deploys", content=chunks(400_000), headers=signed(b"whatever")
    )
    error_of(response, 413)
    assert api.dispatcher.calls == []


async def test_webhook_streamed_oversized_raises_nothing_in_the_app(api: Api) -> None:
    response = await api.client.post(
        "/hooks/deploys", content=chunks(400_000), headers=signed(b"whatever")
    )
    error_of(response, 413)


# ---------------------------------------------------------------- health and schema


async def test_readyz_when_database_and_broker_answer(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "database": "ok", "broker": "ok"}


async def test_readyz_503_when_the_broker_is_down(api: Api) -> None:
    api.dispatcher.broken = ConnectionRefusedError("redis down")
    response = await api.client.get("/readyz")
    assert error_of(response, 503) == "not ready"
    body = response.json()
    assert body["ready"] is False
    assert body["database"] == "ok"
    assert body["broker"] == "error: ConnectionRefusedError"
    assert "redis down" not in response.text, "details stay in the logs"


async def test_readyz_503_when_the_database_is_down(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(api.ops.store.db, "session", unreachable)
    response = await api.client.get("/readyz")
    assert error_of(response, 503) == "not ready"
    assert response.json()["database"] == "error: OSError"
    assert response.json()["broker"] == "ok"


async def test_openapi_lists_the_routes(make_api: MakeApi) -> None:
    api = await make_api()  # the schema needs the token, like the API it describes
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/threads": {"get", "post"},
        "/api/threads/{thread_id}": {"get"},
        "/api/threads/{thread_id}/messages": {"post"},
        "/api/threads/{thread_id}/pause": {"post"},
        "/api/threads/{thread_id}/resume": {"post"},
        "/api/human-requests": {"get"},
        "/api/human-requests/{request_id}": {"post"},
        "/api/inbox/{item_id}": {"get"},
        "/api/tools": {"get"},
        "/api/tokens": {"get", "post"},
        "/api/tokens/{token_id}": {"delete"},
        "/hooks/{name}": {"post"},
        "/healthz": {"get"},
        "/readyz": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= paths[path].keys(), path
    launch = paths["/api/threads"]["post"]
    assert "201" in launch["responses"]
    schema = response.json()["components"]["schemas"]["LaunchThread"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"text"}  # the caller is who asks
