"""Question cards in a real browser: the agent asks, a person answers with a button or text.

The offline model never asks questions, so this runs the app in-process (uvicorn on a
loopback port, in a thread) with a model written as a function. The dispatcher runs each
enqueued job as a task in the server's own loop, as a worker would, so the page sees the
thread move on by polling, exactly as it does against ``opsloop run``.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import expect

from bot.api import create_app
from bot.app import Opsloop
from bot.cli._sessions import new_login_link
from bot.config import Settings, load_settings
from bot.events import CallTool, HumanResponded, Reply, Usage, UserMessage
from bot.model import FunctionModel, ModelRequest, ModelResponse
from bot.store import Database
from channels import web
from tests.channels.web.browser import (
    ask,
    console_page,
    need_chromium,
    screenshots,
    sign_in_with_link,
)
from workers.jobs import deliver_thread, process_item

TOKEN = "question-browser-token-0123456789"
QUESTION = "Which environment do you mean?"


def asks_then_answers(request: ModelRequest) -> ModelResponse:
    """Ask which environment, then repeat the answer; priced like a real model."""
    decision: CallTool | Reply = CallTool(
        tool="ask_human", arguments={"question": QUESTION, "options": ["staging", "production"]}
    )
    for event in reversed(request.events):
        if isinstance(event, UserMessage):
            break
        if isinstance(event, HumanResponded):
            decision = Reply(text=f"Understood: {event.comment}. Nothing else to do.")
            break
    usage = Usage(input_tokens=1200, output_tokens=60, cached_tokens=900)
    return ModelResponse(decision=decision, provider="function", model="gpt-4o", usage=usage)


@dataclass
class InlineDispatcher:
    """Runs what the API enqueues as tasks on the server's loop, like a worker would.

    The API enqueues from a thread (off its event loop), so work is handed to the loop
    thread-safely.
    """

    ops: Opsloop
    loop: asyncio.AbstractEventLoop
    running: set[Any] = field(default_factory=set)

    def _spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        future = asyncio.run_coroutine_threadsafe(job, self.loop)
        self.running.add(future)
        future.add_done_callback(self.running.discard)

    def process(self, item_id: int) -> None:
        self._spawn(process_item(self.ops, self, item_id))

    def deliver(self, thread_id: str) -> None:
        self._spawn(deliver_thread(self.ops, web.plugin.senders, thread_id))

    def resume(self, thread_id: str) -> None:
        self._spawn(self.ops.resume(thread_id))

    def ping(self) -> None:
        return None


def _serve(settings: Settings, listening: socket.socket, box: dict[str, Any]) -> None:
    async def main() -> None:
        model = FunctionModel(asks_then_answers)
        ops = await Opsloop.from_settings(settings, models={"default": model})
        app = create_app(
            settings,
            ops=ops,
            dispatcher=InlineDispatcher(ops, asyncio.get_running_loop()),
            plugins=(web.plugin,),
        )
        server = box["server"] = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", ws="none", lifespan="on")
        )
        box["ready"].set()
        try:
            await server.serve(sockets=[listening])
        finally:
            await ops.aclose()

    asyncio.run(main())


def login_link(settings: Settings, principal: str) -> str:
    """A one-time link, as ``opsloop login --as`` makes it, in the server's database."""

    async def make() -> str:
        database = Database(settings.database)
        try:
            return await new_login_link(database, settings.console_url, principal)
        finally:
            await database.dispose()

    return asyncio.run(make())


@pytest.fixture
def console_settings(tmp_path: Path) -> Settings:
    return load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_API_TOKEN=TOKEN)


@pytest.fixture
def console_url(console_settings: Settings) -> Iterator[str]:
    need_chromium()
    settings = console_settings
    with socket.socket() as listening:
        # Listening before the server runs: the browser's first request waits in the backlog.
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        box: dict[str, Any] = {"ready": threading.Event()}
        thread = threading.Thread(target=_serve, args=(settings, listening, box), daemon=True)
        thread.start()
        assert box["ready"].wait(30), "the app did not start"
        yield f"http://127.0.0.1:{port}"
        box["server"].should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "the app did not stop"


def test_a_question_card_is_answered_with_an_option_then_with_text(
    console_url: str, console_settings: Settings, tmp_path: Path
) -> None:
    shots = screenshots(tmp_path)
    link = login_link(console_settings, "web:dev-1")
    link = link.replace(console_settings.console_url, console_url)  # the test's own port
    with console_page(console_url) as watched:
        page = watched.page
        sign_in_with_link(page, console_url, link, "web:dev-1")

        ask(page, "restart search please")
        card = page.locator(".card.question").last
        expect(card.locator(".card-question")).to_have_text(QUESTION)
        expect(card.locator(".card-facts")).to_contain_text("web:dev-1")
        expect(page.locator("#thread-status")).to_have_text("waiting for an answer")
        page.screenshot(path=shots / "q1-question-card.png")
        card.get_by_role("button", name="production").click()
        expect(card.locator(".card-outcome")).to_contain_text("Answered by web:dev-1")
        expect(card.locator(".card-outcome")).to_contain_text("production")
        expect(card.get_by_role("button")).to_have_count(0)
        replies = page.locator("#messages .msg").filter(has_text="agent ·")
        expect(replies.last).to_contain_text("Understood: production.")

        ask(page, "and the other one?")
        second = page.locator(".card.question").last
        expect(second.get_by_role("button", name="Answer")).to_be_visible()
        second.get_by_placeholder("Your answer").fill("staging, after 18:00 UTC")
        second.get_by_role("button", name="Answer").click()
        expect(second.locator(".card-outcome")).to_contain_text("staging, after 18:00 UTC")
        expect(replies.last).to_contain_text("Understood: staging, after 18:00 UTC.")
        page.screenshot(path=shots / "q2-answered.png")

        page.get_by_role("link", name="Timeline").click()
        expect(page.locator(".event.kind-model_call")).to_have_count(4)
        expect(page.locator(".event.kind-model_call").first).to_contain_text("in 1,200")
        expect(page.locator("#total-cost")).not_to_have_text("$0.0000")
        expect(page.locator("#total-cost")).to_have_text(re.compile(r"^\$0\.0\d+$"))
        page.screenshot(path=shots / "q3-timeline.png", full_page=True)
