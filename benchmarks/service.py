"""opsloop as a service on real Redis and PostgreSQL: HTTP ingest latency, end-to-end latency
beside a bare Celery no-op round trip, and sustained events per second with two workers.

See ``--help`` and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx2
import psycopg
import redis
from celery import Celery

from bot.app import Opsloop
from bot.config import Settings, load_settings
from bot.events import ConversationRef, Identity, MessageReceived
from bot.plugins import load_plugins
from workers.celery_app import broker_settings, celery_app, configure
from workers.dispatch import CeleryDispatcher
from workers.jobs import deliver_thread

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_DEFAULT = "redis://127.0.0.1:6379/13"
OPSLOOP = [sys.executable, "-m", "bot.cli"]
NOOP_QUEUE, NOOP_KEY = "bench-noop", "bench:noop:done"
NOTIFY_SQL = """CREATE FUNCTION bench_sent() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_notify('bench_sent', NEW.thread_id); RETURN NULL; END $$;
CREATE TRIGGER bench_sent AFTER UPDATE OF status ON outbox FOR EACH ROW
WHEN (NEW.status = 'sent' AND OLD.status <> 'sent') EXECUTE FUNCTION bench_sent();"""
# Per inbox item: its reply is the thread's last outbox row made before the item was done
# (a thread's items are processed one at a time, under its lease).
TIMINGS_SQL = """SELECT i.received_at, i.processed_at, o.created_at, o.sent_at, i.status
FROM inbox i
LEFT JOIN LATERAL (SELECT created_at, sent_at FROM outbox WHERE thread_id = i.thread_id
  AND created_at <= i.processed_at ORDER BY created_at DESC LIMIT 1) o ON true
WHERE i.id = ANY(%s) ORDER BY i.id"""
LEFT_SQL = """SELECT count(*) FILTER (WHERE i.status NOT IN ('done', 'failed')),
count(o.id) FILTER (WHERE o.status <> 'sent') FROM inbox i
LEFT JOIN outbox o ON o.thread_id = i.thread_id WHERE i.id = ANY(%s)"""

# The no-op: a second Celery app on the same broker, with opsloop's own broker settings,
# served by `celery worker` with the flags `opsloop worker` passes.
noop_app = Celery("bench_noop")
NOOP_WORKER = [sys.executable, "-m", "celery", "-A", "benchmarks.service:noop_app", "worker"]
NOOP_WORKER += ["--concurrency=1", "--without-gossip", "--without-mingle", "--loglevel=INFO"]
NOOP_WORKER += [f"--queues={NOOP_QUEUE}"]
summary: dict[str, str] = {}
"""The ratios against bare Celery, printed last."""
_noop_redis: list[redis.Redis] = []


def configure_noop(settings: Settings) -> None:
    noop_app.conf.update(broker_settings(settings), task_default_queue=NOOP_QUEUE, beat_schedule={})


@noop_app.task(name="bench.noop")
def noop(token: str) -> None:
    if not _noop_redis:  # one client per worker process, as opsloop keeps one DB pool
        _noop_redis.append(redis.Redis.from_url(noop_app.conf.broker_url))
    _noop_redis[0].rpush(NOOP_KEY, token)


if os.environ.get("OPSLOOP_BENCH_NOOP_WORKER"):  # imported by `celery -A benchmarks.service`
    configure_noop(load_settings())


def die(message: str) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(2)


class Services:
    """Subprocesses, each in its own session (Ctrl-C reaches only us): SIGTERM, wait, kill."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env, self.home = env, home
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], ready: str, **env: str) -> None:
        log = self.home / f"{name}.log"
        with log.open("ab") as out:
            how: dict[str, Any] = {"cwd": self.home, "stdout": out, "stderr": subprocess.STDOUT}
            child = subprocess.Popen(argv, env={**self.env, **env}, start_new_session=True, **how)
            self.procs[name] = child
        deadline = time.monotonic() + 60
        while ready not in log.read_text(errors="replace"):
            if child.poll() is not None or time.monotonic() > deadline:
                die(f"{name} did not start: {log.read_text(errors='replace')[-600:]}")
            time.sleep(0.05)

    def stop(self, name: str) -> None:
        child = self.procs.pop(name)
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def row(label: str, ms: list[float], title: str = "") -> None:
    if title:
        print(f"\n{title}\n  {'(ms)':<46}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}")
    q = statistics.quantiles(ms, n=100, method="inclusive")
    cells = "".join(f"{v:>9.2f}" for v in (q[49], q[89], q[98], statistics.mean(ms)))
    print(f"  {label:<46}{len(ms):>5}{cells}")


def event(text: str, key: str) -> MessageReceived:
    where = ConversationRef(channel="web", room="bench", thread_key=key)
    who = Identity(channel="web", user_id="bench")
    return MessageReceived(
        idempotency_key=f"bench:{uuid.uuid4().hex}", conversation=where, sender=who, text=text
    )


def ms_since(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


def bench_ingest(args: argparse.Namespace, svc: Services, token: str) -> None:
    """1. POST /api/threads -> 201 against `opsloop api`; no worker runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    svc.start("api", [*OPSLOOP, "api", "--bind", f"127.0.0.1:{port}"], "startup complete")
    posts = []
    auth = {"authorization": f"Bearer {token}"}
    with httpx2.Client(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=10) as http:
        for n in range(args.warmup + args.requests):
            started = time.perf_counter_ns()
            reply = http.post("/api/threads", json={"text": args.message})
            took = ms_since(started)
            if reply.status_code != 201:
                die(f"POST /api/threads answered {reply.status_code}: {reply.text[:200]}")
            posts += [took] if n >= args.warmup else []
    svc.stop("api")
    title = "1. HTTP API, one keep-alive client, sequential; no worker runs (tasks wait)"
    row("POST /api/threads -> 201", posts, title)


def timings(pg: str, ids: list[int]) -> list[Any]:
    """Per item: received_at, processed_at, its reply's created_at and sent_at, status."""
    with psycopg.connect(pg) as conn:
        rows = conn.execute(TIMINGS_SQL, (ids,)).fetchall()
    if len(rows) != len(ids) or any(None in r for r in rows):
        die("some items were not processed, or their reply not sent")
    return rows


def ms(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1e3


async def bench_e2e(args: argparse.Namespace, ops: Opsloop, pg: str) -> None:
    """2. ingest -> reply sent through one worker, a no-op round trip after each; in-process."""
    dispatcher, broker = CeleryDispatcher(celery_app), redis.Redis.from_url(args.redis_url)
    ids, walls, noops = [], [], []
    async with await psycopg.AsyncConnection.connect(pg, autocommit=True) as conn:
        await conn.execute("LISTEN bench_sent")  # a trigger NOTIFYs when a reply is sent
        for n in range(args.warmup + args.samples):
            started = time.perf_counter_ns()
            item = await ops.ingest(event(args.message, f"e2e-{n}"))
            assert item is not None
            dispatcher.process(item.id)
            if not [x async for x in conn.notifies(timeout=30, stop_after=1)]:
                die(f"no reply was sent for sample {n} within 30 s")
            wall, started = ms_since(started), time.perf_counter_ns()
            noop_app.send_task("bench.noop", args=[str(n)], queue=NOOP_QUEUE)
            if broker.blpop([NOOP_KEY], timeout=30) is None:
                die(f"the no-op task {n} did not run within 30 s")
            if n >= args.warmup:
                ids.append(item.id)
                walls.append(wall)
                noops.append(ms_since(started))
    # The same work with no broker: process and deliver called here, one after the other.
    senders = {k: v for plugin in load_plugins() for k, v in plugin.senders.items()}
    local: dict[str, list[float]] = {
        "Opsloop.ingest": [],
        "Opsloop.process": [],
        "deliver_thread": [],
    }
    for n in range(args.warmup + args.samples):
        started = time.perf_counter_ns()
        item = await ops.ingest(event(args.message, f"local-{n}"))
        assert item is not None
        laps = [ms_since(started)]
        outcome = await ops.process(item.id, deliver=True)  # as a worker: replies come claimed
        laps.append(ms_since(started) - sum(laps))
        assert outcome is not None
        await deliver_thread(ops, senders, outcome.thread.id, outcome.claimed)
        laps.append(ms_since(started) - sum(laps))
        for name, lap in zip(local, laps if n >= args.warmup else [], strict=False):
            local[name].append(lap)
    t = timings(pg, ids)
    e2e = [ms(x[0], x[3]) for x in t]
    title = f"2. End to end, sequential, 1 x `opsloop worker --concurrency 1`, {args.message!r}"
    row("e2e: inbox received_at -> reply sent_at", e2e, title)
    row("  received -> reply made (outbox created_at)", [ms(x[0], x[2]) for x in t])
    row("  received -> inbox done (processed_at)", [ms(x[0], x[1]) for x in t])
    row("  inbox done -> reply sent", [ms(x[1], x[3]) for x in t])
    row("e2e wall: before ingest -> NOTIFY of sent", walls)
    row("bare Celery no-op: send_task -> BLPOP", noops)
    for name, laps in local.items():
        row(f"no broker, in-process: {name}", laps)
    ratio = statistics.median(e2e) / statistics.median(noops)
    print(f"  headline: e2e p50 / no-op p50 = {ratio:.1f}x")
    summary["reply p50 / bare Celery no-op round trip p50"] = (
        f"{statistics.median(e2e):.2f} / {statistics.median(noops):.2f} ms = {ratio:.1f}x"
    )


def bench_noop_throughput(args: argparse.Namespace) -> float:
    """3a. M bare Celery no-op tasks, sent as fast as possible, through two worker processes."""
    broker = redis.Redis.from_url(args.redis_url)

    def run(count: int) -> float:
        broker.delete(NOOP_KEY)
        started = time.perf_counter()
        for n in range(count):
            noop_app.send_task("bench.noop", args=[str(n)], queue=NOOP_QUEUE)
        deadline = time.monotonic() + args.timeout
        while (done := broker.llen(NOOP_KEY)) < count:
            if time.monotonic() > deadline:
                die(f"after {args.timeout:g} s: {done} of {count} no-op tasks ran")
            time.sleep(0.005)
        return time.perf_counter() - started

    run(args.warmup)
    took = run(args.events)
    title = f"3. Sustained: {args.events} bare Celery no-op tasks, 2 x `celery worker` as opsloop's"
    print(f"\n{title}\n  first send -> last done {took:.2f} s = {args.events / took:.1f} tasks/s")
    return float(args.events / took)


async def bench_throughput(args: argparse.Namespace, ops: Opsloop, pg: str) -> float:
    """3. M events, ingested here as fast as possible, through two worker processes."""
    dispatcher = CeleryDispatcher(celery_app)

    async def run(count: int, prefix: str) -> tuple[list[int], float]:
        started, ids = time.perf_counter(), []
        for n in range(count):
            item = await ops.ingest(event(args.message, f"{prefix}-{n % args.tp_threads}"))
            assert item is not None
            dispatcher.process(item.id)
            ids.append(item.id)
        enqueued, deadline = time.perf_counter() - started, time.monotonic() + args.timeout
        with psycopg.connect(pg, autocommit=True) as conn:
            while True:
                left = conn.execute(LEFT_SQL, (ids,)).fetchone()
                if left == (0, 0):
                    return ids, enqueued
                if left is None or time.monotonic() > deadline:
                    die(f"after {args.timeout:g} s: {left} (items not done, replies not sent)")
                await asyncio.sleep(0.05)

    await run(args.warmup, "warm")
    ids, enqueued = await run(args.events, f"tp-{uuid.uuid4().hex[:6]}")
    t = timings(pg, ids)
    first, failed = min(x[0] for x in t), sum(x[4] == "failed" for x in t)
    done, sent = ms(first, max(x[1] for x in t)) / 1e3, ms(first, max(x[3] for x in t)) / 1e3
    title = (
        f"3. Sustained: {args.events} events over {args.tp_threads} threads, "
        f"2 x `opsloop worker --concurrency 1`, {args.message!r}"
    )
    row("per event: received_at -> inbox done", [ms(x[0], x[1]) for x in t], title)
    row("per event: received_at -> reply sent", [ms(x[0], x[3]) for x in t])
    print(f"  enqueued (ingest + send_task) in {enqueued:.2f} s; failed items: {failed}")
    print(f"  first received -> last done {done:.2f} s = {args.events / done:.1f} events/s")
    print(f"  first received -> last reply sent {sent:.2f} s = {args.events / sent:.1f} events/s")
    return float(args.events / sent)


def log_problems(home: Path) -> None:
    retries, problems = 0, []
    for log in sorted(home.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            retries += "retry: Retry in" in line
            if any(w in line for w in ("ERROR", "CRITICAL", "Traceback", "WARNING")):
                problems.append(f"{log.stem}: {line.strip()[:150]}")
    print(f"\nlogs: {retries} task retries (ThreadBusyError), {len(problems)} warning/error lines")
    for line in list(dict.fromkeys(problems))[:10]:
        print(f"  {line}")


def print_summary() -> None:
    if summary:
        print("\nsummary: opsloop against bare Celery on the same broker (lower is better)")
        for name, value in summary.items():
            print(f"  {name:<46}{value}")


def pg_admin(url: str, *sql: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
        for statement in sql:
            conn.execute(statement.encode())


async def run_parts(args: argparse.Namespace, svc: Services, settings: Settings, pg: str) -> None:
    configure(settings)
    configure_noop(settings)
    ops = await Opsloop.from_settings(settings, auto_migrate=True)  # a fresh database
    try:
        pg_admin(pg, NOTIFY_SQL)
        if "1" in args.parts:
            assert settings.api_token is not None
            bench_ingest(args, svc, settings.api_token.get_secret_value())
            redis.Redis.from_url(args.redis_url).flushdb()  # the process tasks nobody ran
            pg_admin(pg, "TRUNCATE inbox, outbox, thread_events, threads RESTART IDENTITY CASCADE")
        if "2" in args.parts:
            svc.start("worker-1", [*OPSLOOP, "worker", "--concurrency", "1"], " ready.")
            svc.start("noop", NOOP_WORKER, " ready.", OPSLOOP_BENCH_NOOP_WORKER="1")
            await bench_e2e(args, ops, pg)
            svc.stop("noop")
        if "3" in args.parts:
            for name in {"worker-1", "worker-2"} - set(svc.procs):
                svc.start(name, [*OPSLOOP, "worker", "--concurrency", "1"], " ready.")
            events = await bench_throughput(args, ops, pg)
            for name in ("worker-1", "worker-2"):  # idle, but the no-op gets the cores alone
                svc.stop(name)
            for name in ("noop-1", "noop-2"):
                svc.start(name, NOOP_WORKER, " ready.", OPSLOOP_BENCH_NOOP_WORKER="1")
            tasks = bench_noop_throughput(args)
            summary["bare Celery no-op tasks/s / opsloop events/s"] = (
                f"{tasks:.1f} / {events:.1f} = {tasks / events:.1f}x"
            )
    finally:
        await ops.aclose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="opsloop as a service on real Redis and PostgreSQL, with the instant "
        "offline model: (1) HTTP ingest latency against `opsloop api`; (2) end-to-end latency, "
        "event to delivered reply, through one `opsloop worker`, beside a bare Celery no-op "
        "round trip on the same broker (their p50 ratio is the headline); (3) sustained "
        "events/s through two worker processes, beside bare Celery no-op tasks/s through two "
        "`celery worker` processes; a summary of both ratios ends the run. The Redis db is "
        "FLUSHED before and after; a temporary PostgreSQL database is created and dropped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--requests", type=int, default=500, metavar="N", help="timed HTTP requests (1)")
    add("--samples", type=int, default=300, metavar="N", help="timed end-to-end events (2)")
    add("--events", type=int, default=1000, metavar="M", help="events for throughput (3)")
    add("--tp-threads", type=int, default=200, metavar="N", help="threads the M events share")
    add("--warmup", type=int, default=20, metavar="N", help="untimed first ones, per part")
    add("--message", default="hello", help="what events say; see benchmarks/README.md")
    add("--timeout", type=float, default=300, metavar="S", help="give up on (3) after S s")
    add("--parts", default="123", help="which parts to run, e.g. 2 or 13")
    add("--redis-url", default=REDIS_DEFAULT, help="the broker; its db is flushed (never db 0)")
    pg_help = "server to create the temporary database on ($OPSLOOP_BENCH_POSTGRES)"
    add(
        "--postgres-url", default=os.environ.get("OPSLOOP_BENCH_POSTGRES", PG_DEFAULT), help=pg_help
    )
    args = parser.parse_args()
    if min(args.requests, args.samples, args.events) < 2 or args.tp_threads < 1:
        parser.error("need --requests, --samples and --events >= 2, --tp-threads >= 1")
    if urlsplit(args.redis_url).path.strip("/") in ("", "0"):
        parser.error("--redis-url must name a spare db index, e.g. /13: it is flushed")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally blocks run
    name = f"opsloop_bench_svc_{os.getpid()}"
    pg = urlunsplit(urlsplit(args.postgres_url)._replace(path=f"/{name}"))
    with tempfile.TemporaryDirectory() as home:
        ours = {"DATABASE_URL": pg, "REDIS_URL": args.redis_url, "OPSLOOP_HOME": home}
        ours |= {"OPSLOOP_API_TOKEN": uuid.uuid4().hex, "OPSLOOP_MODELS": "offline"}
        repo = str(Path(__file__).resolve().parent.parent)  # for `celery -A benchmarks.service`
        path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
        svc = Services({**os.environ, **ours, "PYTHONPATH": path}, Path(home))
        try:
            redis.Redis.from_url(args.redis_url).flushdb()
            pg_admin(args.postgres_url, f'CREATE DATABASE "{name}"')
        except (redis.RedisError, psycopg.Error) as exc:
            url = args.redis_url if isinstance(exc, redis.RedisError) else args.postgres_url
            at, why = urlsplit(url), (str(exc).strip() or type(exc).__name__).splitlines()[0]
            die(f"{at.scheme} at {at.hostname}:{at.port} is unreachable: {why}")
        impl = f"{platform.python_implementation()} {platform.python_version()}"
        print(f"opsloop as a service: {impl}, os.cpu_count()={os.cpu_count()}; {args.redis_url}")
        print(f"note: the {os.cpu_count()} cores are shared by the API, the workers, Redis,")
        print("  PostgreSQL and this script; compare only with figures from the same machine")
        try:
            asyncio.run(run_parts(args, svc, load_settings(**ours), pg))
            log_problems(Path(home))
            print_summary()
        finally:
            svc.stop_all()
            redis.Redis.from_url(args.redis_url).flushdb()
            pg_admin(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted (subprocesses stopped, Redis db flushed, database dropped)")
