"""How the paused-thread paths scale: the same operations with 100 and with 100,000 paused threads.

See ``--help`` and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx2
import psycopg
from step_overhead import add_db_options, create_pg, drop_pg, postgres_url

from agents import registry
from bot.api import create_app
from bot.app import Opsloop
from bot.config import load_settings
from bot.events import (
    ActionReceived,
    CallTool,
    ConversationRef,
    HumanDecision,
    Identity,
    MessageReceived,
    Reply,
    ThreadStatus,
    ToolReturned,
)
from bot.inventory import INVENTORY, SqlInventory
from bot.model import FunctionModel, ModelRequest
from bot.policy import load_policy
from bot.prompts import PromptLibrary
from bot.runtime import Runtime
from bot.store import Database, Store
from workers.jobs import _sweep

TOKEN = "b" * 32
DEV = Identity(channel="cli", user_id="dev-1")
ONCALL = Identity(channel="cli", user_id="oncall-1")
DEPLOY = CallTool(
    tool="deploy",
    arguments={"service": "checkout", "version": "1.4.2", "environment": "production"},
)
MEASURES = ("approve→reply", "thread view", "request list page", "sweep", "resume")


def decide(request: ModelRequest) -> CallTool | Reply:
    """Deploy to production (which waits for on-call), and reply once the deploy has run."""
    if request.events and isinstance(request.events[-1], ToolReturned):
        return Reply(text="deployed checkout 1.4.2 to production")
    return DEPLOY


class NullDispatcher:
    """Enqueues nothing: the sweep's and the API's hand-offs cost nothing here."""

    def process(self, item_id: int) -> None:
        """Drop it."""

    def deliver(self, thread_id: str, *, countdown: float | None = None) -> None:
        """Drop it."""

    def resume(self, thread_id: str) -> None:
        """Drop it."""

    def ping(self) -> None:
        """Always up."""


async def build(database: Database, home: str) -> Opsloop:
    """Opsloop on ``database`` with the default policy and the deploying model."""
    inventory = SqlInventory(database)
    await inventory.prepare()
    runtime = Runtime(
        settings=load_settings(OPSLOOP_HOME=home, OPSLOOP_API_TOKEN=TOKEN),
        policy=load_policy(),
        prompts=PromptLibrary(),
        agents=registry,
        models={"default": FunctionModel(decide)},
        resources={INVENTORY: inventory},
    )
    return Opsloop(Store(database), runtime)


# ---------------------------------------------------------------- filling the database


async def template(ops: Opsloop) -> str:
    """One real paused thread, run through ``Opsloop.submit``: its id."""
    event = MessageReceived(
        idempotency_key=f"bench:{uuid.uuid4().hex}",
        conversation=ConversationRef(channel="cli", thread_key="tplkey-0000000000"),
        sender=DEV,
        text="deploy checkout 1.4.2 to production",
        agent="deployer",
    )
    outcome = await ops.submit(event)
    if outcome.thread.status != ThreadStatus.PAUSED:
        raise RuntimeError(f"the template thread is {outcome.thread.status.value}, not paused")
    return outcome.thread.id


TABLES = ("threads", "thread_events", "human_requests", "inbox", "outbox")
"""Where a paused thread has rows, parents first."""


def _raw(url: str) -> tuple[str, str]:
    """The database's dialect and what its own driver connects to."""
    if url.startswith("sqlite"):
        return "sqlite", url.split("///", 1)[1]
    return "postgresql", url.replace("postgresql+psycopg://", "postgresql://", 1)


def rows_of(url: str, thread_id: str) -> dict[str, list[dict[str, Any]]]:
    """The template thread's rows in each table, as the database stores them (text)."""
    dialect, target = _raw(url)
    where = {t: "id" if t == "threads" else "thread_id" for t in TABLES}
    order = {t: "seq" if t == "thread_events" else "1" for t in TABLES}
    found: dict[str, list[dict[str, Any]]] = {}
    if dialect == "sqlite":
        with sqlite3.connect(target) as conn:
            conn.row_factory = sqlite3.Row
            for table in TABLES:
                rows = conn.execute(
                    f"SELECT * FROM {table} WHERE {where[table]} = ? ORDER BY {order[table]}",
                    [thread_id],
                )
                found[table] = [dict(r) for r in rows]
        return found
    with psycopg.connect(target) as conn:
        for table in TABLES:
            columns = [
                c
                for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    [table],
                )
            ]
            listed = ", ".join(f'"{c}"::text' for c in columns)
            rows = conn.execute(
                f"SELECT {listed} FROM {table} WHERE {where[table]} = %s ORDER BY {order[table]}",
                [thread_id],
            )
            found[table] = [dict(zip(columns, r, strict=True)) for r in rows]
    return found


def clone(url: str, thread_id: str, count: int, *, running: bool = False) -> list[str]:
    """``count`` copies of the template thread, row for row, inserted in bulk; their ids.

    Every column that holds one of the template's ids (its thread id, request id,
    conversation key, inbox key) holds the copy's own in the copy. ``running`` copies stop
    after the message that started the agent, as a thread whose worker died mid-step: no
    request, status running, ready for ``Opsloop.resume``.
    """
    rows = rows_of(url, thread_id)
    [thread] = rows["threads"]
    [request] = rows["human_requests"]
    [item] = rows["inbox"]
    kind = "r" if running else "p"
    names = {
        thread_id: f"th_bench{kind}",
        request["id"]: f"hr_bench{kind}",
        thread["thread_key"]: f"benchkey{kind}",
        item["idempotency_key"]: f"bench:key{kind}",
    }
    if running:
        events = rows["thread_events"]
        started = next(i for i, e in enumerate(events) if '"running"' in str(e["payload"]))
        rows["thread_events"] = events[: started + 1]
        thread |= {"status": "running", "last_seq": str(started + 1)}
        rows["human_requests"] = []
        rows["outbox"] = []
    for message in rows["outbox"]:
        message["status"] = "sent"
    for row in (*rows["inbox"], *rows["outbox"]):
        del row["id"]  # the database numbers them
    thread |= {"lease_owner": None, "lease_until": None}
    offset = 10_000_000 if running else 0
    copies: dict[str, list[list[Any]]] = {t: [] for t in TABLES}
    for table in TABLES:
        for row in rows[table]:
            columns = list(row)
            # Only the columns that hold an id are rewritten, by plain text replacement.
            renamed = [i for i, c in enumerate(columns) if any(o in str(row[c]) for o in names)]
            values = [row[c] for c in columns]
            for n in range(offset, offset + count):
                copy = list(values)
                for i in renamed:
                    text = str(copy[i])
                    for old, new in names.items():
                        text = text.replace(old, f"{new}{n:07}")
                    copy[i] = text
                copies[table].append(copy)
    _insert(url, {t: list(rows[t][0]) for t in TABLES if rows[t]}, copies)
    return [f"{names[thread_id]}{n:07}" for n in range(offset, offset + count)]


def _insert(url: str, columns: dict[str, list[str]], copies: dict[str, list[list[Any]]]) -> None:
    """Insert the copies with the database's own bulk path (no ORM, no type processing)."""
    dialect, target = _raw(url)
    if dialect == "sqlite":
        with sqlite3.connect(target) as conn:
            for table, names in columns.items():
                marks = ", ".join("?" for _ in names)
                listed = ", ".join(f'"{c}"' for c in names)
                conn.executemany(f"INSERT INTO {table} ({listed}) VALUES ({marks})", copies[table])
        return
    with psycopg.connect(target) as conn, conn.cursor() as cursor:
        for table, names in columns.items():
            listed = ", ".join(f'"{c}"' for c in names)
            with cursor.copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
                for row in copies[table]:
                    copy.write_row(row)
        cursor.execute("ANALYZE")  # what autovacuum would do after a load like this


# ---------------------------------------------------------------- the measures


async def timed(runs: int, work: Callable[[int], Awaitable[None]]) -> list[int]:
    """Nanoseconds of ``work(i)`` for each run ``i``, after one untimed warm-up run."""
    await work(runs)
    samples = []
    for i in range(runs):
        started = time.perf_counter_ns()
        await work(i)
        samples.append(time.perf_counter_ns() - started)
    return samples


async def measure(url: str, count: int, runs: int) -> dict[str, list[int]]:
    """Fill a fresh database with ``count`` paused threads and time each operation."""
    database = Database(url)
    try:
        await database.migrate()
        with tempfile.TemporaryDirectory() as home:
            ops = await build(database, home)
            first = await template(ops)
            started = time.perf_counter()
            paused = [first, *await asyncio.to_thread(clone, url, first, count - 1)]
            running = await asyncio.to_thread(clone, url, first, runs + 1, running=True)
            filled = time.perf_counter() - started
            print(f"  {count} paused threads filled in {filled:.1f} s", file=sys.stderr)
            return await operations(ops, paused, running, runs)
    finally:
        await database.dispose()


async def operations(
    ops: Opsloop, paused: list[str], running: list[str], runs: int
) -> dict[str, list[int]]:
    """Time each measure ``runs`` times."""
    dispatcher = NullDispatcher()
    app = create_app(ops.runtime.settings, ops=ops, dispatcher=dispatcher, plugins=())
    # Approvals take threads from the end, views read those from the start.
    to_approve = paused[-(runs + 1) :]
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app),
            base_url="http://opsloop.bench",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client,
    ):

        async def get(path: str) -> dict[str, Any]:
            response = await client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text}")
            body: dict[str, Any] = response.json()
            return body

        async def view(i: int) -> None:
            body = await get(f"/api/threads/{paused[i]}")
            if len(body["pending_requests"]) != 1:
                raise RuntimeError(f"thread {paused[i]}: {body['pending_requests']}")

        async def page(i: int) -> None:
            body = await get("/api/human-requests?limit=50")
            if len(body["requests"]) != 50 and body["next_cursor"] is None and len(paused) > 50:
                raise RuntimeError("a short first page")

        async def approve(i: int) -> None:
            thread = await ops.store.load_thread(to_approve[i])
            [request] = await ops.store.human_requests(thread_id=thread.id)
            event = ActionReceived(
                idempotency_key=f"bench:{uuid.uuid4().hex}",
                conversation=thread.conversation,
                actor=ONCALL,
                request_id=request.id,
                decision=HumanDecision.APPROVE,
            )
            outcome = await ops.submit(event)
            if outcome.thread.status != ThreadStatus.WAITING:
                raise RuntimeError(f"approved thread is {outcome.thread.status.value}")

        async def sweep(i: int) -> None:
            counts = await _sweep(ops, dispatcher)
            if counts["expired"] or counts["escalated"]:
                raise RuntimeError(f"the sweep found work: {counts}")

        async def resume(i: int) -> None:
            thread = await ops.resume(running[i])
            if thread.status != ThreadStatus.PAUSED:
                raise RuntimeError(f"resumed thread is {thread.status.value}")

        work = {
            "approve→reply": approve,
            "thread view": view,
            "request list page": page,
            "sweep": sweep,
            "resume": resume,
        }
        return {name: await timed(runs, work[name]) for name in MEASURES}


# ---------------------------------------------------------------- report and main


def report(results: dict[str, dict[int, dict[str, list[int]]]], args: argparse.Namespace) -> None:
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    machine = f"{platform.system()} {platform.machine()}, os.cpu_count()={os.cpu_count()}"
    print(f"opsloop with many paused threads: {impl} on {machine}")
    print(f"{args.runs} timed runs per measure after 1 warm-up; p50 / p99 in ms")
    low, high = min(args.counts), max(args.counts)
    head = "".join(f"{f'p50@{c}':>12}{f'p99@{c}':>12}" for c in args.counts)
    print(f"\n{'db':<9}{'measure':<20}{head}{f'p50 {high}/{low}':>16}")
    for db, by_count in results.items():
        for name in MEASURES:
            cells, p50 = "", {}
            for count in args.counts:
                ms = [n / 1e6 for n in by_count[count][name]]
                q = statistics.quantiles(ms, n=100, method="inclusive")
                p50[count] = statistics.median(ms)
                cells += f"{p50[count]:>12.2f}{q[98]:>12.2f}"
            print(f"{db:<9}{name:<20}{cells}{p50[high] / p50[low]:>15.2f}x")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time approve→reply, the thread view (GET /api/threads/{id}), the first "
        "page of GET /api/human-requests, one sweep and one resume, with N paused threads "
        "in the database, for each N; and the ratio of the largest N to the smallest.",
        epilog="Example: uv run python benchmarks/paused_threads.py --db sqlite --counts 100,10000",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_db_options(parser)
    parser.add_argument(
        "--counts",
        default="100,100000",
        metavar="N,N",
        help="paused thread counts to compare, comma-separated; each gets a fresh database",
    )
    parser.add_argument("--runs", type=int, default=30, metavar="N", help="timed runs per measure")
    args = parser.parse_args()
    postgres_url(args)
    try:
        args.counts = sorted({int(c) for c in args.counts.split(",")})
    except ValueError:
        parser.error(f"--counts {args.counts!r}: give numbers such as 100,100000")
    if args.runs < 2 or min(args.counts) < 2 * (args.runs + 1):
        parser.error("need --runs >= 2 and every count >= 2 x (runs + 1): runs approve some")
    return args


def main() -> int:
    args = parse_args()
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: dict[str, dict[int, dict[str, list[int]]]] = {db: {} for db in dbs}
    for db in dbs:
        for count in args.counts:
            print(f"{db}, {count} paused threads…", file=sys.stderr)
            with tempfile.TemporaryDirectory() as tmp:
                if db == "sqlite":
                    url = f"sqlite+aiosqlite:///{tmp}/bench.db"
                    results[db][count] = asyncio.run(measure(url, count, args.runs))
                    continue
                name = f"opsloop_bench_{os.getpid()}_{count}"
                try:
                    url = create_pg(args.postgres_url, name)
                except psycopg.Error as exc:
                    at = urlsplit(args.postgres_url)
                    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    sys.stderr.write(
                        f"error: PostgreSQL at {at.hostname}:{at.port or 5432}: {why}\n"
                    )
                    return 2
                try:
                    results[db][count] = asyncio.run(measure(url, count, args.runs))
                finally:
                    drop_pg(args.postgres_url, name)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
