"""Escalation chains and notify places in the core and the API, on an injected clock."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from bot.errors import ConcurrentStepError, ConfigError
from bot.escalation import escalate_requests, escalation_event
from bot.events import RequestEscalated
from bot.outbound import RequestPrompt, RequestResolved
from bot.policy import Policy, load_policy, parse_duration
from tests.bot.api.harness import Api, MakeApi
from tests.fakes import Clock

POLICY = """
version = 1
[people.dev-1]
principals = ["web:dev-1"]
[people.oncall-1]
principals = ["web:oncall-1"]
[people.sam]
principals = ["web:sam", "slack:U_SAM"]
[people.boss]
principals = ["web:boss"]
[roles]
oncall = ["oncall-1"]
secondary = ["sam"]
manager = ["boss"]
[rooms]
"role:manager" = ["slack:#managers"]
[[rules]]
name = "production changes need on-call approval"
tiers = ["write"]
environments = ["production"]
approval = "required"
approvers = ["role:oncall"]
escalate_after = "15m"
escalate_to = ["role:secondary", "role:manager"]
notify = ["slack:#deploys"]
[[rules]]
name = "reads are always safe"
tiers = ["read"]
approval = "none"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    """The policy every app in this module runs on (``make_ops`` takes it)."""
    return load_policy(write(tmp_path, POLICY))


async def on_clock(make_api: MakeApi) -> tuple[Api, Clock]:
    api = await make_api()
    clock = Clock()
    api.ops.runtime = dataclasses.replace(api.ops.runtime, clock=clock)
    return api, clock


# ---------------------------------------------------------------- policy forms


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "15 minutes", "m", "0m", "1m1h", "-5m", "1.5h"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('escalate_after = "15m"', 'escalate_after = "soon"'), "'soon' is not a duration"),
        (('escalate_after = "15m"\n', ""), "escalate_after and escalate_to go together"),
        (('"role:manager"]', '"role:nobody"]'), "undefined roles: \\['nobody'\\]"),
        (('"role:manager"]', '"zed"]'), "escalate_to names 'zed'"),
        (('"slack:#deploys"', '"slack:deploys"'), "'slack:deploys' is not a slack place"),
        (('"slack:#deploys"', '"teams:ops"'), "expected slack:#room"),
        (('"slack:#deploys"', '"email:oncall"'), "is not a email place"),
        (('"role:manager" = ', '"role:oncall" = '), "rooms.role:oncall: no escalate_to step"),
        (('["slack:#managers"]', '["#managers"]'), "rooms.role:manager: '#managers'"),
    ],
)
def test_bad_escalation_forms_are_refused_on_load(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    assert change[0] in POLICY
    with pytest.raises(ConfigError, match=problem):
        load_policy(write(tmp_path, POLICY.replace(*change, 1)))


def test_good_forms_load(policy: Policy, tmp_path: Path) -> None:
    [production, _] = policy.rules
    assert production.escalate_to == ("role:secondary", "role:manager")
    assert production.notify == ("slack:#deploys",)
    assert policy.rooms == {"role:manager": ("slack:#managers",)}
    places = '"slack:C0123", "slack:U0456", "discord:80351110224678912", "email:ops@example.com"'
    loaded = load_policy(write(tmp_path, POLICY.replace('"slack:#deploys"', places)))
    assert len(loaded.rules[0].notify) == 4


# ---------------------------------------------------------------- the core and the API


async def test_escalation_widens_who_decides_step_by_step_and_posts_to_each_step(
    make_api: MakeApi,
) -> None:
    api, clock = await on_clock(make_api)
    thread_id, request_id = await api.paused_on_deploy()
    [card] = [
        o.message
        for o in await api.ops.store.pending_outbound(channel="slack")
        if isinstance(o.message, RequestPrompt)
    ]
    assert (card.target, card.conversation.room) == ("slack:#deploys", "#deploys")
    [pending] = (await api.thread(thread_id))["pending_requests"]
    assert pending["escalation_level"] == 0
    assert pending["next_escalation_at"] == (clock.start + timedelta(minutes=15)).isoformat()

    clock.at(14)
    assert await escalate_requests(api.ops) == []
    refused = await api.decide(request_id, "approve", "sam")
    await process_refused(api, refused)

    clock.at(15)
    assert await escalate_requests(api.ops) == [request_id]
    assert await escalate_requests(api.ops) == []  # one step per due time, however many sweeps
    body = await api.thread(thread_id)
    [step] = [e for e in body["events"] if e["kind"] == "request_escalated"]
    assert (step["level"], step["to"], step["posted_to"]) == (
        1,
        ["role:secondary"],
        ["slack:U_SAM"],
    )
    [pending] = body["pending_requests"]
    assert pending["escalation_level"] == 1
    assert pending["escalated_to"] == ["role:secondary"]
    assert pending["next_escalation_at"] == (clock.start + timedelta(minutes=30)).isoformat()
    dm = [
        o.message
        for o in await api.ops.store.pending_outbound(channel="slack")
        if isinstance(o.message, RequestPrompt) and o.message.target == "slack:U_SAM"
    ]
    assert [(m.conversation.room, m.request.request_id) for m in dm] == [("U_SAM", request_id)]

    clock.at(30)
    assert await escalate_requests(api.ops) == [request_id]
    listed = (await api.client.get("/api/human-requests")).json()["requests"]
    assert [(r["escalation_level"], r["next_escalation_at"]) for r in listed] == [(2, None)]
    thread = await api.ops.store.load_thread(thread_id)
    last = [e for e in thread.events if isinstance(e, RequestEscalated)][-1]
    assert (last.to, last.posted_to) == (("role:manager",), ("slack:#managers",))

    await process_refused(api, await api.decide(request_id, "approve", "dev-1"))  # four-eyes
    await api.work(await api.decide(request_id, "approve", "boss"))
    decided = await api.ops.store.human_request(request_id)
    assert (decided.status, decided.decided_by) == ("approved", "web:boss")
    resolved = [
        o.message
        for o in await api.ops.store.pending_outbound(channel="slack")
        if isinstance(o.message, RequestResolved)
    ]
    assert sorted(m.target or "" for m in resolved) == [
        "slack:#deploys",
        "slack:#managers",
        "slack:U_SAM",
    ]


async def process_refused(api: Api, item_id: int) -> None:
    with pytest.raises(Exception, match="may not"):
        await api.work(item_id)


async def test_a_step_taken_from_a_stale_read_is_not_taken_twice(make_api: MakeApi) -> None:
    api, clock = await on_clock(make_api)
    thread_id, request_id = await api.paused_on_deploy()
    clock.at(15)
    stale = await api.ops.store.human_request(request_id)
    step = escalation_event(api.ops.runtime.policy, stale)
    assert step is not None and step.level == 1
    thread = await api.ops.store.load_thread(thread_id)
    await api.ops.store.append(thread_id, expected_seq=thread.last_seq, events=[step])
    with pytest.raises(ConcurrentStepError):  # a second sweep that read the request before
        await api.ops.store.append(thread_id, expected_seq=thread.last_seq + 1, events=[step])
    assert (await api.ops.store.human_request(request_id)).escalation_level == 1


async def test_no_step_falls_at_or_after_expiry(make_api: MakeApi, policy: Policy) -> None:
    short = policy.model_copy(
        update={"approval": policy.approval.model_copy(update={"expires_in_seconds": 1200})}
    )
    api, clock = await on_clock(make_api)
    api.ops.runtime = dataclasses.replace(api.ops.runtime, policy=short)
    _, request_id = await api.paused_on_deploy()
    clock.at(15)
    assert await escalate_requests(api.ops) == [request_id]
    assert (await api.ops.store.human_request(request_id)).next_escalation_at is None
    clock.at(19)
    assert await escalate_requests(api.ops) == []
    clock.at(21)
    assert await api.ops.expire_requests() == [request_id]
