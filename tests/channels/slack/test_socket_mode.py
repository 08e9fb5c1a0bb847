"""Socket Mode: the gateway against a local Socket Mode server, as bolt-python tests it.

The fake's ``apps.connections.open`` hands out its own websocket; the test sends envelopes
through it and waits for their acknowledgements, which the gateway sends once the event is
stored and enqueued.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pytest

from bot.app import Opsloop
from bot.errors import ConfigError
from bot.model.offline import OfflineModel
from bot.plugins import ChannelContext
from bot.policy import Policy
from bot.store import Database
from channels.slack import SocketModeGateway, load_slack_settings, slack_plugin
from channels.slack._background import settled
from tests.channels.slack import payloads
from tests.channels.slack.fake_slack import FakeSlack
from tests.fakes import RecordingDispatcher


@dataclass
class Connected:
    ops: Opsloop
    dispatcher: RecordingDispatcher
    fake: FakeSlack
    sent: int = 0

    async def send(self, kind: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """Send one envelope and return the gateway's acknowledgement."""
        self.sent += 1
        envelope = {
            "envelope_id": f"57d6a792-4d35-4d0b-b6aa-{self.sent:012d}",
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            **extra,
        }
        acked = await self.fake.send_envelope(envelope)
        ack = await asyncio.wait_for(acked, 10)
        assert ack["envelope_id"] == envelope["envelope_id"]
        return ack


@pytest.fixture
async def connected(
    sqlite_database: Database,
    make_ops: Callable[..., Awaitable[Opsloop]],
    fake_slack: FakeSlack,
    oncall_policy: Policy,
) -> AsyncIterator[Connected]:
    settings = load_slack_settings(
        SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=fake_slack.api_url
    )
    gateway = slack_plugin(settings).gateway()  # type: ignore[misc]
    assert isinstance(gateway, SocketModeGateway)
    ops = await make_ops(sqlite_database, OfflineModel(), policy_=oncall_policy)
    dispatcher = RecordingDispatcher()
    running = asyncio.create_task(gateway(ChannelContext(ops=ops, dispatcher=dispatcher)))
    try:
        yield Connected(ops, dispatcher, fake_slack)
    finally:
        running.cancel()
        with suppress(asyncio.CancelledError):
            await running


async def test_an_event_is_acknowledged_once_stored_and_a_redelivery_is_dropped(
    connected: Connected,
) -> None:
    event = payloads.event_callback(
        payloads.app_mention("<@UBOT> what is running in staging?"), event_id="Ev1"
    )
    ack = await connected.send("events_api", event, retry_attempt=0, retry_reason="")
    [opened] = connected.fake.of("apps.connections.open")
    assert opened.token == "xapp-test"
    assert ack == {"envelope_id": ack["envelope_id"]}  # a bare acknowledgement
    [item_id] = connected.dispatcher.of("process")
    item = await connected.ops.store.inbox_item(item_id)
    assert item.event.text == "what is running in staging?"
    assert item.event.conversation.thread_key == payloads.TOP_TS

    await connected.send("events_api", event, retry_attempt=1, retry_reason="timeout")
    assert connected.dispatcher.of("process") == [item_id]


async def test_a_click_and_a_command_come_through_the_socket(connected: Connected) -> None:
    ack = await connected.send("slash_commands", payloads.slash_command(""))
    assert "what is running in staging" in ack["payload"]["text"]

    await connected.send("slash_commands", payloads.slash_command("recent deploys of checkout"))
    [anchor] = await connected.fake.called("chat.postMessage")
    await settled()
    click = payloads.block_actions(
        {"action_id": "opsloop_approve", "block_id": "b", "type": "button", "value": "hr_1"},
        user="U_ONCALL",
        message_ts=anchor.answer["ts"],
    )
    await connected.send("interactive", click)
    [command, action] = [
        (await connected.ops.store.inbox_item(i)).event for i in connected.dispatcher.of("process")
    ]
    assert command.text == "recent deploys of checkout"
    assert (action.request_id, action.actor.user_id) == ("hr_1", "U_ONCALL")
    assert action.actor.groups == ("S_SRE",)


async def test_a_refused_app_token_stops_the_gateway(
    sqlite_database: Database, make_ops: Callable[..., Awaitable[Opsloop]], fake_slack: FakeSlack
) -> None:
    settings = load_slack_settings(
        SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-wrong", SLACK_API_URL=fake_slack.api_url
    )
    ops = await make_ops(sqlite_database, OfflineModel())
    context = ChannelContext(ops=ops, dispatcher=RecordingDispatcher())
    with pytest.raises(ConfigError, match="refused SLACK_APP_TOKEN: invalid_auth"):
        await SocketModeGateway(settings)(context)
