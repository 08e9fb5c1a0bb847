"""Paginated lists in the API: walking every page, filters, bad cursors, per-thread requests."""

from __future__ import annotations

from typing import Any

import pytest

from bot.events import CallTool, Reply, UserMessage
from bot.model import FunctionModel, ModelRequest
from tests.bot.api.harness import Api, MakeApi, error_of

RESTART = CallTool(tool="restart", arguments={"service": "search", "environment": "production"})
DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)
ASK = CallTool(tool="ask_human", arguments={"question": "Which version?"})


def by_text(request: ModelRequest) -> CallTool | Reply:
    """Deploy, restart or ask, as the thread's first message says."""
    text = next(e.text for e in request.events if isinstance(e, UserMessage))
    return {"deploy": DEPLOY, "restart": RESTART, "ask": ASK}[text.split()[0]]


async def paused(api: Api, *texts: str) -> list[tuple[str, str]]:
    """One paused thread per text: (thread id, its pending request's id)."""
    found = []
    for text in texts:
        launched = await api.launch(text)
        await api.work(launched["inbox_item"])
        [pending] = (await api.thread(launched["id"]))["pending_requests"]
        found.append((launched["id"], pending["request_id"]))
    return found


async def walk(api: Api, path: str, key: str, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor to the end."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(body[key]) == params["limit"], "only the last page may be short"


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api(FunctionModel(by_text))


async def test_request_pages_hold_every_request_once_in_order(api: Api) -> None:
    made = await paused(api, *(f"{w} {n}" for n, w in enumerate(["deploy"] * 5 + ["restart"] * 2)))
    pages = await walk(api, "/api/human-requests", "requests", limit=2)
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [r["request_id"] for p in pages for r in p] == [r for _, r in made]

    listed = (await api.client.get("/api/human-requests")).json()
    assert len(listed["requests"]) == 7 and listed["next_cursor"] is None


async def test_request_filters(api: Api) -> None:
    made = await paused(api, "deploy a", "restart b", "ask c", "deploy d")

    async def ids(**params: Any) -> list[str]:
        pages = await walk(api, "/api/human-requests", "requests", limit=1, **params)
        return [r["request_id"] for p in pages for r in p]

    assert await ids(tool="deploy") == [made[0][1], made[3][1]]
    assert await ids(tool="restart") == [made[1][1]]
    assert await ids(type="question") == [made[2][1]]
    assert await ids(type="approval") == [made[0][1], made[1][1], made[3][1]]
    assert await ids(thread_id=made[3][0]) == [made[3][1]]
    assert await ids(thread_id=made[3][0], tool="restart") == []
    assert await ids(status="approved") == []


async def test_a_thread_shows_only_its_own_pending_requests(api: Api) -> None:
    (first, first_request), (second, second_request) = await paused(api, "deploy a", "ask b")
    view = await api.thread(first)
    assert [r["request_id"] for r in view["pending_requests"]] == [first_request]
    view = await api.thread(second)
    assert [r["request_id"] for r in view["pending_requests"]] == [second_request]


async def test_thread_pages_hold_every_thread_once(api: Api) -> None:
    made = await paused(api, *(f"deploy {n}" for n in range(5)))
    pages = await walk(api, "/api/threads", "threads", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [t["id"] for p in pages for t in p]
    assert sorted(listed) == sorted(t for t, _ in made)
    stamps = [(t["updated_at"], t["id"]) for p in pages for t in p]
    assert stamps == sorted(stamps, reverse=True), "most recently active first"

    pages = await walk(api, "/api/threads", "threads", limit=3, status="paused")
    assert sorted(t["id"] for p in pages for t in p) == sorted(t for t, _ in made)
    pages = await walk(api, "/api/threads", "threads", limit=3, status="running")
    assert pages == [[]]


@pytest.mark.parametrize("cursor", ["nonsense", "eyJ4IjoxfQ", "W10", "%%%", "a" * 300])
async def test_a_bad_cursor_is_400_and_says_so(api: Api, cursor: str) -> None:
    for path in ("/api/human-requests", "/api/threads"):
        response = await api.client.get(path, params={"cursor": cursor})
        assert "pass the next_cursor of the previous page" in error_of(response, 400)


async def test_a_cursor_of_one_list_is_refused_by_the_other(api: Api) -> None:
    await paused(api, "deploy a", "deploy b")
    threads = (await api.client.get("/api/threads", params={"limit": 1})).json()
    response = await api.client.get(
        "/api/human-requests", params={"cursor": threads["next_cursor"]}
    )
    assert "not one the requests list handed out" in error_of(response, 400)
    requests = (await api.client.get("/api/human-requests", params={"limit": 1})).json()
    response = await api.client.get("/api/threads", params={"cursor": requests["next_cursor"]})
    assert "not one the threads list handed out" in error_of(response, 400)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/human-requests", {"limit": 0}),
        ("/api/human-requests", {"limit": 501}),
        ("/api/human-requests", {"type": "whatever"}),
        ("/api/human-requests", {"cursor": "x" * 513}),
        ("/api/threads", {"limit": 501}),
        ("/api/threads", {"cursor": "x" * 513}),
    ],
)
async def test_bad_page_parameters_are_422(api: Api, path: str, params: Any) -> None:
    assert error_of(await api.client.get(path, params=params), 422) == "invalid request"
