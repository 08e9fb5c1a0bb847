"""What a step costs as a thread grows: turns 1, 10, 40, 200 of one conversation.

See ``--help`` and benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# The script's own folder is on sys.path: the sibling benchmark's helpers are reused as is.
from step_overhead import SENDER, TEXT, add_db_options, build, run_and_report

from agents import registry
from bot.app import Opsloop
from bot.context import estimate_tokens, render_context, render_event
from bot.events import (
    ConversationRef,
    MessageReceived,
    StatusChanged,
    ThreadStatus,
    ToolCalled,
    UserMessage,
)
from bot.outbound import outbound_for
from bot.runtime import step
from bot.store import Database
from bot.tool_calls import run_tool

RATIO_TARGET = 1.5
"""Required: step time at the last turn within this factor of the time at turn 10."""


@dataclass
class Checkpoint:
    """What was measured at one turn, over every sample thread."""

    steps_ns: list[int] = field(default_factory=list)
    """Wall time of each load+step+append."""
    steps_cpu_ns: list[int] = field(default_factory=list)
    """The process's CPU time over the same span: less swayed by other work on the machine."""
    submits_ns: list[int] = field(default_factory=list)
    submits_cpu_ns: list[int] = field(default_factory=list)
    context_tokens: int = 0
    full_tokens: int = 0
    events: int = 0


def full_history_tokens(events: Any) -> int:
    """The naive context: every event rendered whole, nothing compacted."""
    blocks = (text for e in events if (text := render_event(e)) is not None)
    return estimate_tokens("\n".join(blocks))


async def manual_turn(
    ops: Opsloop, thread_id: str, mark: Checkpoint | None, *, sizes: bool = False
) -> None:
    """One turn driven step by step; with ``mark``, each load+step+append is timed.

    With ``sizes``, the context of the turn's last step is measured too (untimed).
    """
    store, rt, agent = ops.store, ops.runtime, registry.get("inspector")
    thread = await store.load_thread(thread_id)
    opening = [
        UserMessage(sender=SENDER, text=TEXT),
        StatusChanged(status=ThreadStatus.RUNNING, agent=agent.name),
    ]
    await store.append(thread_id, expected_seq=thread.last_seq, events=opening)
    for n in range(2):  # list_services, then the reply
        if mark is not None and sizes and n == 1:
            loaded = await store.load_thread(thread_id)
            context = render_context(loaded.events, budget_tokens=rt.settings.context_tokens)
            mark.context_tokens = estimate_tokens(context)
            mark.full_tokens = full_history_tokens(loaded.events)
            mark.events = len(loaded.events)
        started, cpu = time.perf_counter_ns(), time.process_time_ns()
        thread = await store.load_thread(thread_id)
        new = await step(thread, agent, rt)
        out = outbound_for(thread.conversation, new)
        await store.append(thread_id, expected_seq=thread.last_seq, events=new, outbound=out)
        if mark is not None:
            mark.steps_ns.append(time.perf_counter_ns() - started)
            mark.steps_cpu_ns.append(time.process_time_ns() - cpu)
        if isinstance(new[-1], ToolCalled):  # run the tool outside the timing
            thread = await store.load_thread(thread_id)
            result = await run_tool(thread, agent, new[-1], rt)
            await store.append(thread_id, expected_seq=thread.last_seq, events=[result])
        elif new[-1].kind != "status":
            raise RuntimeError(f"unexpected step: {[e.kind for e in new]}")


async def submit_turn(ops: Opsloop, key: str, mark: Checkpoint | None) -> None:
    """One turn as one whole ``Opsloop.submit()``; timed with ``mark``."""
    event = MessageReceived(
        idempotency_key=f"bench:{uuid.uuid4().hex}",
        conversation=ConversationRef(channel="bench", thread_key=key),
        sender=SENDER,
        text=TEXT,
    )
    started, cpu = time.perf_counter_ns(), time.process_time_ns()
    outcome = await ops.submit(event)
    if mark is not None:
        mark.submits_ns.append(time.perf_counter_ns() - started)
        mark.submits_cpu_ns.append(time.process_time_ns() - cpu)
    kinds = [e.kind for e in outcome.new_events]
    if kinds.count("model_call") != 2 or kinds.count("tool_result") != 1:
        raise RuntimeError(f"unexpected submit: {kinds}")


async def run_db(url: str, args: argparse.Namespace) -> dict[int, Checkpoint]:
    """Drive ``args.samples`` threads each way, in lockstep, to the last checkpoint."""
    database = Database(url)
    marks = {turn: Checkpoint() for turn in args.turns}
    try:
        await database.migrate()
        with tempfile.TemporaryDirectory() as home:
            ops = await build(database, home)
            manual = []
            for n in range(args.samples):
                where = ConversationRef(channel="bench", thread_key=f"manual-{n}")
                manual.append(await ops.store.open_thread(where, title=TEXT))
            for turn in range(1, max(args.turns) + 1):
                mark = marks.get(turn)
                for n, thread_id in enumerate(manual):
                    await manual_turn(ops, thread_id, mark, sizes=n == 0)
                for n in range(args.samples):
                    await submit_turn(ops, f"submit-{n}", mark)
                if mark is not None and args.verbose:
                    p50 = statistics.median(mark.steps_ns) / 1e6
                    print(f"  turn {turn}: step p50 {p50:.3f} ms", file=sys.stderr)
    finally:
        await database.dispose()
    return marks


def report(results: dict[str, dict[int, Checkpoint]], args: argparse.Namespace) -> None:
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    machine = f"{platform.system()} {platform.machine()}, os.cpu_count()={os.cpu_count()}"
    print(f"opsloop long thread: {impl} on {machine}")
    print(
        f"{args.samples} thread(s) per measure, in lockstep; per thread and turn: 2 timed steps "
        "or 1 timed submit; p50 in ms of wall time and of the process's CPU time"
    )
    print(
        f"\n{'db':<9}{'turn':>5}{'events':>7}{'step':>9}{'cpu':>8}{'submit':>9}{'cpu':>8}"
        f"{'context tok':>13}{'full tok':>10}{'sent':>6}"
    )
    for db, marks in results.items():
        for turn, mark in marks.items():
            times = (mark.steps_ns, mark.steps_cpu_ns, mark.submits_ns, mark.submits_cpu_ns)
            ms = [statistics.median(ns) / 1e6 for ns in times]
            share = mark.context_tokens / mark.full_tokens
            row = f"{db:<9}{turn:>5}{mark.events:>7}" + "".join(
                f"{v:>{w}.3f}" for v, w in zip(ms, (9, 8, 9, 8), strict=True)
            )
            print(f"{row}{mark.context_tokens:>13}{mark.full_tokens:>10}{share:>6.0%}")
    last = max(args.turns)
    if 10 not in args.turns or last == 10:
        return
    print()
    for db, marks in results.items():
        for name, pick in (("step", "steps_ns"), ("submit", "submits_ns")):
            ratios = []
            for clock in ("", "_cpu"):
                late = statistics.median(getattr(marks[last], pick.replace("_ns", clock + "_ns")))
                ratios.append(
                    late / statistics.median(getattr(marks[10], pick.replace("_ns", clock + "_ns")))
                )
            verdict = "met" if ratios[0] <= RATIO_TARGET else "MISSED"
            print(
                f"{db}: {name} p50 turn {last} / turn 10 = {ratios[0]:.2f} wall, "
                f"{ratios[1]:.2f} cpu (target <= {RATIO_TARGET:g} wall: {verdict})"
            )


def parse_turns(text: str) -> list[int]:
    try:
        turns = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not turns or turns[0] < 1:
        raise argparse.ArgumentTypeError("turns are numbers from 1")
    return turns


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Drive conversation threads through many turns (user message -> "
        "list_services call -> its result -> reply, with an instant FunctionModel) and report, "
        "at the given turns: p50 of one model step (load_thread + step + append) and of one "
        "whole Opsloop.submit() of a turn, the context tokens sent against the full history's, "
        "and how much slower the last turn is than turn 10.",
        epilog=f"Target: step p50 at the last turn within {RATIO_TARGET:g}x of turn 10. "
        "Example: uv run python benchmarks/long_thread.py --turns 1,10,40,200",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--turns",
        type=parse_turns,
        default=parse_turns("1,10,40,200"),
        metavar="N,N,...",
        help="the turns to measure at; the threads run to the last one",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=10,
        metavar="N",
        help="threads driven step by step and as many driven by submit, all in lockstep: "
        "N turns measured at each checkpoint (2N steps, N submits)",
    )
    add_db_options(parser, default="sqlite")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args()
    if args.samples < 1:
        parser.error("need --samples >= 1")
    return args


def main() -> int:
    return run_and_report(parse_args(), run_db, report)


if __name__ == "__main__":
    sys.exit(main())
