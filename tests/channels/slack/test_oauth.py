"""Several workspaces: the OAuth install flow, per-team tokens kept in opsloop's database."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import pytest
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy import delete

from bot.errors import ConfigError
from bot.events import ConversationRef, utcnow
from bot.outbound import OutboundReply
from bot.plugins import DeliveryContext
from bot.store import Database, OutboxItem
from channels.slack import TABLES, SlackSettings, load_slack_settings
from channels.slack._workspaces import InstallationStore, StateStore
from tests.channels.slack import payloads
from tests.channels.slack.conftest import SECRET, MakeSlack, SlackHarness
from tests.channels.slack.fake_slack import FakeSlack

CLIENT_ID = "1111.2222"


async def with_tables(database: Database) -> Database:
    """The plugin's tables (the migration created them), emptied."""
    async with database.engine.begin() as connection:
        for table in TABLES.sorted_tables:
            await connection.execute(delete(table))
    return database


async def without_tables(database: Database) -> Database:
    """A database as it was before the Slack migration."""
    async with database.engine.begin() as connection:
        await connection.run_sync(TABLES.drop_all)
    return database


@pytest.fixture
def oauth(fake_slack: FakeSlack) -> SlackSettings:
    fake_slack.oauth_access = {
        "app_id": "A1",
        "authed_user": {"id": "U_ADMIN"},
        "scope": "app_mentions:read,chat:write,commands",
        "token_type": "bot",
        "access_token": "xoxb-team2",
        "bot_user_id": "UBOT2",
        "team": {"id": "T2", "name": "Two"},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    return load_slack_settings(
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET="client-secret",
        SLACK_API_URL=fake_slack.api_url,
        SLACK_AUTHORIZE_URL="https://slack.example/oauth/v2/authorize",
    )


@pytest.fixture
async def installable(
    make_slack: MakeSlack, oauth: SlackSettings, sqlite_database: Database
) -> AsyncIterator[SlackHarness]:
    yield await make_slack(slack=oauth, database=await with_tables(sqlite_database))


async def install(slack: SlackHarness, *, state: str | None = None) -> int:
    page = await slack.client.get("/slack/install")
    assert page.status_code == 200
    [link] = re.findall(r'href="(https://slack\.example/oauth/v2/authorize\?[^"]+)"', page.text)
    query = parse_qs(urlparse(link.replace("&amp;", "&")).query)
    assert query["client_id"] == [CLIENT_ID]
    assert "usergroups:read" in query["scope"][0].split(",")
    issued = query["state"][0]
    assert f"slack-app-oauth-state={issued}" in page.headers["set-cookie"]
    back = await slack.client.get(
        "/slack/oauth_redirect",
        params={"code": "c0de", "state": state or issued},
        headers={"Cookie": f"slack-app-oauth-state={issued}"},
    )
    return back.status_code


# slack_sdk sends oauth.v2.access's client credentials with aiohttp.BasicAuth, which
# aiohttp 3.14 deprecates: a warning from the vendor's code, not from ours.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
async def test_installing_keeps_the_workspace_token_and_uses_it(
    installable: SlackHarness, sqlite_database: Database
) -> None:
    slack = installable
    assert await install(slack) == 200
    [exchange] = slack.fake.of("oauth.v2.access")
    assert exchange.params["code"] == "c0de"
    store = InstallationStore(CLIENT_ID, sqlite_database)
    assert await store.bot_token("T2") == "xoxb-team2"

    mention = payloads.app_mention("<@UBOT2> what is running in staging?", team="T2")
    assert (await slack.event(mention, event_id="Ev1", team="T2")).status_code == 200
    [item_id] = slack.dispatcher.of("process")
    assert (await slack.ops.store.inbox_item(item_id)).event.conversation.tenant == "T2"
    await slack.work()
    [reply] = slack.posted()
    assert reply.token == "xoxb-team2"
    assert {c.token for c in slack.fake.of("auth.test")} == {"xoxb-team2"}


async def test_a_forged_state_installs_nothing(
    installable: SlackHarness, sqlite_database: Database
) -> None:
    assert await install(installable, state="forged") in {400, 401}
    assert installable.fake.of("oauth.v2.access") == []
    assert await InstallationStore(CLIENT_ID, sqlite_database).bot_token("T2") is None


async def test_a_workspace_that_did_not_install_opsloop_is_not_served(
    installable: SlackHarness,
) -> None:
    mention = payloads.app_mention("<@UBOT> hello", team="T3")
    await installable.event(mention, event_id="Ev1", team="T3")
    assert installable.dispatcher.calls == []
    assert installable.posted() == []

    where = ConversationRef(channel="slack", tenant="T3", room="C1", thread_key="1.1")
    item = OutboxItem(
        id=1,
        thread_id="th_1",
        message=OutboundReply(conversation=where, text="hi", agent="a"),
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
    )
    context = DeliveryContext(
        store=installable.ops.store, settings=installable.ops.runtime.settings
    )
    with pytest.raises(ConfigError, match="not installed in Slack workspace 'T3'"):
        await installable.sender(item, context)


async def test_without_the_tables_slack_is_told_to_wait(
    make_slack: MakeSlack, oauth: SlackSettings, sqlite_database: Database
) -> None:
    await without_tables(sqlite_database)
    slack = await make_slack(slack=oauth)
    response = await slack.post(b"{}", "application/json")
    assert response.status_code == 503
    assert "slack_installations" in response.json()["error"]


async def test_the_installation_store_keeps_the_newest_token_per_team(database: Database) -> None:
    store = InstallationStore(CLIENT_ID, await with_tables(database))
    for token, at in [("xoxb-old", time.time() - 60), ("xoxb-new", time.time())]:
        await store.async_save(
            Installation(
                app_id="A1",
                team_id="T9",
                user_id="U_ADMIN",
                bot_token=token,
                bot_id="B9",
                bot_user_id="UB9",
                installed_at=at,
            )
        )
    assert await store.bot_token("T9") == "xoxb-new"
    bot = await store.async_find_bot(enterprise_id=None, team_id="T9")
    assert bot is not None and bot.bot_token == "xoxb-new"
    await store.async_delete_all(enterprise_id=None, team_id="T9")
    assert await store.bot_token("T9") is None

    states = StateStore(database)
    state = await states.async_issue()
    assert await states.async_consume(state) is True
    assert await states.async_consume(state) is False  # once only
