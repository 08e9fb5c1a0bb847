"""``Testbot``: a whole opsloop in one process, driven the way people drive it."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import JsonValue
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.app import Opsloop
from bot.assemble import assemble
from bot.catalogue import SHIPPED_PLUGIN
from bot.config import Settings, validated
from bot.events import (
    ActionReceived,
    AgentReply,
    ConversationRef,
    HumanDecision,
    HumanRequested,
    HumanResponded,
    Identity,
    MessageReceived,
    ThreadStatus,
    new_id,
)
from bot.model import Model
from bot.model.offline import OfflineModel
from bot.plugins import Plugin, load_plugins
from bot.policy import Policy, load_policy
from bot.store import HumanRequest, Store, Thread
from bot.testing._sent import Sent, ToolUse, render, tool_uses
from bot.tools import Resource

__all__ = ["Testbot", "Turn"]

R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Turn:
    """What one message or decision did: the thread afterwards and what was sent out."""

    thread: Thread
    """The thread afterwards, with every event."""
    events: tuple[Any, ...]
    """The events this turn added, in order."""
    sent: tuple[Sent, ...]
    """What this turn sent out (replies, approval requests, notices)."""

    @property
    def status(self) -> ThreadStatus:
        """The thread's status afterwards (``waiting`` after a reply, ``paused`` on a request)."""
        return self.thread.status

    @property
    def replies(self) -> list[str]:
        """The agent's replies this turn."""
        return [e.text for e in self.events if isinstance(e, AgentReply)]

    @property
    def text(self) -> str:
        """The replies this turn, one a line."""
        return "\n".join(self.replies)

    @property
    def request(self) -> HumanRequested | None:
        """The human request this turn left open (an approval or a question), if any."""
        answered = {e.request_id for e in self.events if isinstance(e, HumanResponded)}
        open_ = [
            e for e in self.events if isinstance(e, HumanRequested) and e.request_id not in answered
        ]
        return open_[-1] if open_ else None

    @property
    def tool_calls(self) -> list[ToolUse]:
        """The tools this turn ran, each with its result."""
        return tool_uses(self.events)


class _KitSettings(Settings):
    """Settings from what the kit is given only.

    Never the shell's ``OPSLOOP_*`` nor a ``.env`` file, so a plugin's test behaves the same
    on every machine.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class Testbot:
    """An in-process opsloop on a throw-away SQLite database, for tests of tools and agents.

    Give it your plugin (its tools, agents, prompts and resources load as they would in
    production), a model (:class:`ScriptedModel`, :class:`FunctionModel`; the offline model
    by default) and optionally a policy; then send messages as people and decide what the
    agents ask::

        async with Testbot(plugins=[plugin], model=ScriptedModel([...])) as bot:
            turn = await bot.send("purge /index.html", as_="dev-1")
            assert turn.request is not None
            done = await bot.approve(as_="oncall-1")
            assert done.tool_calls[0].output == {...}

    Messages go through the same path as any channel's (validation, routing, policy,
    approval, four-eyes); what opsloop would send back is recorded in :attr:`sent`.
    A :class:`ScriptedModel` with decisions left unused fails the test on a clean exit.
    """

    __test__ = False  # a class named Test* that pytest must not collect

    def __init__(
        self,
        *,
        plugins: Sequence[Plugin] = (),
        shipped_agents: bool = False,
        model: Model | None = None,
        models: Mapping[str, Model] | None = None,
        policy: Policy | Path | str | None = None,
        resources: Mapping[Resource[Any], object] | None = None,
        tools_dir: Path | str | None = None,
        prompts_dir: Path | str | None = None,
        clock: Callable[[], datetime] | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> None:
        """Describe the opsloop to start (nothing happens until it is entered).

        Args:
            plugins: the plugins in force (yours, passed directly; nothing else loads).
            shipped_agents: also load the shipped ``agents`` plugin (inspector, deployer).
            model: the ``default`` model route; :class:`OfflineModel` when not given.
            models: model routes by name, instead of ``model``.
            policy: a :class:`Policy` or a policy file; the bundled default when not given.
            resources: objects that replace what plugins' resource factories make (fakes).
            tools_dir: a declarations folder, as ``OPSLOOP_TOOLS_DIR``.
            prompts_dir: the team's prompt folder, as ``OPSLOOP_PROMPTS_DIR``.
            clock: the runtime's clock (for expiry and escalation).
            settings: further settings by their environment names (``OPSLOOP_MAX_ATTEMPTS``).
        """
        if model is not None and models is not None:
            raise TypeError("give model or models, not both")
        self._plugins = tuple(plugins)
        self._shipped = shipped_agents
        self._models = dict(models) if models is not None else {"default": model or OfflineModel()}
        self._policy = policy
        self._resources = dict(resources or {})
        self._dirs = {"OPSLOOP_TOOLS_DIR": tools_dir, "OPSLOOP_PROMPTS_DIR": prompts_dir}
        self._clock = clock
        self._overrides = dict(settings or {})
        self._home: tempfile.TemporaryDirectory[str] | None = None
        self._ops: Opsloop | None = None
        self._threads: dict[str, None] = {}
        self.sent: list[Sent] = []
        """Everything opsloop sent out so far, in order: the recording channel."""

    # ------------------------------------------------------------ life cycle

    async def start(self) -> Testbot:
        """Create the database and load plugins, policy, prompts and resources.

        Raises:
            ConfigError: the plugins, declarations, prompts or policy do not load.
        """
        self._home = tempfile.TemporaryDirectory(prefix="opsloop-testbot-")
        # A file, not ":memory:": the store keeps two engines (the async one, and a plain
        # one for the hot path in worker threads), and each in-memory connection would
        # see a database of its own.
        home = Path(self._home.name)
        settings = validated(
            _KitSettings,
            "testing kit settings",
            OPSLOOP_HOME=str(home),
            DATABASE_URL=f"sqlite:///{home / 'opsloop.db'}",
            OPSLOOP_PLUGINS="",
            OPSLOOP_DISABLE_PLUGINS="",
            OPSLOOP_AGENTS="",
            **self._dirs,
            **self._overrides,
        )
        shipped = [p for p in load_plugins() if p.name == SHIPPED_PLUGIN] if self._shipped else []
        policy = self._policy
        if not isinstance(policy, Policy):
            policy = load_policy(Path(policy) if policy is not None else None)
        try:
            database, runtime = await assemble(
                settings,
                models=self._models,
                policy=policy,
                plugins=[*shipped, *self._plugins],
                auto_migrate=True,
                resources=self._resources,
            )
        except BaseException:
            self._home.cleanup()
            raise
        changes: dict[str, Any] = {}
        if self._clock is not None:
            changes["clock"] = self._clock
        self._ops = Opsloop(Store(database), dataclasses.replace(runtime, **changes))
        return self

    async def aclose(self) -> None:
        """Close models, resources and the database, and remove the database file."""
        try:
            if self._ops is not None:
                await self._ops.aclose()
        finally:
            self._ops = None
            if self._home is not None:
                self._home.cleanup()
                self._home = None

    async def __aenter__(self) -> Testbot:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        models = set(self._models.values())
        await self.aclose()
        if exc is None:  # a failing test's own error says more than unused decisions
            for model in models:
                check = getattr(model, "assert_consumed", None)
                if check is not None:
                    check()

    @property
    def ops(self) -> Opsloop:
        """The running :class:`Opsloop`, its ``store`` and ``runtime``: what the kit leaves out."""
        if self._ops is None:
            raise RuntimeError("the Testbot is not started: use `async with Testbot(...)`")
        return self._ops

    def get(self, key: Resource[R]) -> R:
        """The resource ``key`` stands for, as the tools get it.

        Raises:
            LookupError: no plugin provides it.
        """
        try:
            return self.ops.runtime.resources[key]  # type: ignore[return-value]
        except KeyError:
            raise LookupError(f"resource {key.name!r} is not configured") from None

    # ------------------------------------------------------------ people

    def identity(self, person: str) -> Identity:
        """Who ``person`` is, as an identity a channel would vouch for.

        A name from the policy's ``[people]`` is their first principal; a principal
        (``slack:U123``) is itself; any other name is ``cli:<person>``.
        """
        if ":" in person:
            channel, _, user = person.partition(":")
        else:
            known = self.ops.runtime.policy.people.get(person)
            first = known.principals[0] if known else f"cli:{person}"
            channel, _, user = first.partition(":")
        return Identity(channel=channel, user_id=user, display_name=person, auth="test")

    async def send(
        self, text: str, *, as_: str = "dev-1", thread: str = "main", agent: str | None = None
    ) -> Turn:
        """Send ``text`` as ``as_`` and run the agent until it replies or asks a person.

        Args:
            text: the message.
            as_: who sends it (see :meth:`identity`).
            thread: the conversation (on the sender's channel): every message with one key
                goes to one thread; use another key for a new one.
            agent: talk to this agent instead of letting the router pick.

        Raises:
            BadInputError: the message was refused (empty, too long); nothing was stored.
            NotFoundError: ``agent`` names no agent.
        """
        sender = self.identity(as_)
        event = MessageReceived(
            idempotency_key=f"test:{new_id('msg')}",
            conversation=ConversationRef(channel=sender.channel, room="testbot", thread_key=thread),
            sender=sender,
            text=text,
            agent=agent,
        )
        return await self._submit(event)

    async def approve(
        self,
        request_id: str | None = None,
        *,
        as_: str = "oncall-1",
        comment: str | None = None,
        changes: Mapping[str, JsonValue] | None = None,
    ) -> Turn:
        """Approve a request (the latest pending one by default).

        The call runs once enough people have approved; ``changes`` approves it with edited
        arguments, checked like the original.

        Raises:
            DecisionRefusedError: ``as_`` may not approve it (four-eyes, not an approver…).
        """
        return await self._decide(request_id, as_, HumanDecision.APPROVE, comment, changes)

    async def reject(
        self, request_id: str | None = None, *, as_: str = "oncall-1", reason: str | None = None
    ) -> Turn:
        """Reject a request (the latest pending one by default); the agent is told why.

        Raises:
            DecisionRefusedError: ``as_`` may not decide it.
        """
        return await self._decide(request_id, as_, HumanDecision.REJECT, reason, None)

    async def answer(self, text: str, request_id: str | None = None, *, as_: str = "dev-1") -> Turn:
        """Answer a question an agent asked (the latest pending request by default).

        Raises:
            DecisionRefusedError: ``as_`` may not answer it.
        """
        return await self._decide(request_id, as_, HumanDecision.ANSWER, text, None)

    # ------------------------------------------------------------ what happened

    async def pending(self) -> list[HumanRequest]:
        """The requests waiting for a person, oldest first."""
        return await self.ops.store.human_requests(status="pending")

    async def tool_calls(self) -> list[ToolUse]:
        """Every tool call in the threads this bot has seen, each with its result."""
        found: list[ToolUse] = []
        for thread_id in self._threads:
            found += tool_uses((await self.ops.store.load_thread(thread_id)).events)
        return found

    @property
    def replies(self) -> list[str]:
        """The agents' replies sent so far, in order."""
        return [s.text for s in self.sent if s.kind == "reply"]

    @property
    def transcript(self) -> str:
        """Everything sent so far, one message a line (handy in an assertion message)."""
        return "\n".join(f"[{s.kind}] {s.text}" for s in self.sent)

    # ------------------------------------------------------------ plumbing

    async def _decide(
        self,
        request_id: str | None,
        as_: str,
        decision: HumanDecision,
        comment: str | None,
        changes: Mapping[str, JsonValue] | None,
    ) -> Turn:
        if request_id is None:
            waiting = await self.pending()
            if not waiting:
                raise AssertionError(f"no request is pending; sent so far:\n{self.transcript}")
            request_id = waiting[-1].id
        request = await self.ops.store.human_request(request_id)
        thread = await self.ops.store.load_thread(request.thread_id)
        event = ActionReceived(
            idempotency_key=f"test:{new_id('act')}",
            conversation=thread.conversation,
            actor=self.identity(as_),
            request_id=request_id,
            decision=decision,
            comment=comment,
            changes=dict(changes) if changes is not None else None,
        )
        return await self._submit(event)

    async def _submit(self, event: MessageReceived | ActionReceived) -> Turn:
        before = len(self.sent)
        try:
            outcome = await self.ops.submit(event)
        finally:
            await self._deliver()  # a refused decision is told too, then raised
        self._threads.setdefault(outcome.thread.id)
        return Turn(
            thread=outcome.thread, events=outcome.new_events, sent=tuple(self.sent[before:])
        )

    async def _deliver(self) -> None:
        store = self.ops.store
        while items := await store.pending_outbound(due_only=False):
            for item in items:
                message = item.message
                self.sent.append(
                    Sent(
                        thread_id=item.thread_id,
                        channel=message.conversation.channel,
                        kind=message.kind,
                        text=render(message),
                        message=message,
                        place=getattr(message, "target", None),
                    )
                )
                await store.mark_outbound(item.id, sent=True)
