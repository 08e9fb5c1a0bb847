"""Fixtures of the API tests: the app on a real database, a client, a recording dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2
import pytest

from bot.api import create_app
from bot.app import Opsloop
from bot.config import Settings, load_settings
from bot.model import Model
from bot.model.offline import OfflineModel
from bot.policy import Policy
from bot.store import Database
from tests.bot.api.harness import AUTH, SECRET, TOKEN, Api, MakeApi
from tests.fakes import RecordingDispatcher


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    return load_settings(
        OPSLOOP_HOME=str(tmp_path),
        OPSLOOP_API_TOKEN=TOKEN,
        OPSLOOP_WEBHOOKS="deploys=" + SECRET,
    )


@pytest.fixture
async def make_api(
    database: Database, make_ops: Callable[..., Awaitable[Opsloop]], api_settings: Settings
) -> AsyncIterator[MakeApi]:
    """Start the app (lifespan and all) on ``database`` with a model; closed at teardown."""
    async with AsyncExitStack() as stack:

        async def make(
            model: Model | None = None,
            *,
            settings: Settings = api_settings,
            auth: bool = True,
            raise_app_exceptions: bool = True,
            policy: Policy | None = None,
        ) -> Api:
            ops = await make_ops(database, model or OfflineModel(), policy_=policy)
            dispatcher = RecordingDispatcher()
            app = create_app(settings, ops=ops, dispatcher=dispatcher)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx2.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    transport=transport,
                    base_url="http://opsloop.test",
                    headers=AUTH if auth else {},
                )
            )
            api = Api(client=client, ops=ops, dispatcher=dispatcher, transport=transport)
            stack.push_async_callback(api.aclose)
            return api

        yield make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """The app with the offline model."""
    return await make_api()
