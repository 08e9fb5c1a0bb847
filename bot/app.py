"""The application service: ingest inbound events and process them into thread steps.

Every channel ends here. :meth:`Opsloop.ingest` is the fast path (validate, dedupe, store;
no model call); :meth:`Opsloop.process` is the worker's job (take the thread's lease, apply
the event, run the agent until it replies or pauses). :meth:`Opsloop.submit` does both
in-process, for the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import Any, NoReturn

from bot.agent import AgentRegistry, check_startup
from bot.config import Settings
from bot.errors import (
    BadInputError,
    ConcurrentStepError,
    DecisionRefusedError,
    NotFoundError,
    UserFacingError,
)
from bot.events import (
    ActionReceived,
    AgentReply,
    DecisionRefused,
    HumanDecision,
    Identity,
    MessageReceived,
    StatusChanged,
    ThreadStatus,
    TriggerFired,
    UserMessage,
    new_id,
)
from bot.failures import (
    AttemptsExhaustedError,
    gave_up,
    internal_errors_in_a_row,
    item_failed,
    record_failure,
)
from bot.human import decide, decision_events, decision_outbound
from bot.inbound import DONE, Outcome, ThreadBusyError, check_text
from bot.model import Model
from bot.outbound import outbound_for
from bot.policy import Policy
from bot.runtime import Runtime, advance
from bot.store import HumanRequest, InboxItem, Store, Thread
from bot.turn import Turn, commit

__all__ = [
    "AttemptsExhaustedError",
    "Opsloop",
    "Outcome",
    "ThreadBusyError",
    "check_startup",
    "check_text",
]

log = logging.getLogger(__name__)


class _Refused(Exception):  # a signal inside process, never seen outside
    """The inbound event was refused: the item is finished as failed and ``error`` raised."""

    def __init__(self, error: UserFacingError) -> None:
        super().__init__(str(error))
        self.error = error


class Opsloop:
    """One opsloop: store, runtime and the handling of every inbound event."""

    def __init__(self, store: Store, runtime: Runtime) -> None:
        """Assemble from parts (tests build them directly; :meth:`from_settings` otherwise)."""
        self.store = store
        self.runtime = runtime
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_id('w')}"

    @classmethod
    async def from_settings(
        cls,
        settings: Settings,
        *,
        models: Mapping[str, Model] | None = None,
        agents: AgentRegistry | None = None,
        policy: Policy | None = None,
        auto_migrate: bool | None = None,
    ) -> Opsloop:
        """Connect, check the schema, and load policy, plugins, agents, models and resources."""
        from bot.assemble import assemble

        database, runtime = await assemble(
            settings, models=models, agents=agents, policy=policy, auto_migrate=auto_migrate
        )
        return cls(Store(database), runtime)

    async def aclose(self) -> None:
        """Close model clients and database connections."""
        from bot.assemble import close_resources

        for model in set(self.runtime.models.values()):
            await model.aclose()
        await close_resources(self.runtime.resources)
        await self.store.db.dispose()

    # ------------------------------------------------------------ fast path

    def checked(self, event: Any) -> Any:
        """``event`` as it would be stored: text trimmed and checked, its agent known.

        Raises:
            BadInputError: the event cannot be accepted.
            NotFoundError: it names an unknown agent.
        """
        limit = self.runtime.settings.max_message_chars
        if isinstance(event, MessageReceived | TriggerFired):
            event = event.model_copy(update={"text": check_text(event.text, limit=limit)})
            if event.agent is not None:
                self.runtime.agents.get(event.agent)
        elif isinstance(event, ActionReceived) and event.comment is not None:
            event = event.model_copy(update={"comment": check_text(event.comment, limit=limit)})
        return event

    async def ingest(self, event: Any) -> InboxItem | None:
        """Validate and store an inbound event; ``None`` for a duplicate. No model calls.

        Raises:
            BadInputError: the event cannot be accepted; nothing was stored.
        """
        return await self.store.ingest(self.checked(event))

    async def submit(self, event: Any) -> Outcome:
        """Ingest and process at once (the CLI's path). A duplicate raises ``BadInputError``."""
        item = await self.ingest(event)
        if item is None:
            raise BadInputError(f"event {event.idempotency_key!r} was already received")
        outcome = await self.process(item.id)
        assert outcome is not None, "a new item is always processed"
        return outcome

    # ------------------------------------------------------------ worker path

    async def process(self, item_id: int, *, deliver: bool = False) -> Outcome | None:
        """Apply one stored inbound event to its thread and run the agent.

        Safe to call again for the same item (a redelivered task): an item is applied once,
        and a finished one is left alone (``None``). With ``deliver``, the caller sends the
        turn's messages right after: they come claimed for it (``Outcome.claimed``).

        Raises:
            ThreadBusyError: another worker holds the thread; nothing changed.
            UserFacingError: the event was refused (the item is marked failed with why).
        """
        ttl = self.runtime.settings.lease_seconds
        claim = await self.store.claim(item_id, self.owner, ttl)
        if claim.thread is None and not claim.busy and claim.item.status not in DONE:
            found = await self._thread_of(claim.item)
            claim = await self.store.claim(item_id, self.owner, ttl, thread_id=found)
        item = claim.item
        if item.status in DONE:
            return None
        if claim.thread is None:
            raise ThreadBusyError(f"thread {item.thread_id} is busy")
        current, attempt = claim.thread, claim.attempt
        turn = Turn(lease=self.owner, item=item_id, claimed=[] if deliver else None)
        async with self._holding(current.id, turn):
            try:
                # A try past the last, with work left to do: earlier tries died unrecorded.
                # (If they finished the work and only the bookkeeping was lost, it is done.)
                left = item.status == "pending" or current.status == ThreadStatus.RUNNING
                if attempt > self.runtime.settings.max_attempts and left:
                    raise AttemptsExhaustedError(
                        item.error or "the worker stopped while processing it (killed or crashed)"
                    )
                thread = current
                if item.status == "pending":
                    thread = await self._apply(current, item.event, claim.request, turn)
                thread = await self._advance(thread, item.event, turn)
            except (ThreadBusyError, ConcurrentStepError):
                raise  # the lease lapsed, or another worker moved on: nothing is broken here
            except _Refused as refused:  # recorded, the person is told
                if not isinstance(refused.error, DecisionRefusedError):  # it failed the item
                    await self.store.finish_inbox(item_id, thread_id=current.id, error=str(refused))
                raise refused.error from None
            except Exception as exc:
                if not await record_failure(
                    self.store, self._limit, current.id, item_id, attempt, exc
                ):
                    raise
                thread = await self.store.load_thread(current.id)
        if not turn.ended:
            await self.store.finish_inbox(item_id, thread_id=current.id, error=gave_up(thread))
        return Outcome(item, thread, current.last_seq + 1, tuple(turn.claimed or ()))

    async def _thread_of(self, item: InboxItem) -> str:
        """The thread of an item stored without one (by a channel, or before it knew)."""
        try:
            return await self._thread_for(item.event)
        except UserFacingError as exc:
            await self.store.finish_inbox(item.id, thread_id=None, error=str(exc))
            raise
        except Exception as exc:
            attempt = await self.store.begin_attempt(item.id)
            await item_failed(self.store, self._limit, item.id, None, attempt, exc)
            raise

    async def _advance(self, thread: Thread, event: Any, turn: Turn) -> Thread:
        try:
            try:
                return await advance(self.store, thread.id, self.runtime, thread=thread, turn=turn)
            except (ThreadBusyError, ConcurrentStepError):
                raise
            except Exception:
                await self._keep_carried(thread, turn)  # the failure is recorded after it
                raise
        except ConcurrentStepError:
            if not (turn.carrying and isinstance(event, ActionReceived)):
                raise
            # Decided (or the thread moved) in the meantime, though we held the lease: it
            # had lapsed. Record the refusal like any other, on the thread as it is now.
            thread = await self.store.load_thread(thread.id)
            reason = f"request {event.request_id} was already decided"
            try:
                await self._refuse(thread, event, reason, turn.item)
            except DecisionRefusedError as exc:
                raise _Refused(exc) from exc

    async def _keep_carried(self, thread: Thread, turn: Turn) -> None:
        """Commit the event a failed try applied, so its failure is recorded after it."""
        if turn.carrying:
            await commit(self.store, thread, [], replace(turn, lease=None))
            turn.events, turn.outbound, turn.resolve = [], [], None

    async def _apply(
        self, thread: Thread, event: Any, request: HumanRequest | None, turn: Turn
    ) -> Thread:
        """Work out the event's own events, for the turn to commit with its first step.

        Returns the thread as committed, which an expiry found on the way moves on.

        Raises:
            _Refused: the event is refused (and a decision's refusal recorded).
        """
        try:
            if not isinstance(event, ActionReceived):
                turn.events = self._message_events(thread, event)
                return thread
            if request is None:
                raise NotFoundError(f"no human request {event.request_id!r}")
            return await self._apply_action(thread, event, request, turn)
        except UserFacingError as exc:
            raise _Refused(exc) from exc

    async def resume(self, thread_id: str) -> Thread:
        """Drive a thread left running (its worker died mid-step) to its next stop."""
        async with self.lease(thread_id) as turn:
            try:
                return await advance(self.store, thread_id, self.runtime, turn=turn)
            except (ThreadBusyError, ConcurrentStepError):
                raise
            except Exception as exc:
                tries = internal_errors_in_a_row(await self.store.load_thread(thread_id)) + 1
                if not await record_failure(self.store, self._limit, thread_id, None, tries, exc):
                    raise
                return await self.store.load_thread(thread_id)

    @asynccontextmanager
    async def lease(self, thread_id: str) -> AsyncIterator[Turn]:
        """Hold the thread's step lease, renewed in the background while held.

        Yields the turn whose commits it fences.

        Raises:
            ThreadBusyError: another worker holds it.
        """
        ttl = self.runtime.settings.lease_seconds
        if not await self.store.acquire_lease(thread_id, self.owner, ttl):
            await self.store.load_thread(thread_id)  # NotFoundError for an unknown thread
            raise ThreadBusyError(f"thread {thread_id} is busy")
        turn = Turn(lease=self.owner)
        async with self._holding(thread_id, turn):
            yield turn

    @asynccontextmanager
    async def _holding(self, thread_id: str, turn: Turn) -> AsyncIterator[None]:
        """Renew a lease taken while the block runs; give it back after, unless a commit did."""
        ttl = self.runtime.settings.lease_seconds

        async def renew() -> None:
            renewed = True
            while renewed:
                await asyncio.sleep(ttl / 3)
                renewed = await self.store.renew_lease(thread_id, self.owner, ttl)

        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with suppress(asyncio.CancelledError):
                await renewing
            if not turn.ended:
                await self.store.release_lease(thread_id, self.owner)

    @property
    def _limit(self) -> int:
        return self.runtime.settings.max_attempts

    async def _thread_for(self, event: Any) -> str:
        if isinstance(event, ActionReceived):
            return (await self.store.human_request(event.request_id)).thread_id
        return await self.store.open_thread(event.conversation, title=event.text[:120])

    def _message_events(self, thread: Thread, event: MessageReceived | TriggerFired) -> list[Any]:
        if isinstance(event, MessageReceived):
            message = UserMessage(sender=event.sender, text=event.text)
        else:
            message = UserMessage(
                sender=event.requested_by,
                text=event.text,
                source=event.source,
                payload=event.payload or None,
            )
        if thread.status == ThreadStatus.PAUSED:
            # The thread waits on a person; keep the message for the agent to read later.
            return [message]
        # A follow-up that is clearly for another agent (a deploy after a question about
        # versions) moves the thread to it; anything else stays with the current agent.
        agents = self.runtime.agents
        agent = agents.get(event.agent) if event.agent else agents.route(event.text, thread.agent)
        return [message, StatusChanged(status=ThreadStatus.RUNNING, agent=agent.name)]

    async def _apply_action(
        self, thread: Thread, event: ActionReceived, request: HumanRequest, turn: Turn
    ) -> Thread:
        now = self.runtime.clock()
        if request.status == "pending" and request.request.expires_at <= now:
            await self._expire(thread, request)
            thread = await self.store.load_thread(thread.id)
            request = await self.store.human_request(event.request_id)
        refusal, events, resolve = decide(self.runtime, thread, request, event)
        if refusal is not None:
            await self._refuse(thread, event, refusal, turn.item)
        turn.events, turn.resolve = events, resolve
        turn.outbound = decision_outbound(thread, request, events)
        return thread

    async def _refuse(
        self, thread: Thread, event: ActionReceived, reason: str, item_id: int | None
    ) -> NoReturn:
        refused = DecisionRefused(request_id=event.request_id, actor=event.actor, reason=reason)
        await self.store.append(  # the refusal and the item failed with it, as one
            thread.id,
            expected_seq=thread.last_seq,
            events=[refused],
            outbound=outbound_for(thread.conversation, [refused]),
            inbox_item=item_id,
            done_item=item_id,
            failed=reason,
        )
        raise DecisionRefusedError(reason)

    async def _expire(self, thread: Thread, request: HumanRequest) -> None:
        reason = f"no decision before {request.request.expires_at:%Y-%m-%d %H:%M} UTC (expired)"
        events = decision_events(request, HumanDecision.REJECT, None, reason)
        await self.store.append(
            thread.id,
            expected_seq=thread.last_seq,
            events=events,
            outbound=decision_outbound(thread, request, events),
            resolve=(request.id, "expired", None, reason),
        )

    async def pause(self, thread_id: str, actor: Identity, reason: str | None) -> Thread:
        """Stop a thread taking steps until it is resumed; messages meanwhile are kept.

        Raises:
            ThreadBusyError: a step is under way; try again.
            BadInputError: the thread is already paused, or closed.
        """
        async with self.lease(thread_id):
            thread = await self.store.load_thread(thread_id)
            if thread.status in {ThreadStatus.PAUSED, ThreadStatus.DONE}:
                raise BadInputError(f"thread {thread_id} is {thread.status.value} already")
            why = f"paused by {actor.principal}" + (f": {reason}" if reason else "")
            await self.store.append(
                thread_id,
                expected_seq=thread.last_seq,
                events=[StatusChanged(status=ThreadStatus.PAUSED, reason=why)],
            )
            return await self.store.load_thread(thread_id)

    async def unpause(self, thread_id: str, actor: Identity) -> Thread:
        """Let a paused thread go on.

        It becomes running (for a worker to resume) if a message arrived while it was
        paused, else waiting.

        Raises:
            ThreadBusyError: a step is under way; try again.
            BadInputError: the thread is not paused, or waits for a human request.
        """
        async with self.lease(thread_id):
            thread = await self.store.load_thread(thread_id)
            if thread.status != ThreadStatus.PAUSED:
                raise BadInputError(f"thread {thread_id} is {thread.status.value}, not paused")
            waiting = await self.store.human_requests(thread_id=thread_id, limit=1)
            if waiting:
                raise BadInputError(
                    f"thread {thread_id} waits for request {waiting[0].id}: decide that instead"
                )
            replied = max(
                (i for i, e in enumerate(thread.events) if isinstance(e, AgentReply)), default=-1
            )
            unanswered = any(isinstance(e, UserMessage) for e in thread.events[replied + 1 :])
            status = ThreadStatus.RUNNING if unanswered and thread.agent else ThreadStatus.WAITING
            await self.store.append(
                thread_id,
                expected_seq=thread.last_seq,
                events=[StatusChanged(status=status, reason=f"resumed by {actor.principal}")],
            )
            return await self.store.load_thread(thread_id)

    async def expire_requests(self) -> list[str]:
        """Resolve every overdue pending request as rejected and resume its thread.

        Returns:
            The ids of the requests expired now; busy threads are left for the next sweep.
        """
        expired = []
        for request in await self.store.human_requests(expired_by=self.runtime.clock()):
            try:
                async with self.lease(request.thread_id) as turn:
                    thread = await self.store.load_thread(request.thread_id)
                    await self._expire(thread, request)
                    await advance(self.store, thread.id, self.runtime, turn=turn)
                expired.append(request.id)
            except ThreadBusyError:
                log.info("thread of request %s is busy; it expires next sweep", request.id)
            except ConcurrentStepError:
                log.info("request %s was decided while expiring it", request.id)
        return expired
