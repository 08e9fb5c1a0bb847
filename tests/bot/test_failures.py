"""Work that must never hang or vanish: failures are recorded, counted, capped and told."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.config import Settings
from bot.events import (
    AgentReply,
    ErrorRaised,
    HumanRequested,
    Identity,
    ThreadStatus,
)
from bot.model import FunctionModel, ModelRequest
from bot.store import Database
from tests.fakes import message_event

DEV = Identity(channel="web", user_id="dev-1")


class Crash(BaseException):
    """The worker process dies here: nothing catches it, nothing is recorded."""


def broken(request: ModelRequest) -> None:
    raise RuntimeError("the model client is broken")


async def retry_until_finished(ops, item_id: int, limit: int = 20) -> int:
    """Process ``item_id`` as the sweeper would, until it is finished; the tries it took."""
    for tries in range(1, limit + 1):
        try:
            await ops.process(item_id)
        except RuntimeError:
            pass
        if (await ops.store.inbox_item(item_id)).status in {"done", "failed"}:
            return tries
    raise AssertionError(f"inbox item {item_id} still unfinished after {limit} tries")


async def test_a_failing_step_is_recorded_then_escalated_not_retried_forever(
    sqlite_database: Database, make_ops
) -> None:
    """Regression: an exception nobody modelled left the thread running with no error
    event and attempts at 0; the sweeper re-ran it every interval, without end."""
    ops = await make_ops(sqlite_database, FunctionModel(broken))
    item = await ops.ingest(message_event("restart checkout in staging", sender=DEV))
    assert item is not None
    with pytest.raises(RuntimeError):
        await ops.process(item.id)
    stored = await ops.store.inbox_item(item.id)
    assert (stored.status, stored.attempts) == ("applied", 1)
    assert "RuntimeError: the model client is broken" in (stored.error or "")
    thread = await ops.store.load_thread(stored.thread_id or "")
    errors = [e for e in thread.events if isinstance(e, ErrorRaised)]
    assert [e.source for e in errors] == ["internal"]
    assert "try 1 of 5" in errors[0].message

    tries = 1 + await retry_until_finished(ops, item.id)
    # Three errors in a row escalate to a person before the last try is spent.
    assert tries == ops.runtime.settings.max_consecutive_errors + 1
    thread = await ops.store.load_thread(thread.id)
    assert thread.status == ThreadStatus.PAUSED
    assert isinstance(thread.events[-2], HumanRequested)
    assert "errors in a row" in thread.events[-2].question
    assert (await ops.store.inbox_item(item.id)).attempts == tries


async def test_past_the_last_try_the_item_fails_and_the_person_is_told(
    sqlite_database: Database, make_ops, settings: Settings
) -> None:
    """Attempts are capped: then the item is failed with its reason, and a reply says so."""
    capped = settings.model_copy(update={"max_attempts": 2, "max_consecutive_errors": 10})
    ops = await make_ops(sqlite_database, FunctionModel(broken), settings_=capped)
    item = await ops.ingest(message_event("restart checkout in staging", sender=DEV))
    assert item is not None
    assert await retry_until_finished(ops, item.id) == 2
    stored = await ops.store.inbox_item(item.id)
    assert stored.status == "failed"
    assert "RuntimeError: the model client is broken" in (stored.error or "")
    thread = await ops.store.load_thread(stored.thread_id or "")
    assert thread.status == ThreadStatus.FAILED
    reply = thread.events[-2]
    assert isinstance(reply, AgentReply) and "stopped after 2 tries" in reply.text
    outbound = await ops.store.pending_outbound(thread_id=thread.id, due_only=False)
    assert [o.message.kind for o in outbound] == ["reply"]


async def test_a_worker_that_dies_on_every_try_is_given_up(
    sqlite_database: Database, make_ops, settings: Settings
) -> None:
    """A try that kills its worker records nothing; the count still stops the loop."""

    def fatal(request: ModelRequest) -> None:
        raise Crash

    capped = settings.model_copy(update={"max_attempts": 3})
    ops = await make_ops(sqlite_database, FunctionModel(fatal), settings_=capped)
    item = await ops.ingest(message_event("restart checkout in staging", sender=DEV))
    assert item is not None
    for _ in range(3):
        with pytest.raises(Crash):
            await ops.process(item.id)
    outcome = await ops.process(item.id)
    assert outcome is not None
    stored = await ops.store.inbox_item(item.id)
    assert stored.status == "failed"
    assert "worker stopped" in (stored.error or "")
    assert outcome.thread.status == ThreadStatus.FAILED
    assert isinstance(outcome.thread.events[-2], AgentReply)


async def test_a_thread_left_running_that_keeps_failing_is_given_up(
    sqlite_database: Database, make_ops, settings: Settings
) -> None:
    """The sweeper's resume of an orphaned thread is capped the same way."""
    capped = settings.model_copy(update={"max_attempts": 2, "max_consecutive_errors": 10})
    ops = await make_ops(sqlite_database, FunctionModel(broken), settings_=capped)
    item = await ops.ingest(message_event("restart checkout in staging", sender=DEV))
    assert item is not None
    with pytest.raises(RuntimeError):
        await ops.process(item.id)
    thread_id = (await ops.store.inbox_item(item.id)).thread_id or ""
    thread = await ops.resume(thread_id)
    assert thread.status == ThreadStatus.FAILED
    assert sum(isinstance(e, ErrorRaised) for e in thread.events) == 2


def test_a_missing_prompt_stops_start_up_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a missing prompt file was found only by the first step, in a loop."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPSLOOP_HOME", str(tmp_path))
    declared = tmp_path / "tools"
    declared.mkdir()
    (declared / "helper.toml").write_text(
        'kind = "agent"\ndescription = "helps"\nprompt = "nowhere"\ntools = ["service_status"]\n'
    )
    monkeypatch.setenv("OPSLOOP_TOOLS_DIR", str(declared))
    runner = CliRunner()
    for command in (["worker"], ["beat"], ["api"]):
        result = runner.invoke(cli_app, command, catch_exceptions=False)
        assert result.exit_code == 2, (command, result.output)
        assert "prompt 'nowhere'" in result.output
        assert "Traceback" not in result.output


async def test_work_finished_by_a_try_that_died_before_its_bookkeeping_is_done(
    sqlite_database: Database, make_ops, settings: Settings
) -> None:
    """A try that did all the work and died before marking the item done is not a failure:
    past the last try, the item is finished as done, not given up. (The turn's last commit
    now marks the item done itself; an item left applied by a worker that stopped between
    the two, as earlier releases did, must still end well.)"""
    from sqlalchemy import update

    from bot.events import Reply
    from bot.store._tables import InboxRow

    capped = settings.model_copy(update={"max_attempts": 1})
    ops = await make_ops(
        sqlite_database, FunctionModel(lambda _: Reply(text="hi")), settings_=capped
    )
    first = await ops.submit(message_event("hello", sender=DEV))
    async with sqlite_database.transaction() as connection:
        await connection.execute(
            update(InboxRow)
            .where(InboxRow.id == first.item.id)
            .values(status="applied", processed_at=None)
        )
    outcome = await ops.process(first.item.id)
    assert outcome is not None and outcome.thread.status == ThreadStatus.WAITING
    assert outcome.new_events == ()  # nothing done twice
    assert (await ops.store.inbox_item(first.item.id)).status == "done"


async def test_a_try_killed_in_its_last_commit_leaves_nothing_half_done(
    database: Database, make_ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message, the reply, the item's state and the lease go in one commit: a worker
    killed there leaves the item pending and the thread free, and the next try applies
    the message once and finishes the item."""
    from bot.events import Reply

    ops = await make_ops(database, FunctionModel(lambda _: Reply(text="hi")))
    item = await ops.ingest(message_event("hello", sender=DEV))
    assert item is not None and item.thread_id is not None

    async def killed(*args: object, **kwargs: object) -> object:
        raise Crash

    monkeypatch.setattr(ops.store, "append", killed)
    with pytest.raises(Crash):
        await ops.process(item.id)
    monkeypatch.undo()
    stored = await ops.store.inbox_item(item.id)
    assert (stored.status, stored.attempts) == ("pending", 1)
    assert (await ops.store.load_thread(item.thread_id)).events == ()
    outcome = await ops.process(item.id)  # redelivered; the lease was given back on the way out
    assert outcome is not None
    assert [e.kind for e in outcome.thread.events].count("user_message") == 1
    assert (await ops.store.inbox_item(item.id)).status == "done"


async def test_waiting_for_a_busy_thread_is_not_a_try(
    sqlite_database: Database, make_ops, settings: Settings
) -> None:
    """Regression: a try was counted before the thread's lease was taken, so an event
    queued behind a long step could use up its tries just waiting, and be given up."""
    from bot.app import ThreadBusyError
    from bot.events import Reply

    capped = settings.model_copy(update={"max_attempts": 1})
    ops = await make_ops(
        sqlite_database, FunctionModel(lambda _: Reply(text="hi")), settings_=capped
    )
    first = await ops.submit(message_event("hello", sender=DEV, thread="t1"))
    item = await ops.ingest(message_event("and again", sender=DEV, thread="t1"))
    assert item is not None
    assert await ops.store.acquire_lease(first.thread.id, "a-long-step", 60)
    for _ in range(3):
        with pytest.raises(ThreadBusyError):
            await ops.process(item.id)
    await ops.store.release_lease(first.thread.id, "a-long-step")
    outcome = await ops.process(item.id)
    assert outcome is not None and outcome.thread.status == ThreadStatus.WAITING
    stored = await ops.store.inbox_item(item.id)
    assert (stored.status, stored.attempts) == ("done", 1)
