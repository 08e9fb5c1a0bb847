"""The safety lines of approvals: crashes between commits, people behind principals, keys.

Each test here guards a line that, mutated by hand, lets a change run twice, run without
the approval it needs, or be approved by the person who asked for it.
"""

from __future__ import annotations

from typing import Any

import pytest

import bot.runtime
from bot.errors import DecisionRefusedError
from bot.events import (
    CallTool,
    HumanDecision,
    HumanRequested,
    Identity,
    Reply,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
)
from bot.inventory import INVENTORY
from bot.model import FunctionModel, ModelRequest
from bot.policy import Policy
from bot.store import Database
from tests.fakes import action_event as action
from tests.fakes import message_event

DEV = Identity(channel="cli", user_id="dev-1")
DEV2 = Identity(channel="cli", user_id="dev-2")
ONCALL = Identity(channel="cli", user_id="oncall-1")
ONCALL2 = Identity(channel="cli", user_id="oncall-2")
DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)


class Crash(BaseException):
    """The worker process dies here (nothing after it runs, nothing catches it)."""


def deploy_until_done(request: ModelRequest) -> CallTool | Reply:
    """A model that asks for the deploy until it sees the deploy's result."""
    if '<tool_result tool="deploy"' in request.context:
        return Reply(text="deployed")
    return DEPLOY


async def deploys_of(ops: Any, version: str = "1.4.2") -> int:
    deploys = await ops.runtime.resources[INVENTORY].recent_deploys("checkout", "production", 50)
    return sum(d["version"] == version and d["action"] == "deploy" for d in deploys)


def requests_in(thread: Any) -> list[HumanRequested]:
    return [e for e in thread.events if isinstance(e, HumanRequested)]


@pytest.fixture
def crash_once(monkeypatch: pytest.MonkeyPatch):
    """Kill the worker once, right after an approved call commits: before or after its run."""

    def install(*, after_the_backend: bool) -> list[ToolCalled]:
        real = bot.runtime.run_tool
        crashed: list[ToolCalled] = []

        async def run_tool(
            thread: Any, agent: Any, call: ToolCalled, rt: Any, store: Any = None
        ) -> Any:
            if crashed or call.approved_by is None:
                return await real(thread, agent, call, rt, store)
            crashed.append(call)
            if after_the_backend:  # the change is made; its result is lost
                await real(thread, agent, call, rt, store)
            raise Crash

        monkeypatch.setattr(bot.runtime, "run_tool", run_tool)
        return crashed

    return install


async def paused_on_deploy(ops: Any, sender: Identity = DEV) -> tuple[str, str]:
    outcome = await ops.submit(
        message_event("deploy checkout 1.4.2 to production", sender=sender, thread="t1")
    )
    request = requests_in(outcome.thread)[-1]
    return outcome.thread.id, request.request_id


@pytest.mark.parametrize("after_the_backend", [False, True])
async def test_an_approved_call_cut_short_then_a_refused_click_runs_once(
    database: Database, make_ops, crash_once, after_the_backend: bool
) -> None:
    """Regression: the refused click buried the approved call; a resume asked the model
    again, which made a second approval request (and, approved, a second deploy)."""
    ops = await make_ops(database, FunctionModel(deploy_until_done))
    thread_id, request_id = await paused_on_deploy(ops)
    crashed = crash_once(after_the_backend=after_the_backend)
    with pytest.raises(Crash):
        await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))
    assert crashed, "the approved call was committed and then cut short"

    with pytest.raises(DecisionRefusedError, match="already approved"):
        await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL2))
    thread = await ops.resume(thread_id)  # what the sweeper does for a thread left running

    assert await deploys_of(ops) == 1
    assert [r.request_id for r in requests_in(thread)] == [request_id]
    results = [e for e in thread.events if isinstance(e, ToolReturned)]
    assert [r.call_id for r in results] == [crashed[0].call_id]
    assert thread.status == ThreadStatus.WAITING


@pytest.mark.parametrize("after_the_backend", [False, True])
async def test_an_approved_call_cut_short_then_a_message_runs_once(
    database: Database, make_ops, crash_once, after_the_backend: bool
) -> None:
    """Regression: a follow-up message buried the approved call; the model was asked
    again and requested a second approval for the same deploy."""
    ops = await make_ops(database, FunctionModel(deploy_until_done))
    thread_id, request_id = await paused_on_deploy(ops)
    crash_once(after_the_backend=after_the_backend)
    with pytest.raises(Crash):
        await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))

    outcome = await ops.submit(message_event("is it done?", sender=DEV, thread="t1"))
    assert outcome.thread.id == thread_id
    thread = outcome.thread

    assert await deploys_of(ops) == 1
    assert len(requests_in(thread)) == 1
    kinds = [e.kind for e in thread.events]
    # The call was resolved before the model was asked anything about the new message.
    last_message = max(i for i, k in enumerate(kinds) if k == "user_message")
    after = kinds[last_message:]
    assert after.index("tool_result") < after.index("model_call")


async def test_the_same_change_asked_again_in_a_turn_runs_once(
    database: Database, make_ops
) -> None:
    """Two approvals of the same change in one turn make one change, not two.

    Regression: the approved call's key was (thread, request id), so a second approval
    request for the same change ran it again under a new key."""
    asked = {"count": 0}

    def twice(request: ModelRequest) -> CallTool | Reply:
        # The backend's answer looks like a failure the first time; the model asks again.
        results = request.context.count('<tool_result tool="deploy"')
        if results < 2:
            asked["count"] += 1
            return DEPLOY
        return Reply(text="deployed")

    ops = await make_ops(database, FunctionModel(twice))
    thread_id, first = await paused_on_deploy(ops)
    await ops.submit(action(first, HumanDecision.APPROVE, ONCALL))
    thread = await ops.store.load_thread(thread_id)
    second = requests_in(thread)[-1]
    assert second.request_id != first
    await ops.submit(action(second.request_id, HumanDecision.APPROVE, ONCALL2))

    assert await deploys_of(ops) == 1
    stored = [await ops.store.human_request(r.request_id) for r in requests_in(thread)]
    assert stored[0].request.change_key == stored[1].request.change_key


async def test_two_approved_changes_in_one_thread_both_run(database: Database, make_ops) -> None:
    """Guards the approved call's key: keyed by thread alone, the second change never runs."""
    script = iter(
        [
            DEPLOY,
            Reply(text="deployed"),
            CallTool(
                tool="restart",
                arguments={"service": "search", "environment": "production"},
            ),
            Reply(text="restarted"),
        ]
    )
    ops = await make_ops(database, FunctionModel(lambda _: next(script)))
    _, first = await paused_on_deploy(ops)
    await ops.submit(action(first, HumanDecision.APPROVE, ONCALL))
    outcome = await ops.submit(
        message_event("restart search in production", sender=DEV, thread="t1")
    )
    second = requests_in(outcome.thread)[-1].request_id
    await ops.submit(action(second, HumanDecision.APPROVE, ONCALL))

    history = await ops.runtime.resources[INVENTORY].recent_deploys("search", "production", 10)
    assert [d["action"] for d in history if d["requested_by"] == "cli:dev-1"] == ["restart"]
    assert await deploys_of(ops) == 1


async def test_two_safe_changes_in_one_thread_both_run(database: Database, make_ops) -> None:
    """Guards the runtime's key (thread, step): keyed by thread alone, the second is skipped."""
    script = iter(
        [
            CallTool(
                tool="deploy",
                arguments={"service": "checkout", "version": "1.5.0", "environment": "staging"},
            ),
            CallTool(tool="restart", arguments={"service": "search", "environment": "staging"}),
            Reply(text="both done"),
        ]
    )
    ops = await make_ops(database, FunctionModel(lambda _: next(script)))
    await ops.submit(message_event("deploy checkout 1.5.0 to staging, restart search", sender=DEV))
    inventory = ops.runtime.resources[INVENTORY]
    checkout = await inventory.recent_deploys("checkout", "staging", 10)
    search = await inventory.recent_deploys("search", "staging", 10)
    assert any(d["version"] == "1.5.0" and d["action"] == "deploy" for d in checkout)
    assert any(d["action"] == "restart" and d["requested_by"] == "cli:dev-1" for d in search)


# ---------------------------------------------------------------- four-eyes by person


async def test_the_requester_may_not_approve_through_another_principal(
    database: Database, make_ops, policy: Policy
) -> None:
    """Regression: four-eyes compared principals, so web:oncall-1 approved cli:oncall-1's."""
    ops = await make_ops(database, FunctionModel(deploy_until_done))
    _, request_id = await paused_on_deploy(ops, sender=Identity(channel="web", user_id="oncall-1"))
    with pytest.raises(DecisionRefusedError, match="four-eyes"):
        await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))
    assert (await ops.store.human_request(request_id)).status == "pending"
    await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL2))
    assert await deploys_of(ops) == 1


async def test_a_silent_requester_stays_a_requester(database: Database, make_ops) -> None:
    """Regression: the requester was whoever spoke last, so after oncall-2 said "thanks"
    the person who asked for the deploy could approve it."""
    script: list[Any] = [
        CallTool(tool="ask_human", arguments={"question": "Which version?"}),
        DEPLOY,
        Reply(text="deployed"),
    ]
    ops = await make_ops(database, FunctionModel(lambda _: script.pop(0)))
    outcome = await ops.submit(
        message_event(
            "deploy checkout to production", sender=Identity(channel="web", user_id="oncall-1")
        )
    )
    question = requests_in(outcome.thread)[-1].request_id
    await ops.submit(action(question, HumanDecision.ANSWER, ONCALL2, "1.4.2, thanks"))
    thread = await ops.store.load_thread(outcome.thread.id)
    approval = requests_in(thread)[-1]
    assert approval.type == "approval"
    assert set(approval.requesters) == {"oncall-1", "oncall-2"}
    for person in (ONCALL, ONCALL2):
        with pytest.raises(DecisionRefusedError, match="four-eyes"):
            await ops.submit(action(approval.request_id, HumanDecision.APPROVE, person))
    assert await deploys_of(ops) == 0


async def test_an_approval_comment_is_not_the_approvers_request(
    database: Database, make_ops
) -> None:
    """Regression: "also roll back search" in oncall-1's approval became a request
    attributed to the original requester, which oncall-1 then approved."""
    rollback = CallTool(
        tool="rollback", arguments={"service": "search", "environment": "production"}
    )
    script: list[Any] = [DEPLOY, rollback, Reply(text="done")]
    ops = await make_ops(database, FunctionModel(lambda _: script.pop(0)))
    thread_id, request_id = await paused_on_deploy(ops)
    await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL, "also roll back search"))
    thread = await ops.store.load_thread(thread_id)
    second = requests_in(thread)[-1]
    assert second.tool == "rollback"
    assert "oncall-1" in second.requesters and "dev-1" in second.requesters
    with pytest.raises(DecisionRefusedError, match="four-eyes"):
        await ops.submit(action(second.request_id, HumanDecision.APPROVE, ONCALL))


async def test_four_eyes_off_lets_the_requester_approve(
    database: Database, make_ops, policy: Policy
) -> None:
    """Guards the policy switch: with ``four_eyes = false`` the requester may approve."""
    relaxed = policy.model_copy(
        update={"approval": policy.approval.model_copy(update={"four_eyes": False})}
    )
    ops = await make_ops(database, FunctionModel(deploy_until_done), policy_=relaxed)
    _, request_id = await paused_on_deploy(ops, sender=Identity(channel="web", user_id="oncall-1"))
    await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))
    assert (await ops.store.human_request(request_id)).status == "approved"
    assert await deploys_of(ops) == 1


async def test_a_message_while_paused_from_a_bystander_does_not_unbar_the_requester(
    database: Database, make_ops
) -> None:
    """Four-eyes holds whoever spoke after the request was made."""
    ops = await make_ops(database, FunctionModel(deploy_until_done))
    requester = Identity(channel="web", user_id="oncall-1")
    _, request_id = await paused_on_deploy(ops, sender=requester)
    bystander = Identity(channel="web", user_id="dev-2")
    outcome = await ops.submit(message_event("thanks", sender=bystander, thread="t1"))
    assert outcome.thread.status == ThreadStatus.PAUSED  # the same thread, still waiting
    with pytest.raises(DecisionRefusedError, match="four-eyes"):
        await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))


# ---------------------------------------------------------------- leases, expiry, the fence


async def test_the_lease_is_renewed_while_a_long_step_runs(
    sqlite_database: Database, make_ops, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards lease renewal: unrenewed, a second worker takes the thread mid-step."""
    import asyncio

    short = settings.model_copy(update={"lease_seconds": 0.3})
    script = iter(
        [CallTool(tool="list_services", arguments={"environment": "staging"}), Reply(text="ok")]
    )
    ops = await make_ops(sqlite_database, FunctionModel(lambda _: next(script)), settings_=short)
    running, finish = asyncio.Event(), asyncio.Event()
    inventory = ops.runtime.resources[INVENTORY]
    real = inventory.list_services

    async def slow(environment: Any) -> Any:
        running.set()
        await finish.wait()
        return await real(environment)

    monkeypatch.setattr(inventory, "list_services", slow)
    item = await ops.ingest(message_event("what is running in staging?", sender=DEV))
    assert item is not None
    work = asyncio.create_task(ops.process(item.id))
    await asyncio.wait_for(running.wait(), 10)
    thread_id = (await ops.store.inbox_item(item.id)).thread_id or ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 4 * short.lease_seconds  # the lease must outlive several TTLs
    while loop.time() < deadline:
        assert not await ops.store.acquire_lease(thread_id, "another-worker", 0.3)
        await asyncio.sleep(0.05)
    finish.set()
    outcome = await asyncio.wait_for(work, 10)
    assert outcome is not None and outcome.thread.status == ThreadStatus.WAITING


async def test_an_approval_after_expiry_is_refused_before_the_sweeper_runs(
    database: Database, make_ops
) -> None:
    """Guards the expiry check at decision time (the sweeper may not have run yet)."""
    from datetime import timedelta

    from bot.events import utcnow

    now = [utcnow()]
    ops = await make_ops(database, FunctionModel(deploy_until_done), clock=lambda: now[0])
    thread_id, request_id = await paused_on_deploy(ops)
    now[0] += timedelta(hours=2)
    with pytest.raises(DecisionRefusedError, match="expired"):
        await ops.submit(action(request_id, HumanDecision.APPROVE, ONCALL))
    assert (await ops.store.human_request(request_id)).status == "expired"
    assert await deploys_of(ops) == 0
    thread = await ops.store.load_thread(thread_id)
    assert thread.status != ThreadStatus.PAUSED


async def test_a_redelivered_event_is_applied_once(
    database: Database, make_ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the inbox's "applied" fence: a task redelivered after a crash mid-run must
    not add its message (or its decision) to the thread a second time."""
    calls = {"n": 0}

    def crash_second(request: ModelRequest) -> CallTool | Reply:
        calls["n"] += 1
        if calls["n"] == 1:
            return CallTool(tool="list_services", arguments={"environment": "staging"})
        if calls["n"] == 2:
            raise Crash  # after the message and the tool call were committed
        return Reply(text="hello")

    ops = await make_ops(database, FunctionModel(crash_second))
    item = await ops.ingest(message_event("hello there", sender=DEV, thread="t1"))
    assert item is not None
    with pytest.raises(Crash):
        await ops.process(item.id)
    assert (await ops.store.inbox_item(item.id)).status == "applied"
    await ops.store.release_lease(item.thread_id or "", ops.owner)  # the dead worker's lapses
    outcome = await ops.process(item.id)  # the broker redelivers the task
    assert outcome is not None
    kinds = [e.kind for e in outcome.thread.events]
    assert kinds.count("user_message") == 1
    assert kinds.count("tool_result") == 1
    assert kinds.count("agent_reply") == 1


async def test_a_duplicate_task_that_read_the_item_early_applies_nothing(
    database: Database, make_ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the store's "applied" fence: two deliveries of one task both read the item
    as pending; the second to take the lease must not append the message again."""
    from bot.errors import ConcurrentStepError

    ops = await make_ops(database, FunctionModel(lambda _: Reply(text="hello")))
    item = await ops.ingest(message_event("hello there", sender=DEV, thread="t1"))
    assert item is not None
    stale = await ops.store.inbox_item(item.id)  # the duplicate's read, before the first ran
    first = await ops.process(item.id)
    assert first is not None

    async def early_read(item_id: int, owner: str, ttl: float, **_: Any) -> Any:
        from bot.store._turns import Claim

        assert await ops.store.acquire_lease(first.thread.id, owner, ttl)
        thread = await ops.store.load_thread(first.thread.id)
        return Claim(item=stale, thread=thread, attempt=1)

    monkeypatch.setattr(ops.store, "claim", early_read)
    with pytest.raises(ConcurrentStepError, match="already applied"):
        await ops.process(item.id)
    thread = await ops.store.load_thread(first.thread.id)
    assert [e.kind for e in thread.events].count("user_message") == 1
