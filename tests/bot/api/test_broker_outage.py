"""Stored work is never answered with 500, the broker never stalls the loop, and retries
with an ``Idempotency-Key`` store one event."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import bot.plugins
from bot.api._hooks import sign
from tests.bot.api.harness import SECRET, Api, error_of


def broker_down(api: Api) -> list[int]:
    """Make every enqueue fail as a broker that is down does; the ids it was asked for."""
    asked: list[int] = []

    def process(item_id: int) -> None:
        asked.append(item_id)
        raise ConnectionRefusedError(111, "Connection refused")

    api.dispatcher.process = process  # type: ignore[method-assign]
    return asked


async def test_with_the_broker_down_stored_work_is_accepted_not_500(api: Api) -> None:
    """Regression: the event was stored, the enqueue raised, and the client got a 500;
    a client that retried made a duplicate, as the sweeper later ran both."""
    asked = broker_down(api)
    dev = await api.person("dev-1")
    launched = await dev.post(
        "/api/threads", json={"text": "what is running in staging?", "user": "dev-1"}
    )
    assert launched.status_code == 201, launched.text
    item = launched.json()["inbox_item"]
    assert asked == [item]
    assert (await api.ops.store.inbox_item(item)).status == "pending"  # the sweeper's now

    thread_id, request_id = launched.json()["id"], None
    message = await dev.post(
        f"/api/threads/{thread_id}/messages", json={"text": "and production?", "user": "dev-1"}
    )
    assert message.status_code == 202, message.text

    body = b'{"text": "what is running in production?"}'
    ts = str(int(__import__("time").time()))
    hook = await api.client.post(
        "/hooks/deploys",
        content=body,
        headers={
            "X-Opsloop-Timestamp": ts,
            "X-Opsloop-Signature": sign(SECRET.encode(), ts, body),
        },
    )
    assert hook.status_code == 202, hook.text
    assert len(asked) == 3
    assert request_id is None


async def test_a_decision_with_the_broker_down_is_accepted(api: Api) -> None:
    _, request_id = await api.paused_on_deploy()
    broker_down(api)
    oncall = await api.person("oncall-1")
    response = await oncall.post(
        f"/api/human-requests/{request_id}", json={"decision": "approve", "actor": "oncall-1"}
    )
    assert response.status_code == 202, response.text


async def test_a_slow_broker_does_not_stall_other_requests(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the enqueue was a blocking broker call inside the async handler, so
    every other request waited while the broker was slow."""
    monkeypatch.setattr(bot.plugins, "ENQUEUE_SECONDS", 0.5)
    released, entered, returned = threading.Event(), threading.Event(), threading.Event()

    def stuck(item_id: int) -> None:
        entered.set()
        released.wait(5)
        returned.set()

    api.dispatcher.process = stuck  # type: ignore[method-assign]
    dev = await api.person("dev-1")
    launch = asyncio.create_task(
        dev.post("/api/threads", json={"text": "what is running?", "user": "dev-1"})
    )
    await asyncio.to_thread(entered.wait, 10)
    # The broker is stuck; the loop still serves others.
    health = await asyncio.wait_for(api.client.get("/healthz"), 5)
    assert health.status_code == 200
    launched = await asyncio.wait_for(launch, 5)  # answered within the bound, not the broker
    assert launched.status_code == 201
    assert not returned.is_set(), "the requests waited for the broker"
    released.set()


# ---------------------------------------------------------------- Idempotency-Key


async def test_a_launch_retried_with_its_key_stores_one_event(api: Api) -> None:
    body = {"text": "what is running in staging?"}
    headers = {"Idempotency-Key": "launch-7f3a"}
    dev = await api.person("dev-1")
    first = await dev.post("/api/threads", json=body, headers=headers)
    again = await dev.post("/api/threads", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    # One event stored; the retry only hands the same item on again (harmless if queued).
    assert set(api.dispatcher.of("process")) == {first.json()["inbox_item"]}
    other = await dev.post("/api/threads", json=body, headers={"Idempotency-Key": "b"})
    assert other.json()["id"] != first.json()["id"]
    # Another person's request with the same key and text is not a retry of dev-1's.
    dev2 = await api.person("dev-2")
    theirs = await dev2.post("/api/threads", json=body, headers=headers)
    assert "different request" in error_of(theirs, 409)


async def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    headers = {"Idempotency-Key": "k-1"}
    dev = await api.person("dev-1")
    await dev.post("/api/threads", json={"text": "what runs?", "user": "dev-1"}, headers=headers)
    reused = await dev.post(
        "/api/threads", json={"text": "deploy it all", "user": "dev-1"}, headers=headers
    )
    assert "different request" in error_of(reused, 409)
    for bad in ("", "x" * 256, "naïve".encode()):
        response = await dev.post(
            "/api/threads",
            json={"text": "what runs?", "user": "dev-1"},
            headers={"Idempotency-Key": bad},
        )
        assert "Idempotency-Key" in error_of(response, 400), bad


async def test_a_decision_retried_with_its_key_is_one_decision(api: Api) -> None:
    thread_id, request_id = await api.paused_on_deploy()
    decide: dict[str, Any] = {"decision": "approve", "actor": "oncall-1", "comment": "ok"}
    headers = {"Idempotency-Key": "approve-1"}
    path = f"/api/human-requests/{request_id}"
    oncall = await api.person("oncall-1")
    first = await oncall.post(path, json=decide, headers=headers)
    again = await oncall.post(path, json=decide, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    await api.work(first.json()["inbox_item"])
    thread = await api.thread(thread_id)
    assert [e["kind"] for e in thread["events"]].count("human_response") == 1
    rejected = await oncall.post(path, json={**decide, "decision": "reject"}, headers=headers)
    assert "different request" in error_of(rejected, 409)
