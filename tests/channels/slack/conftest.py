"""The Slack channel's test harness: the real app, a real database, a fake Slack.

The API app runs in-process (``httpx2.ASGITransport``, lifespan included) with the Slack
plugin on settings that point at :class:`FakeSlack`. Requests are signed the way Slack
signs them. Where a worker would process and deliver, :meth:`SlackHarness.work` calls
``workers.jobs`` itself, so every step is awaited and nothing is waited for by the clock.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx2
import pytest

from bot.api import create_app
from bot.app import Opsloop
from bot.config import Settings
from bot.events import ThreadStatus
from bot.model import Model
from bot.model.offline import OfflineModel
from bot.policy import Policy
from bot.store import Database, HumanRequest
from channels.slack import SlackSender, SlackSettings, load_slack_settings, slack_plugin
from channels.slack._background import settled
from tests.channels.slack import payloads
from tests.channels.slack.fake_slack import Call, FakeSlack
from tests.fakes import RecordingDispatcher
from workers.jobs import deliver_thread, process_item

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(
        usergroups=[
            {"id": "S_SRE", "handle": "sre", "users": ["U_SRE", "U_ONCALL"]},
            {"id": "S_DEV", "handle": "devs", "users": ["U_DEV"]},
        ],
        users={
            "U_DEV": {
                "id": "U_DEV",
                "name": "dev",
                "profile": {"display_name": "Dana Dev", "real_name": "Dana Developer"},
            }
        },
    )
    await fake.start()
    yield fake
    await settled()  # what the channel does after acknowledging Slack ends first
    await fake.stop()


@pytest.fixture
def slack_settings(fake_slack: FakeSlack) -> SlackSettings:
    return load_slack_settings(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake_slack.api_url,
    )


@pytest.fixture
def oncall_policy(policy: Policy) -> Policy:
    """The default policy with Slack people on call: two directly, the rest through S_SRE."""
    oncall = (*policy.roles["oncall"], "slack:U_ONCALL", "slack:U_ONCALL2", "slack-group:S_SRE")
    return policy.model_copy(update={"roles": {**policy.roles, "oncall": oncall}})


@dataclass
class SlackHarness:
    """A client of the app with the Slack plugin, and what stands behind it."""

    client: httpx2.AsyncClient
    ops: Opsloop
    dispatcher: RecordingDispatcher
    fake: FakeSlack
    sender: SlackSender
    processed: int = 0

    async def post(
        self,
        body: bytes,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
        secret: str = SECRET,
    ) -> httpx2.Response:
        signed = payloads.signature_headers(body, secret, timestamp)
        return await self.client.post(
            "/slack/events",
            content=body,
            headers={"Content-Type": content_type, **signed, **(headers or {})},
        )

    async def event(
        self, event: dict[str, Any], *, event_id: str, retry: int | None = None, **kw: Any
    ) -> httpx2.Response:
        body = json.dumps(payloads.event_callback(event, event_id=event_id, **kw)).encode()
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(body, "application/json", headers=headers if retry else None)

    async def command(self, text: str, **kw: Any) -> httpx2.Response:
        kw.setdefault("response_url", f"http://127.0.0.1:{self.fake.port}/respond/commands/T1")
        body = payloads.form_body(payloads.slash_command(text, **kw))
        return await self.post(body, "application/x-www-form-urlencoded")

    async def interact(self, payload: dict[str, Any]) -> httpx2.Response:
        return await self.post(
            payloads.interactive_body(payload), "application/x-www-form-urlencoded"
        )

    async def work(self) -> float | None:
        """What the workers would do now: process what was enqueued, then deliver."""
        items = self.dispatcher.of("process")[self.processed :]
        self.processed += len(items)
        for item_id in items:
            await process_item(self.ops, self.dispatcher, item_id)
        wait = None
        for thread_id in dict.fromkeys(self.dispatcher.of("deliver")):
            wait = await deliver_thread(self.ops, {"slack": self.sender}, thread_id) or wait
        return wait

    async def only_request(self) -> HumanRequest:
        [request] = await self.ops.store.human_requests(status=None)
        return request

    async def thread_status(self, request: HumanRequest) -> ThreadStatus:
        return (await self.ops.store.load_thread(request.thread_id)).status

    def posted(self) -> list[Call]:
        return self.fake.of("chat.postMessage")


MakeSlack = Callable[..., Awaitable[SlackHarness]]


@pytest.fixture
async def make_slack(
    sqlite_database: Database,
    make_ops: Callable[..., Awaitable[Opsloop]],
    settings: Settings,
    fake_slack: FakeSlack,
    slack_settings: SlackSettings,
    oncall_policy: Policy,
) -> AsyncIterator[MakeSlack]:
    async with AsyncExitStack() as stack:

        async def make(
            model: Model | None = None,
            *,
            slack: SlackSettings = slack_settings,
            database: Database = sqlite_database,
            clock: Callable[[], datetime] | None = None,
            settings_: Settings | None = None,
        ) -> SlackHarness:
            ops = await make_ops(
                database,
                model or OfflineModel(),
                policy_=oncall_policy,
                clock=clock,
                settings_=settings_,
            )
            dispatcher = RecordingDispatcher()
            app = create_app(
                settings, ops=ops, dispatcher=dispatcher, plugins=(slack_plugin(slack),)
            )
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    transport=httpx2.ASGITransport(app=app), base_url="http://opsloop.test"
                )
            )
            return SlackHarness(client, ops, dispatcher, fake_slack, SlackSender(slack))

        yield make


@pytest.fixture
async def slack(make_slack: MakeSlack) -> SlackHarness:
    """The app with the offline model, the on-call policy and the fake Slack."""
    return await make_slack()
