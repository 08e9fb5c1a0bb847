"""The same chat-ops agent on opsloop and on LangGraph, on the same database, side by side.

See ``--help`` and benchmarks/README.md. Needs the ``bench`` dependency group:
``uv run --group bench python benchmarks/vs_langgraph.py``. The two agents are in
vs_langgraph_agents.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from step_overhead import add_db_options, create_pg, drop_pg, postgres_url
from vs_langgraph_agents import (
    ASK,
    DEPLOY,
    FIGURES,
    Inventory,
    LangGraphAgent,
    OpsloopAgent,
    Samples,
    postgres_saver,
    sqlite_saver,
)

# ---------------------------------------------------------------- the run


def run_db(db: str, urls: tuple[str, str], args: argparse.Namespace) -> dict[str, Samples]:
    """Interleaved rounds of turns and cycles on opsloop and LangGraph; ns per figure."""
    opsloop_url, langgraph_url = urls
    saver_for: Callable[[str], Any] = sqlite_saver if db == "sqlite" else postgres_saver
    results: dict[str, Samples] = {n: {f: [] for f in FIGURES} for n in ("opsloop", "LangGraph")}
    inventory = Inventory()
    with (
        tempfile.TemporaryDirectory() as home,
        asyncio.Runner() as runner,
        saver_for(langgraph_url) as (saver, lg_settings),
    ):
        ops = runner.run(OpsloopAgent.start(opsloop_url, home, inventory))
        try:
            graph = LangGraphAgent(saver, inventory)
            print(
                f"\n[{db}] durability: opsloop {runner.run(ops.settings())}; LangGraph "
                f'{lg_settings}, durability="sync"',
                flush=True,
            )

            def opsloop_round(out: Samples) -> None:
                for _ in range(args.per_round):
                    runner.run(ops.turn(out))
                    runner.run(ops.cycle(out))

            def langgraph_round(out: Samples) -> None:
                for _ in range(args.per_round):
                    graph.turn(out)
                    graph.cycle(out)

            rounds = [("opsloop", opsloop_round), ("LangGraph", langgraph_round)]
            for _ in range(args.warmup):
                for _name, run in rounds:
                    run({f: [] for f in FIGURES})
            for n in range(args.rounds):
                for name, run in rounds if n % 2 == 0 else rounds[::-1]:
                    run(results[name])
        finally:
            runner.run(ops.close())
    return results


def report(db: str, results: dict[str, Samples], args: argparse.Namespace) -> None:
    what = {
        "step": "model call -> next model call in the turn (commit the decision, run the "
        "tool, commit its result, build the next request)",
        "turn": f"{ASK!r}: ask -> service_status -> reply, 2 model steps (wall)",
        "cycle": f"{DEPLOY!r} -> pause for approval -> approve -> deploy -> reply (wall)",
        "pause": "cycle, first half: the message until the thread is paused",
        "resume": "cycle, second half: the approval until the reply",
    }
    n = args.rounds * args.per_round
    print(f"[{db}] {n} samples per figure and framework; times in ms")
    print(f"{'figure':<8}{'framework':<11}{'p50':>9}{'p99':>9}{'mean':>9}   ratio p50 / p99")
    for figure in FIGURES:
        pcts: dict[str, tuple[float, float]] = {}
        for name, samples in results.items():
            ms = [v / 1e6 for v in samples[figure]]
            q = statistics.quantiles(ms, n=100, method="inclusive")
            pcts[name] = (q[49], q[98])
            print(f"{figure:<8}{name:<11}{q[49]:>9.3f}{q[98]:>9.3f}{statistics.mean(ms):>9.3f}")
        (o50, o99), (l50, l99) = pcts["opsloop"], pcts["LangGraph"]
        print(f"{'':<8}{'opsloop/LG':<11}{'':>27}   {o50 / l50:.2f}x / {o99 / l99:.2f}x")
    print("\n".join(f"  {k}: {v}" for k, v in what.items()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the same agent (instant model; service_status runs at once; deploy to "
        "production pauses for an approval) on opsloop (Opsloop.submit) and on LangGraph "
        "(StateGraph, interrupt() and Command(resume=...), SqliteSaver/PostgresSaver with "
        "durability='sync') in interleaved rounds, and report step, turn and full-cycle "
        "p50/p99 per framework and the ratio opsloop/LangGraph.",
        epilog="Needs the bench dependency group: uv run --group bench python "
        "benchmarks/vs_langgraph.py --db sqlite",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_db_options(parser, what="two temporary databases")
    for flag, default, what in (
        ("--rounds", 10, "measured rounds; each runs opsloop then LangGraph (or the reverse)"),
        ("--per-round", 20, "turns and cycles per framework in one round"),
        ("--warmup", 1, "untimed rounds first"),
    ):
        parser.add_argument(flag, type=int, default=default, metavar="N", help=what)
    args = parser.parse_args()
    postgres_url(args)
    if args.rounds < 1 or args.per_round < 1 or args.warmup < 0 or args.rounds * args.per_round < 2:
        parser.error("need --rounds >= 1, --per-round >= 1 (2 samples at least), --warmup >= 0")
    return args


def main() -> int:
    args = parse_args()
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    machine = f"{platform.system()} {platform.machine()}, os.cpu_count()={os.cpu_count()}"
    dbs: dict[str, tuple[str, str]] = {}
    names = (f"opsloop_bench_vs_{os.getpid()}", f"opsloop_bench_lg_{os.getpid()}")
    created: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.db in ("sqlite", "both"):
            dbs["sqlite"] = (f"sqlite+aiosqlite:///{tmp}/opsloop.db", f"{tmp}/langgraph.db")
        try:
            if args.db in ("postgres", "both"):
                try:
                    opsloop_url = create_pg(args.postgres_url, names[0])
                    created.append(names[0])
                    create_pg(args.postgres_url, names[1])
                    created.append(names[1])
                except psycopg.Error as exc:
                    at = urlsplit(args.postgres_url)
                    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    sys.stderr.write(
                        f"error: PostgreSQL at {at.hostname}:{at.port or 5432}: {why}\n"
                    )
                    return 2
                plain = urlunsplit(urlsplit(args.postgres_url)._replace(path=f"/{names[1]}"))
                dbs["postgres"] = (opsloop_url, plain)
            print(f"opsloop vs LangGraph: {impl} on {machine}; each sample on a new thread")
            for db, urls in dbs.items():
                report(db, run_db(db, urls, args), args)
        finally:
            for name in created:
                drop_pg(args.postgres_url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
