"""What the tasks do, as plain async functions of the app (tested without a broker)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from datetime import timedelta

from bot.app import Opsloop
from bot.errors import UserFacingError
from bot.escalation import escalate_requests
from bot.events import ConversationRef, Identity, TriggerFired, utcnow
from bot.plugins import (
    DeliveryContext,
    DeliveryFailedError,
    DeliveryRetryError,
    Dispatcher,
    Sender,
)
from bot.store import OutboxItem

__all__ = ["NO_DELIVERY", "deliver_now", "deliver_thread", "fire_schedule", "process_item", "sweep"]

log = logging.getLogger(__name__)

NO_DELIVERY = frozenset({"cli", "api", "webhook", "schedule"})
"""Channels whose people read the thread itself (CLI, API clients): nothing to push."""

MAX_ATTEMPTS = 8


async def process_item(
    ops: Opsloop,
    dispatcher: Dispatcher,
    item_id: int,
    senders: Mapping[str, Sender] | None = None,
) -> None:
    """Process one inbox item, then deliver its thread's new messages (:func:`deliver_now`).

    Without ``senders`` the thread is handed to the delivery queue instead.

    Raises:
        ThreadBusyError: the thread is busy; the task retries later.
    """
    claimed: Sequence[OutboxItem] = ()
    try:
        outcome = await ops.process(item_id, deliver=senders is not None)
    except UserFacingError as exc:
        log.info("inbox item %s refused: %s", item_id, exc)
        thread_id = (await ops.store.inbox_item(item_id)).thread_id
    else:
        thread_id = outcome.thread.id if outcome else None
        claimed = outcome.claimed if outcome else ()
    if thread_id:
        await deliver_now(ops, dispatcher, senders, thread_id, claimed)


async def deliver_now(
    ops: Opsloop,
    dispatcher: Dispatcher,
    senders: Mapping[str, Sender] | None,
    thread_id: str,
    claimed: Sequence[OutboxItem] = (),
) -> None:
    """Deliver a thread's messages from the task that committed them.

    A reply then costs one broker hop, not two. The delivery queue stays for what cannot go
    at once: a message that must wait, or a failure here, hands the thread to it (after the
    wait), and it goes on in order from there. Without ``senders``, it all goes to the queue.
    """
    if senders is None:
        dispatcher.deliver(thread_id)
        return
    try:
        wait = await deliver_thread(ops, senders, thread_id, claimed)
    except Exception as exc:  # the store, most likely: the queued task tries again
        wait = _backoff(0)
        log.warning(
            "delivering thread %s failed, queued: %s: %s", thread_id, type(exc).__name__, exc
        )
    if wait is not None:
        dispatcher.deliver(thread_id, countdown=wait)


async def deliver_thread(
    ops: Opsloop,
    senders: Mapping[str, Sender],
    thread_id: str,
    claimed: Sequence[OutboxItem] = (),
) -> float | None:
    """Deliver a thread's messages in order; one that must wait holds back those after it.

    Several workers may deliver one thread at once: a message another worker is sending
    holds back those after it, and that worker, when done, looks again for messages
    committed meanwhile, so none is sent ahead of an earlier one and none is left behind.
    ``claimed`` are messages the caller's commit claimed for it (they come first): sent
    without claiming them again. Whatever of them is not tried is given back.

    Returns:
        Seconds after which to try again when a message must wait, else ``None``.
    """
    context = DeliveryContext(
        store=ops.store, settings=ops.runtime.settings, policy=ops.runtime.policy
    )
    mine = {item.id for item in claimed}
    items = list(claimed) or await ops.store.unsent_outbound(thread_id)
    try:
        while items:
            item = items[0]
            if item.id not in mine:
                if item.status == "sending":
                    return None  # another worker is delivering; it looks again when done
                wait = (item.next_attempt_at - utcnow()).total_seconds()
                if wait > 0:
                    return wait  # an earlier message waits, so the later ones do too
                if not await ops.store.claim_outbound(item.id):
                    return None  # another worker claimed it first
            mine.discard(item.id)
            sent, delay = await _send(ops, senders, item, context)
            if delay is not None:
                return delay  # later messages wait, so the thread's order holds
            if sent:  # marked, and the thread looked at again, in one go
                items = await ops.store.sent_then_next(item.id, thread_id)
            else:
                items = await ops.store.unsent_outbound(thread_id)
        return None
    finally:
        if mine:  # claimed for us, not tried: pending again at once, for the queued task
            await ops.store.unclaim_outbound(sorted(mine))


async def _send(
    ops: Opsloop, senders: Mapping[str, Sender], item: OutboxItem, context: DeliveryContext
) -> tuple[bool, float | None]:
    """Send one claimed message: whether it went, and seconds until its retry, if any.

    One that went is for the caller to mark ``sent``; one that did not is marked here.
    """
    channel = item.message.conversation.channel
    if channel in NO_DELIVERY:
        return True, None
    sender = senders.get(channel)
    if sender is None:
        await ops.store.mark_outbound(item.id, sent=False, error=f"no sender for {channel}")
        return False, None
    try:
        await sender(item, context)
    except DeliveryFailedError as exc:
        log.warning("delivery of outbox item %s failed for good: %s", item.id, exc)
        await ops.store.mark_outbound(item.id, sent=False, error=str(exc)[:500])
        return False, None
    except DeliveryRetryError as exc:
        delay = exc.retry_after if exc.retry_after is not None else _backoff(item.attempts)
        await _retry_or_fail(ops, item.id, item.attempts, str(exc), delay)
        return False, delay
    except Exception as exc:
        delay = _backoff(item.attempts)
        error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("delivery of outbox item %s failed: %s", item.id, error)
        await _retry_or_fail(ops, item.id, item.attempts, error, delay)
        return False, delay
    return True, None


def _backoff(attempts: int) -> float:
    return float(min(300, 2 ** (attempts + 1)) * (0.5 + random.random() / 2))


async def _retry_or_fail(
    ops: Opsloop, item_id: int, attempts: int, error: str, delay: float
) -> None:
    if attempts + 1 >= MAX_ATTEMPTS:
        await ops.store.mark_outbound(item_id, sent=False, error=error)
    else:
        retry_at = utcnow() + timedelta(seconds=delay)
        await ops.store.mark_outbound(item_id, sent=False, error=error, retry_at=retry_at)


SWEEP_LOCK = "sweep"
SWEEP_BATCH = 200
"""Lost items enqueued again per sweep at most: after an outage a backlog drains over a few
sweeps instead of landing on the workers all at once."""


async def sweep(ops: Opsloop, dispatcher: Dispatcher) -> dict[str, int] | None:
    """Close the gaps a broker or a dead worker leaves, one sweep at a time.

    Returns counts for the log, or ``None`` when another sweep is running (after a broker
    outage, sweeps queued meanwhile arrive together: only one of them works).
    """
    settings = ops.runtime.settings
    # A little jitter, so sweeps released together do not race for the lock in step.
    await asyncio.sleep(random.uniform(0, min(0.5, settings.sweep_interval / 10)))
    # Lapses soon if its holder is killed: sweeps are idempotent, so two overlapping after
    # a slow one is harmless, while a dead holder must not stop sweeping for long.
    hold = settings.sweep_interval * 2
    if not await ops.store.try_lock(SWEEP_LOCK, ops.owner, hold):
        log.info("another sweep is running; skipping this one")
        return None
    try:
        return await _sweep(ops, dispatcher)
    finally:
        await ops.store.unlock(SWEEP_LOCK, ops.owner)


async def _sweep(ops: Opsloop, dispatcher: Dispatcher) -> dict[str, int]:
    """One sweep's work.

    - pending human requests past their expiry are resolved as rejected;
    - pending human requests due an escalation step take it;
    - inbox items stored but not finished within the grace period are enqueued again;
    - running threads nobody holds are resumed;
    - deliveries whose sender vanished, or whose task was lost, are enqueued again.
    """
    settings = ops.runtime.settings
    cutoff = utcnow() - timedelta(seconds=settings.sweep_grace)
    expired = await ops.expire_requests()
    escalated = await escalate_requests(ops)
    stale = await ops.store.stale_inbox(cutoff, limit=SWEEP_BATCH)
    for item_id in stale:
        dispatcher.process(item_id)
    orphans = await ops.store.orphaned_threads(cutoff)
    for thread_id in orphans:
        dispatcher.resume(thread_id)
    released = await ops.store.release_stuck_outbound()
    due = await ops.store.threads_with_due_outbound(utcnow())
    for thread_id in {*due, *(await _threads_of(ops, [*expired, *escalated]))}:
        dispatcher.deliver(thread_id)
    return {
        "expired": len(expired),
        "escalated": len(escalated),
        "requeued": len(stale),
        "resumed": len(orphans),
        "released": released,
        "deliveries": len(due),
    }


async def _threads_of(ops: Opsloop, request_ids: list[str]) -> set[str]:
    return {(await ops.store.human_request(r)).thread_id for r in request_ids}


async def fire_schedule(
    ops: Opsloop, dispatcher: Dispatcher, name: str, text: str, agent: str | None, slot: str
) -> int | None:
    """Start the scheduled work ``name`` once for its time ``slot``; the inbox item id."""
    event = TriggerFired(
        idempotency_key=f"schedule:{name}:{slot}",
        conversation=ConversationRef(channel="schedule", room=name, thread_key=slot),
        source=f"schedule:{name}",
        text=text,
        requested_by=Identity(channel="schedule", user_id=name, auth="policy-schedule"),
        agent=agent,
    )
    item = await ops.ingest(event)
    if item is not None:
        dispatcher.process(item.id)
    return item.id if item else None
