"""The agent benchmarks/vs_langgraph.py times, built once on opsloop and once on LangGraph.

Both share one instant in-memory inventory, so their tools cost the same; each records the
moment of every model call, so a step is timed the same way on both.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import text

try:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool as lc_tool
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.prebuilt import ToolNode
    from langgraph.types import Command, interrupt
except ImportError as exc:
    sys.exit(f"{exc}; it is in the bench dependency group: uv run --group bench python ...")

from agents import registry
from bot.app import Opsloop
from bot.config import load_settings
from bot.events import (
    ActionReceived,
    CallTool,
    ConversationRef,
    HumanDecision,
    HumanRequested,
    Identity,
    MessageReceived,
    Reply,
    ThreadStatus,
    ToolReturned,
)
from bot.inventory import INVENTORY
from bot.model import FunctionModel, ModelRequest
from bot.policy import load_policy
from bot.prompts import PromptLibrary
from bot.runtime import Runtime
from bot.store import Database, Store

ASK = "status of api in staging"
DEPLOY = "deploy api 1.2.3 to production"
STATUS_ARGS = {"service": "api", "environment": "staging"}
DEPLOY_ARGS = {"service": "api", "environment": "production", "version": "1.2.3"}
REQUESTER = Identity(channel="cli", user_id="dev-1")
APPROVER = Identity(channel="cli", user_id="oncall-1")  # role:oncall, and not the requester
FIGURES = ("step", "turn", "cycle", "pause", "resume")
SQLITE_SYNC = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
Samples = dict[str, list[int]]


class Inventory:
    """An instant in-memory deploy system; both frameworks' tools call these same methods."""

    def __init__(self) -> None:
        self.services = {
            ("api", env): {"service": "api", "environment": env, "version": "1.2.2"}
            for env in ("staging", "production")
        }
        self.done: dict[str, dict[str, Any]] = {}

    def status(self, service: str, environment: str) -> dict[str, Any]:
        return dict(self.services[service, environment], health="healthy", replicas=2)

    def deploy(self, service: str, environment: str, version: str, key: str) -> dict[str, Any]:
        if key not in self.done:
            row = self.services[service, environment]
            self.done[key] = {"deployed": version, "previous": row["version"]}
            row["version"] = version
        return self.done[key]

    # opsloop's Inventory protocol (bot.inventory.Inventory), over the methods above.
    async def prepare(self) -> None:
        pass

    async def list_services(self, environment: str | None) -> list[dict[str, Any]]:
        return [self.status(s, e) for s, e in self.services if environment in (None, e)]

    async def service_status(self, service: str, environment: str) -> dict[str, Any]:
        return self.status(service, environment)

    async def recent_deploys(self, *filters: Any) -> list[dict[str, Any]]:
        return list(self.done.values())

    async def change(self, action: str, service: str, environment: str, **kw: Any) -> Any:
        return self.deploy(service, environment, kw["version"], kw["idempotency_key"])


# ---------------------------------------------------------------- opsloop


def opsloop_model(marks: list[int]) -> FunctionModel:
    """The instant model: call the agent's tool, then reply once it has answered."""

    def decide(request: ModelRequest) -> CallTool | Reply:
        marks.append(time.perf_counter_ns())
        if isinstance(request.events[-1], ToolReturned):
            return Reply(text="done")
        if request.agent == "deployer":
            return CallTool(tool="deploy", arguments=DEPLOY_ARGS)
        return CallTool(tool="service_status", arguments=STATUS_ARGS)

    return FunctionModel(decide)


class OpsloopAgent:
    """opsloop as its worker runs it: ``Opsloop.submit`` of messages and approvals.

    On PostgreSQL with the blocking driver, as a worker process uses it (and as LangGraph's
    ``PostgresSaver`` does).
    """

    def __init__(self, ops: Opsloop, marks: list[int]) -> None:
        self.ops, self.marks = ops, marks

    @classmethod
    async def start(cls, url: str, home: str, inventory: Inventory) -> OpsloopAgent:
        database = Database(url)
        database.use_blocking_driver()  # as `opsloop worker` does
        await database.migrate()
        marks: list[int] = []
        runtime = Runtime(
            settings=load_settings(OPSLOOP_HOME=home),
            policy=load_policy(),
            prompts=PromptLibrary(),
            agents=registry,
            models={"default": opsloop_model(marks)},
            resources={INVENTORY: inventory},
        )
        return cls(Opsloop(Store(database), runtime), marks)

    async def settings(self) -> str:
        async with self.ops.store.db.session() as session:
            if self.ops.store.db.engine.dialect.name == "sqlite":
                mode = await session.scalar(text("PRAGMA journal_mode"))
                sync = await session.scalar(text("PRAGMA synchronous"))
                return f"journal_mode={mode}, synchronous={SQLITE_SYNC.get(sync, sync)}"
            commit = await session.scalar(text("SHOW synchronous_commit"))
            return f"synchronous_commit={commit} (blocking psycopg, as its worker)"

    def message(self, words: str) -> MessageReceived:
        return MessageReceived(
            idempotency_key=f"bench:{uuid.uuid4().hex}",
            conversation=ConversationRef(channel="cli", thread_key=uuid.uuid4().hex),
            sender=REQUESTER,
            text=words,
        )

    async def turn(self, out: Samples) -> None:
        self.marks.clear()
        event = self.message(ASK)
        started = time.perf_counter_ns()
        outcome = await self.ops.submit(event)
        out["turn"].append(time.perf_counter_ns() - started)
        kinds = [e.kind for e in outcome.new_events]
        if outcome.thread.status != ThreadStatus.WAITING or kinds.count("model_call") != 2:
            raise RuntimeError(f"unexpected turn: {outcome.thread.status} {kinds}")
        out["step"].append(self.marks[1] - self.marks[0])

    async def cycle(self, out: Samples) -> None:
        event = self.message(DEPLOY)
        started = time.perf_counter_ns()
        paused = await self.ops.submit(event)
        between = time.perf_counter_ns()
        request = next(e for e in paused.new_events if isinstance(e, HumanRequested))
        approve = ActionReceived(
            idempotency_key=f"bench:{uuid.uuid4().hex}",
            conversation=ConversationRef(channel="cli", thread_key="approvals"),
            actor=APPROVER,
            request_id=request.request_id,
            decision=HumanDecision.APPROVE,
        )
        resumed = await self.ops.submit(approve)
        ended = time.perf_counter_ns()
        result = next(e for e in resumed.new_events if isinstance(e, ToolReturned))
        deployed = isinstance(result.output, dict) and "deployed" in result.output
        if paused.thread.status != ThreadStatus.PAUSED or not deployed:
            raise RuntimeError(f"unexpected cycle: {paused.thread.status} {result.output}")
        out["cycle"].append(ended - started)
        out["pause"].append(between - started)
        out["resume"].append(ended - between)

    async def close(self) -> None:
        await self.ops.aclose()


# ---------------------------------------------------------------- LangGraph


def build_graph(
    inventory: Inventory, marks: list[int], saver: BaseCheckpointSaver[Any]
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Agent node, approval node (``interrupt()`` before deploy), tool node; checkpointed."""

    @lc_tool
    def service_status(service: str, environment: str) -> dict[str, Any]:
        """Show one service's version, health and replicas in one environment."""
        return inventory.status(service, environment)

    @lc_tool
    def deploy(service: str, environment: str, version: str) -> dict[str, Any]:
        """Deploy a version of a service to an environment."""
        return inventory.deploy(service, environment, version, uuid.uuid4().hex)

    def agent(state: MessagesState) -> dict[str, Any]:
        marks.append(time.perf_counter_ns())
        last = state["messages"][-1]
        if isinstance(last, ToolMessage):
            return {"messages": [AIMessage(content="done")]}
        deploying = str(last.content).startswith("deploy")
        name, args = ("deploy", DEPLOY_ARGS) if deploying else ("service_status", STATUS_ARGS)
        call = {"name": name, "args": args, "id": uuid.uuid4().hex, "type": "tool_call"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        if not isinstance(last, AIMessage) or not last.tool_calls:
            return END
        return "approval" if last.tool_calls[0]["name"] == "deploy" else "tools"

    def approval(state: MessagesState) -> Command[Literal["tools", "agent"]]:
        last = state["messages"][-1]
        assert isinstance(last, AIMessage)
        call = last.tool_calls[0]
        answer = interrupt({"tool": call["name"], "arguments": call["args"]})
        if answer.get("approved"):
            return Command(goto="tools")
        refused = ToolMessage(content="rejected", tool_call_id=call["id"])
        return Command(goto="agent", update={"messages": [refused]})

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("approval", approval)
    graph.add_node("tools", ToolNode([service_status, deploy]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=saver)


class LangGraphAgent:
    """The graph run as its docs show: ``invoke`` and ``Command(resume=...)``, per thread id."""

    def __init__(self, saver: BaseCheckpointSaver[Any], inventory: Inventory) -> None:
        self.marks: list[int] = []
        self.graph = build_graph(inventory, self.marks, saver)

    def invoke(self, value: Any, thread: str) -> dict[str, Any]:
        config: Any = {"configurable": {"thread_id": thread}}
        result: dict[str, Any] = self.graph.invoke(value, config, durability="sync")
        return result

    def turn(self, out: Samples) -> None:
        self.marks.clear()
        started = time.perf_counter_ns()
        state = self.invoke({"messages": [HumanMessage(content=ASK)]}, uuid.uuid4().hex)
        out["turn"].append(time.perf_counter_ns() - started)
        if len(self.marks) != 2 or state["messages"][-1].content != "done":
            raise RuntimeError(f"unexpected turn: {state}")
        out["step"].append(self.marks[1] - self.marks[0])

    def cycle(self, out: Samples) -> None:
        thread = uuid.uuid4().hex
        started = time.perf_counter_ns()
        paused = self.invoke({"messages": [HumanMessage(content=DEPLOY)]}, thread)
        between = time.perf_counter_ns()
        resumed = self.invoke(Command(resume={"approved": True}), thread)
        ended = time.perf_counter_ns()
        if "__interrupt__" not in paused or "deployed" not in resumed["messages"][-2].content:
            raise RuntimeError(f"unexpected cycle: {paused} {resumed}")
        out["cycle"].append(ended - started)
        out["pause"].append(between - started)
        out["resume"].append(ended - between)


@contextmanager
def sqlite_saver(path: str) -> Iterator[tuple[SqliteSaver, str]]:
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        saver = SqliteSaver(conn)
        saver.setup()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        yield saver, f"journal_mode={mode}, synchronous={SQLITE_SYNC.get(sync, sync)}"
    finally:
        conn.close()


@contextmanager
def postgres_saver(url: str) -> Iterator[tuple[PostgresSaver, str]]:
    # The connection PostgresSaver.from_conn_string would open.
    with psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        row = conn.execute("SHOW synchronous_commit").fetchone()
        yield saver, f"synchronous_commit={row['synchronous_commit'] if row else '?'}"
