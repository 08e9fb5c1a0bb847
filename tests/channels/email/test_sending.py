"""Outbound over a real SMTP server: a refusal is retried and nothing is sent twice."""

from __future__ import annotations

from datetime import timedelta

from bot.events import utcnow
from bot.plugins import DeliveryContext
from tests.channels.email.conftest import DEV
from tests.channels.email.harness import human_mail
from workers import jobs


async def test_a_temporary_smtp_refusal_is_retried_later(mail):
    mail.smtp.recorder.refuse = "451 4.3.0 try again later"
    raw, _ = human_mail(DEV, "hi", "what is running in production?")
    await mail.deliver(raw)
    await mail.work()
    [pending] = await mail.ops.store.pending_outbound(due_only=False)
    assert pending.attempts == 1 and mail.sent == []

    mail.smtp.recorder.refuse = None
    due = utcnow() - timedelta(seconds=1)
    await mail.ops.store.mark_outbound(pending.id, sent=False, retry_at=due)
    assert await jobs.deliver_thread(mail.ops, {"email": mail.sender}, pending.thread_id) is None
    assert len(await mail.sent_to(DEV)) == 1
    # a redelivery of the same outbox item (a worker died after sending) sends nothing again
    await mail.sender(pending, _context(mail))
    assert len(mail.sent) == 1


async def test_an_unreachable_smtp_server_is_retried_later(make_mail):
    mail = await make_mail(SMTP_PORT=1)
    await mail.start()
    raw, _ = human_mail(DEV, "hi", "what is running in production?")
    await mail.deliver(raw)
    await mail.work()
    [pending] = await mail.ops.store.pending_outbound(due_only=False)
    assert pending.attempts == 1 and pending.next_attempt_at > utcnow()


def _context(mail):
    return DeliveryContext(store=mail.ops.store, settings=mail.ops.runtime.settings)
