"""Real worker processes on real Redis and PostgreSQL: duplicates, races, crashes, sweeps."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text

from bot.app import Opsloop
from bot.config import load_settings
from bot.events import (
    HumanDecision,
    Identity,
    ThreadStatus,
)
from bot.inventory import INVENTORY
from bot.store._tables import Base
from tests.conftest import need_service
from tests.fakes import action_event as action
from tests.fakes import message_event
from tests.workers.processes import stop_processes
from workers.celery_app import celery_app, configure
from workers.dispatch import CeleryDispatcher

REDIS_URL = os.environ.get("OPSLOOP_TEST_REDIS", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parents[2]
DEV = Identity(channel="web", user_id="dev-1")
ONCALL_1 = Identity(channel="web", user_id="oncall-1")
ONCALL_2 = Identity(channel="web", user_id="oncall-2")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        need_service("Redis", str(exc))
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def env(tmp_path: Path, postgres_url: str, redis_url: str) -> dict[str, str]:
    """Settings for the test and its worker processes, as environment variables."""
    return {
        "DATABASE_URL": postgres_url.replace("+psycopg", ""),
        "REDIS_URL": redis_url,
        "OPSLOOP_HOME": str(tmp_path),
        "OPSLOOP_LEASE_SECONDS": "2",
        "OPSLOOP_SWEEP_GRACE": "0",
        "OPSLOOP_AGENTS": "tests.workers.agents_for_tests:registry",
        "OPSLOOP_TEST_BLOCK_FILE": str(tmp_path / "block"),
    }


class Workers:
    """Starts and kills real `opsloop worker` processes."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []
        self.log_files: list[Any] = []

    def start(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.running)}.log", "wb")
        self.log_files.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker", f"--concurrency={concurrency}"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the pool children die with it
        )
        self.running.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        stop_processes(self.running, self.log_files)


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(env, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
async def ops(env: dict[str, str]) -> AsyncIterator[Opsloop]:
    """The test's own view of the same database and broker (it never runs tasks itself)."""
    settings = load_settings(**env)
    app = await Opsloop.from_settings(settings, auto_migrate=False)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with app.store.db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await app.runtime.resources[INVENTORY].prepare()  # type: ignore[attr-defined]
    configure(settings)
    yield app
    await app.aclose()


@pytest.fixture
def dispatcher(ops: Opsloop) -> CeleryDispatcher:
    return CeleryDispatcher(celery_app)


async def wait_for(check: Callable[[], Awaitable[Any]], what: str, within: float = 45) -> Any:
    """Poll observable state until ``check`` returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def message(text: str, sender: Identity = DEV):
    return message_event(text, sender=sender)


async def finished(ops: Opsloop, item_id: int) -> Any:
    item = await ops.store.inbox_item(item_id)
    return item if item.status in {"done", "failed"} else None


async def pending_request(ops: Opsloop) -> Any:
    requests = await ops.store.human_requests()
    return requests[0] if requests else None


pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_an_event_submitted_twice_concurrently_gives_one_step(ops, dispatcher, workers):
    workers.start(concurrency=2)
    event = message("what is running in staging?")
    items = await asyncio.gather(*(ops.ingest(event) for _ in range(4)))
    [item] = [i for i in items if i is not None]
    for _ in range(3):  # the broker delivering the same work more than once
        dispatcher.process(item.id)
    done = await wait_for(lambda: finished(ops, item.id), "the item to finish")
    assert done.status == "done"
    thread = await ops.store.load_thread(done.thread_id)
    kinds = [e.kind for e in thread.events]
    assert kinds.count("user_message") == 1
    assert kinds.count("agent_reply") == 1
    assert thread.status == ThreadStatus.WAITING


async def test_approve_and_reject_racing_record_one_decision(ops, dispatcher, workers):
    workers.start(concurrency=2)
    first = await ops.ingest(message("deploy checkout 1.4.2 to production"))
    dispatcher.process(first.id)
    request = await wait_for(lambda: pending_request(ops), "the approval request")
    approve, reject = await asyncio.gather(
        ops.ingest(action(request.id, HumanDecision.APPROVE, ONCALL_1)),
        ops.ingest(action(request.id, HumanDecision.REJECT, ONCALL_2, "no")),
    )
    dispatcher.process(approve.id)
    dispatcher.process(reject.id)
    results = [
        await wait_for(lambda i=i: finished(ops, i.id), "a decision") for i in (approve, reject)
    ]
    assert sorted(r.status for r in results) == ["done", "failed"]
    [loser] = [r for r in results if r.status == "failed"]
    assert "already" in (loser.error or "")
    thread = await wait_for(
        lambda: _thread_in(ops, request.thread_id, ThreadStatus.WAITING), "the thread to settle"
    )
    decisions = [e for e in thread.events if e.kind == "human_response"]
    assert len(decisions) == 1
    refused = [e for e in thread.events if e.kind == "decision_refused"]
    assert len(refused) == 1
    decided = await ops.store.human_request(request.id)
    assert decided.status in {"approved", "rejected"}


async def _thread_in(ops: Opsloop, thread_id: str, status: ThreadStatus) -> Any:
    thread = await ops.store.load_thread(thread_id)
    return thread if thread.status == status else None


async def test_an_unauthorised_approver_is_refused_and_recorded(ops, dispatcher, workers):
    workers.start(concurrency=1)
    first = await ops.ingest(message("deploy checkout 1.4.2 to production"))
    dispatcher.process(first.id)
    request = await wait_for(lambda: pending_request(ops), "the approval request")
    attempt = await ops.ingest(action(request.id, HumanDecision.APPROVE, DEV))
    dispatcher.process(attempt.id)
    result = await wait_for(lambda: finished(ops, attempt.id), "the refusal")
    assert result.status == "failed"
    assert "web:dev-1 may not decide" in (result.error or "")
    thread = await ops.store.load_thread(request.thread_id)
    refused = thread.events[-1]
    assert refused.kind == "decision_refused" and refused.actor == DEV
    assert (await ops.store.human_request(request.id)).status == "pending"
    assert thread.status == ThreadStatus.PAUSED


async def test_a_lost_broker_message_is_processed_after_the_sweep(ops, dispatcher, workers):
    workers.start(concurrency=1)
    item = await ops.ingest(message("status of checkout in production"))
    # No dispatch: the broker message is "lost". Only the sweeper can find the work.
    assert (await ops.store.inbox_item(item.id)).status == "pending"
    celery_app.send_task("opsloop.sweep")
    done = await wait_for(lambda: finished(ops, item.id), "the swept item to finish")
    assert done.status == "done"
    thread = await ops.store.load_thread(done.thread_id)
    assert thread.events[-2].kind == "agent_reply"


async def test_an_expired_request_is_rejected_by_the_sweeper(
    ops, dispatcher, workers, env, tmp_path
):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        (ROOT / "bot" / "default_policy.toml")
        .read_text()
        .replace("expires_in_seconds = 3600", "expires_in_seconds = 1")
    )
    workers.env["OPSLOOP_POLICY_FILE"] = str(policy)
    workers.start(concurrency=1)
    first = await ops.ingest(message("deploy search 0.18.1 to production"))
    dispatcher.process(first.id)
    request = await wait_for(lambda: pending_request(ops), "the approval request")

    async def expired() -> Any:
        celery_app.send_task("opsloop.sweep")
        current = await ops.store.human_request(request.id)
        return current if current.status == "expired" else None

    await wait_for(expired, "the sweeper to expire the request")
    thread = await wait_for(
        lambda: _thread_in(ops, request.thread_id, ThreadStatus.WAITING), "the agent's report"
    )
    response = next(e for e in thread.events if e.kind == "human_response")
    assert response.decision == HumanDecision.REJECT and response.actor is None
    assert "expired" in thread.events[-2].text.lower() or "expired" in (response.comment or "")


async def test_a_worker_killed_mid_step_loses_nothing_and_repeats_nothing(
    ops, dispatcher, workers, tmp_path
):
    block = tmp_path / "block"
    block.touch()
    first = workers.start(concurrency=1)
    item = await ops.ingest(message("deploy checkout 1.4.2 to staging"))
    dispatcher.process(item.id)

    async def deployed() -> Any:
        history = await ops.runtime.resources[INVENTORY].recent_deploys(  # type: ignore[attr-defined]
            "checkout", "staging", 5
        )
        return [h for h in history if h["version"] == "1.4.2" and h["requested_by"] != "seed"]

    await wait_for(deployed, "the side effect to happen")
    workers.kill(first)  # SIGKILL, mid-step: the effect is done, its result not recorded
    thread = (await ops.store.inbox_item(item.id)).thread_id
    assert thread is not None
    before = await ops.store.load_thread(thread)
    assert before.events[-1].kind == "tool_call"
    assert before.status == ThreadStatus.RUNNING

    block.unlink()
    workers.start(concurrency=1)

    async def recovered() -> Any:
        celery_app.send_task("opsloop.sweep")
        return await finished(ops, item.id)

    done = await wait_for(recovered, "another worker to take over", within=60)
    assert done.status == "done"
    after = await ops.store.load_thread(thread)
    kinds = [e.kind for e in after.events]
    assert kinds.count("tool_call") == 1
    assert kinds.count("tool_result") == 1
    assert kinds.count("agent_reply") == 1
    assert after.status == ThreadStatus.WAITING
    assert len(await deployed()) == 1  # the deploy happened exactly once
