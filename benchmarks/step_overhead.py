"""opsloop's own overhead per agent step and per message, with a model that answers at once.

See ``--help`` and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from agents import registry
from bot.app import Opsloop
from bot.config import load_settings
from bot.events import (
    CallTool,
    ConversationRef,
    Identity,
    MessageReceived,
    Reply,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    ToolReturned,
    UserMessage,
)
from bot.inventory import INVENTORY, SqlInventory
from bot.model import FunctionModel, ModelRequest
from bot.outbound import outbound_for
from bot.policy import load_policy
from bot.prompts import PromptLibrary
from bot.runtime import Runtime, step
from bot.store import Database, Store
from bot.tool_calls import run_tool

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
SENDER = Identity(channel="bench", user_id="bench-1")
TEXT = "what is running in staging?"
TARGET_MS = 3.0
R = TypeVar("R")


def decide(request: ModelRequest) -> CallTool | Reply:
    """The instant model: list the services, then reply once the tool has answered."""
    if request.events and isinstance(request.events[-1], ToolReturned):
        return Reply(text="4 services are up in staging.")
    return CallTool(tool="list_services", arguments={"environment": "staging"})


async def build(database: Database, home: str) -> Opsloop:
    inventory = SqlInventory(database)
    await inventory.prepare()
    runtime = Runtime(
        settings=load_settings(OPSLOOP_HOME=home),
        policy=load_policy(),
        prompts=PromptLibrary(),
        agents=registry,
        models={"default": FunctionModel(decide)},
        resources={INVENTORY: inventory},
    )
    return Opsloop(Store(database), runtime)


async def bench_steps(ops: Opsloop, count: int, threads: int) -> list[int]:
    """Time load_thread + step + append, two model steps per user message (untimed)."""
    store, rt, agent = ops.store, ops.runtime, registry.get("inspector")
    samples: list[int] = []
    turn = 0
    while len(samples) < count:
        where = ConversationRef(channel="bench", thread_key=f"step-{turn % threads}")
        thread_id = await store.open_thread(where, title=TEXT)  # untimed, like the rest here
        turn += 1
        thread = await store.load_thread(thread_id)
        opening = [
            UserMessage(sender=SENDER, text=TEXT),
            StatusChanged(status=ThreadStatus.RUNNING, agent=agent.name),
        ]
        await store.append(thread_id, expected_seq=thread.last_seq, events=opening)
        for _ in range(2):  # list_services, then the reply
            started = time.perf_counter_ns()
            thread = await store.load_thread(thread_id)
            new = await step(thread, agent, rt)
            out = outbound_for(thread.conversation, new)
            await store.append(thread_id, expected_seq=thread.last_seq, events=new, outbound=out)
            samples.append(time.perf_counter_ns() - started)
            if isinstance(new[-1], ToolCalled):  # run the tool outside the timing
                thread = await store.load_thread(thread_id)
                result = await run_tool(thread, agent, new[-1], rt)
                await store.append(thread_id, expected_seq=thread.last_seq, events=[result])
            elif new[-1].kind != "status":  # not the reply: the step measured something else
                raise RuntimeError(f"unexpected step: {[e.kind for e in new]}")
    return samples[:count]


async def bench_submits(ops: Opsloop, count: int, threads: int, offset: int) -> list[int]:
    """Time whole Opsloop.submit() calls: 2 model steps + 1 tool execution each."""
    samples: list[int] = []
    for n in range(offset, offset + count):
        event = MessageReceived(
            idempotency_key=f"bench:{uuid.uuid4().hex}",
            conversation=ConversationRef(channel="bench", thread_key=f"submit-{n % threads}"),
            sender=SENDER,
            text=TEXT,
        )
        started = time.perf_counter_ns()
        outcome = await ops.submit(event)
        samples.append(time.perf_counter_ns() - started)
        kinds = [e.kind for e in outcome.new_events]
        if kinds.count("model_call") != 2 or kinds.count("tool_result") != 1:
            raise RuntimeError(f"unexpected submit: {kinds}")
    return samples


async def run_db(url: str, args: argparse.Namespace) -> dict[str, list[int]]:
    database = Database(url)
    try:
        await database.migrate()
        with tempfile.TemporaryDirectory() as home:
            ops = await build(database, home)
            await bench_steps(ops, args.warmup, args.threads)
            steps = await bench_steps(ops, args.iterations, args.threads)
            await bench_submits(ops, args.warmup, args.threads, 0)
            submits = await bench_submits(ops, args.iterations, args.threads, args.warmup)
    finally:
        await database.dispose()
    return {"per step (load+step+append)": steps, "per submit (2 steps+1 tool)": submits}


def create_pg(url: str, name: str) -> str:
    """Create database ``name`` on the server at ``url``; its async SQLAlchemy URL."""
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", path=f"/{name}"))


def drop_pg(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(results: dict[str, dict[str, list[int]]], args: argparse.Namespace) -> None:
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    machine = f"{platform.system()} {platform.machine()}, os.cpu_count()={os.cpu_count()}"
    print(f"opsloop step overhead: {impl} on {machine}")
    print(
        f"{args.iterations} measured iterations after {args.warmup} warm-up per DB and "
        f"measure; messages spread over {args.threads} conversation thread(s); times in ms"
    )
    print(f"\n{'db':<9}{'measure':<30}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}")
    for db, measures in results.items():
        for measure, ns in measures.items():
            ms = [n / 1e6 for n in ns]
            q = statistics.quantiles(ms, n=100, method="inclusive")
            row = f"{db:<9}{measure:<30}{len(ms):>5}"
            print(row + "".join(f"{v:>9.3f}" for v in (q[49], q[89], q[98], statistics.mean(ms))))
    if "sqlite" in results:
        p50 = statistics.median(results["sqlite"]["per step (load+step+append)"]) / 1e6
        verdict = "met" if p50 < TARGET_MS else "MISSED"
        print(f"\ntarget: p50 per step on SQLite under {TARGET_MS:g} ms: {verdict} ({p50:.3f} ms)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure opsloop's own overhead per agent step (load the thread, render "
        "the context, call an instant FunctionModel, validate, commit events + outbox) and "
        "per whole Opsloop.submit() of a message (2 model steps + 1 list_services call).",
        epilog=f"Target: p50 per step on SQLite under {TARGET_MS:g} ms. Example: uv run python "
        "benchmarks/step_overhead.py --db sqlite --iterations 1000",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_db_options(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=50,
        metavar="N",
        help="conversation threads the messages are spread over, round-robin (fewer threads "
        "= longer event logs, and load_thread reads the whole log)",
    )
    parser.add_argument(
        "--iterations", type=int, default=300, metavar="N", help="measured steps and submits per DB"
    )
    parser.add_argument("--warmup", type=int, default=20, metavar="N", help="untimed ones first")
    args = parser.parse_args()
    if args.threads < 1 or args.iterations < 2 or args.warmup < 0:
        parser.error("need --threads >= 1, --iterations >= 2 and --warmup >= 0")
    return args


def add_db_options(
    parser: argparse.ArgumentParser, *, default: str = "both", what: str = "a temporary database"
) -> None:
    """``--db`` and ``--postgres-url`` (default ``$OPSLOOP_BENCH_POSTGRES``: see
    :func:`postgres_url`), as every benchmark here takes them."""
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres", "both"],
        default=default,
        help=f"sqlite: temp files; postgres: {what} on a server; both",
    )
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"server to create {what} on (dropped afterwards); default "
        f"$OPSLOOP_BENCH_POSTGRES, else {PG_DEFAULT}",
    )


def postgres_url(args: argparse.Namespace) -> str:
    """The server ``--postgres-url`` named, else ``$OPSLOOP_BENCH_POSTGRES``, else the default."""
    if "postgres_url" not in args:
        args.postgres_url = os.environ.get("OPSLOOP_BENCH_POSTGRES", PG_DEFAULT)
    return str(args.postgres_url)


def unreachable(url: str, exc: Exception) -> int:
    """Say in one line that PostgreSQL at ``url`` cannot be used; the exit status (2)."""
    at = urlsplit(url)
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    sys.stderr.write(f"error: PostgreSQL at {at.hostname}:{at.port or 5432}: {why}\n")
    return 2


def on_each_database(
    args: argparse.Namespace, run_db: Callable[[str, argparse.Namespace], Coroutine[Any, Any, R]]
) -> dict[str, R] | int:
    """``run_db`` on a temp SQLite file and/or a temp PostgreSQL database, as ``--db`` says.

    Returns the results by database, or the exit status when PostgreSQL cannot be reached.
    """
    urls: dict[str, str] = {}
    server = postgres_url(args)
    pg_name = f"opsloop_bench_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        if args.db in ("sqlite", "both"):
            urls["sqlite"] = f"sqlite+aiosqlite:///{tmp}/bench.db"
        if args.db in ("postgres", "both"):
            try:
                urls["postgres"] = create_pg(server, pg_name)
            except psycopg.Error as exc:
                return unreachable(server, exc)
        try:
            return {db: asyncio.run(run_db(url, args)) for db, url in urls.items()}
        finally:
            if "postgres" in urls:
                drop_pg(server, pg_name)


def run_and_report(
    args: argparse.Namespace,
    run_db: Callable[[str, argparse.Namespace], Coroutine[Any, Any, R]],
    report: Callable[[dict[str, R], argparse.Namespace], None],
) -> int:
    """Run on each database ``--db`` names and print the report; the exit status."""
    results = on_each_database(args, run_db)
    if isinstance(results, int):
        return results
    report(results, args)
    return 0


def main() -> int:
    return run_and_report(parse_args(), run_db, report)


if __name__ == "__main__":
    sys.exit(main())
