"""Who a Slack user is: names and user groups, cached, never holding up the acknowledgement."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from channels.slack._background import settled
from channels.slack._directory import RETRY_AFTER, Directory


def response(data: dict[str, Any]) -> AsyncSlackResponse:
    return AsyncSlackResponse(
        client=None,
        http_verb="GET",
        api_url="x",
        req_args={},
        data=data,
        headers={},
        status_code=200,
    )


@dataclass
class Client:
    """The two Web API methods the directory calls, answering as told."""

    groups: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    gate: asyncio.Event | None = None
    calls: list[str] = field(default_factory=list)

    async def users_info(self, *, user: str) -> AsyncSlackResponse:
        self.calls.append("users.info")
        return response({"ok": True, "user": {"id": user, "name": user.lower(), "profile": {}}})

    async def usergroups_list(self, *, include_users: bool) -> AsyncSlackResponse:
        self.calls.append("usergroups.list")
        if self.gate is not None:
            await self.gate.wait()
        if self.error == "timeout":
            raise TimeoutError
        if self.error:
            raise SlackApiError(self.error, response({"ok": False, "error": self.error}))
        return response({"ok": True, "usergroups": self.groups})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SRE = [{"id": "S1", "users": ["U1"]}, {"id": "S0", "users": ["U1", "U2"]}]


async def test_names_and_groups_are_cached_and_refreshed_after_the_ttl() -> None:
    client, clock = Client(groups=SRE), Clock()
    directory = Directory(300, clock=clock)
    who = await directory.identity(client, "T1", "U1", wait=10)  # type: ignore[arg-type]
    assert (who.principal, who.display_name, who.groups) == ("slack:U1", "u1", ("S0", "S1"))
    await directory.identity(client, "T1", "U2", wait=10)  # type: ignore[arg-type]
    assert client.calls.count("usergroups.list") == 1

    clock.now += 301
    client.groups = []
    stale = await directory.identity(client, "T1", "U1", wait=10)  # type: ignore[arg-type]
    assert stale.groups == ("S0", "S1")  # answered from the cache; the refresh runs behind
    await settled()
    fresh = await directory.identity(client, "T1", "U1")  # type: ignore[arg-type]
    assert fresh.groups == ()
    assert client.calls.count("usergroups.list") == 2


async def test_a_workspace_without_user_groups_means_no_groups() -> None:
    client = Client(error="paid_teams_only")
    directory = Directory(300, clock=Clock())
    who = await directory.identity(client, "T1", "U1", name="from-payload", wait=10)  # type: ignore[arg-type]
    assert who.groups == ()
    assert who.auth == "slack"
    assert directory.groups_known("T1")  # a real answer: there are none
    await directory.identity(client, "T1", "U1")  # type: ignore[arg-type]
    assert client.calls.count("usergroups.list") == 1  # and it is cached like one


@pytest.mark.parametrize("error", ["ratelimited", "internal_error", "timeout"])
async def test_a_failed_lookup_keeps_the_last_good_groups_and_retries_soon(error: str) -> None:
    """Regression: one failed usergroups.list emptied everyone's groups for the whole TTL."""
    client, clock = Client(groups=SRE), Clock()
    directory = Directory(300, clock=clock)
    await directory.identity(client, "T1", "U1", wait=10)  # type: ignore[arg-type]

    clock.now += 301
    client.error = error
    await directory.identity(client, "T1", "U1")  # type: ignore[arg-type]
    await settled()
    kept = await directory.identity(client, "T1", "U1")  # type: ignore[arg-type]
    assert kept.groups == ("S0", "S1")
    assert client.calls.count("usergroups.list") == 2

    client.error = None
    clock.now += RETRY_AFTER  # tried again soon, not after another 300 s
    await directory.identity(client, "T1", "U1")  # type: ignore[arg-type]
    await settled()
    assert client.calls.count("usergroups.list") == 3


async def test_a_cold_cache_that_cannot_answer_says_it_does_not_know() -> None:
    """Regression: a failure on a cold cache stored "no groups" as if it were the answer."""
    client, clock = Client(groups=SRE, error="ratelimited"), Clock()
    directory = Directory(300, clock=clock)
    who = await directory.identity(client, "T1", "U1", wait=10)  # type: ignore[arg-type]
    assert who.groups == ()
    assert not directory.groups_known("T1")  # so a decision is asked again, not refused

    client.error = None
    clock.now += RETRY_AFTER
    again = await directory.identity(client, "T1", "U1", wait=10)  # type: ignore[arg-type]
    assert again.groups == ("S0", "S1")
    assert directory.groups_known("T1")


async def test_a_slow_lookup_does_not_hold_up_the_event_and_fills_the_cache() -> None:
    client = Client(groups=SRE, gate=asyncio.Event())
    directory = Directory(300, clock=Clock())
    hurried = await directory.identity(client, "T1", "U1", wait=0.01)  # type: ignore[arg-type]
    assert hurried.groups == ()
    assert not directory.groups_known("T1")

    assert client.gate is not None
    client.gate.set()
    await settled()
    later = await directory.identity(client, "T1", "U1")  # type: ignore[arg-type]
    assert later.groups == ("S0", "S1")
    assert client.calls.count("usergroups.list") == 1  # the first lookup, finished
