"""The API tests' client of the app: an in-process app on a real database.

``Api.client`` holds the admin token (``OPSLOOP_API_TOKEN``), which speaks for nobody;
people call through clients with their own per-person tokens (:meth:`Api.person`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx2

from bot.app import Opsloop
from bot.events import CallTool
from bot.store import DEFAULT_SCOPES, ApiTokens, Scope
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
    transport: httpx2.AsyncBaseTransport | None = None
    people: dict[str, httpx2.AsyncClient] = field(default_factory=dict)

    async def mint(self, person: str, scopes: Iterable[Scope] = DEFAULT_SCOPES, **kw: Any) -> str:
        """A new per-person token for ``person`` (made in the store, as the CLI does)."""
        _, token = await ApiTokens(self.ops.store.db).create(person, scopes=scopes, **kw)
        return token

    def client_with(self, token: str) -> httpx2.AsyncClient:
        """A client of the same app that sends ``token``; closed with the app."""
        client = httpx2.AsyncClient(
            transport=self.transport,
            base_url=str(self.client.base_url),
            headers={"Authorization": f"Bearer {token}"},
        )
        self.people[f"token {token[:24]}"] = client
        return client

    async def person(self, person: str) -> httpx2.AsyncClient:
        """A client that calls as ``person``, with a token of the default scopes."""
        if person not in self.people:
            self.people[person] = self.client_with(await self.mint(person))
        return self.people[person]

    async def aclose(self) -> None:
        for client in self.people.values():
            await client.aclose()

    async def launch(self, text: str, user: str = "dev-1", **extra: Any) -> dict[str, Any]:
        client = await self.person(user)
        response = await client.post("/api/threads", json={"text": text, **extra})
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
        client = await self.person(actor)
        response = await client.post(
            f"/api/human-requests/{request_id}", json={"decision": decision, **extra}
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
