"""The API tests' client of the app: an in-process app on a real database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2

from bot.app import Opsloop
from bot.events import CallTool
from tests.fakes import RecordingDispatcher

TOKEN = "t" * 24
SECRET = "s" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)


@dataclass
class Api:
    """A client of the app, the app's ``Opsloop`` and what was enqueued."""

    client: httpx2.AsyncClient
    ops: Opsloop
    dispatcher: RecordingDispatcher

    async def launch(self, text: str, user: str = "dev-1", **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/threads", json={"text": text, "user": user, **extra}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def work(self, item_id: int) -> None:
        """Do what a worker would do with the enqueued item."""
        assert item_id in self.dispatcher.of("process"), "the API did not enqueue it"
        await self.ops.process(item_id)

    async def thread(self, thread_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/threads/{thread_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def decide(self, request_id: str, decision: str, actor: str, **extra: Any) -> int:
        response = await self.client.post(
            f"/api/human-requests/{request_id}",
            json={"decision": decision, "actor": actor, **extra},
        )
        assert response.status_code == 202, response.text
        item: int = response.json()["inbox_item"]
        return item

    async def paused_on_deploy(self, user: str = "dev-1") -> tuple[str, str]:
        """A thread waiting for approval of a production deploy: (thread id, request id)."""
        launched = await self.launch("deploy checkout 1.4.2 to production", user=user)
        await self.work(launched["inbox_item"])
        thread = await self.thread(launched["id"])
        assert thread["status"] == "paused"
        [pending] = thread["pending_requests"]
        return launched["id"], pending["request_id"]


MakeApi = Callable[..., Awaitable[Api]]


def error_of(response: httpx2.Response, status: int) -> str:
    """The response's error message, after checking it is ``status`` with a JSON error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    assert body["error"]
    message: str = body["error"]
    return message


def kinds(thread: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in thread["events"]]
