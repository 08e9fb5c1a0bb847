"""The watcher against a real Dovecot: restarts, loops, bad mail, polling, reconnects."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from bot.store._tables import InboxRow
from channels.email._state import email_mailboxes
from tests.channels.email.conftest import DEV
from tests.channels.email.harness import BOT, human_mail
from tests.channels.email.servers import Dovecot
from tests.conftest import need_service


async def inbox(mail) -> list[InboxRow]:
    async with mail.ops.store.db.session() as session:
        return list((await session.scalars(select(InboxRow).order_by(InboxRow.id))).all())


async def test_a_restarted_watcher_reprocesses_nothing_and_misses_nothing(make_mail):
    mail = await make_mail()
    await mail.start()
    before, _ = human_mail(DEV, "one", "what is running in production?")
    first_uid = await mail.deliver(before)
    await mail.stop()

    while_down, _ = human_mail(DEV, "two", "what is running in staging?")
    down_uid = await mail.dovecot.append(while_down, mail.mailbox)
    watcher = await mail.start()
    assert watcher.last_uid == down_uid  # caught up on start
    after, _ = human_mail(DEV, "three", "recent deploys")
    await mail.deliver(after)

    items = await inbox(mail)
    assert [i.payload["text"].split("\n")[0] for i in items] == ["one", "two", "three"]
    assert len(mail.dispatcher.of("process")) == 3
    async with mail.ops.store.db.transaction(write=False) as conn:
        [cursor] = (await conn.execute(select(email_mailboxes))).all()
    assert cursor.last_uid > first_uid and cursor.uidvalidity > 0


async def test_mail_that_was_there_before_the_first_start_is_history(make_mail):
    mail = await make_mail()
    old, _ = human_mail(DEV, "old", "what is running in production?")
    await mail.dovecot.append(old, mail.mailbox)
    await mail.start()
    assert await inbox(mail) == []


AUTOMATIC = {
    "auto-submitted": {"Auto-Submitted": "auto-replied"},
    "precedence-bulk": {"Precedence": "bulk"},
    "bounce": {"Return-Path": "<>"},
}


@pytest.mark.parametrize("headers", AUTOMATIC.values(), ids=AUTOMATIC.keys())
async def test_an_auto_reply_or_bounce_starts_nothing(mail, headers):
    raw, _ = human_mail(DEV, "Out of office", "I am away until Monday.", headers=headers)
    await mail.deliver(raw)
    await mail.work()
    [item] = await inbox(mail)
    assert item.status == "failed" and "automatic mail ignored" in item.error
    assert mail.dispatcher.calls == []
    assert await mail.ops.store.list_threads() == []
    assert mail.sent == []


async def test_mail_from_the_bot_itself_is_never_answered(mail):
    raw, _ = human_mail(BOT, "loop?", "what is running in production?")
    await mail.deliver(raw)
    [item] = await inbox(mail)
    assert item.status == "failed" and "a loop" in item.error
    assert mail.dispatcher.calls == []


def broken_mime() -> bytes:
    return (
        b"From: dev@example.com\r\nTo: opsloop@example.com\r\nSubject: broken\r\n"
        b"Message-ID: <broken-1@example.com>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-used"\r\n\r\n'
        b"no parts here at all\r\n"
    )


def charset(declared: str, payload: bytes) -> bytes:
    return (
        b"From: dev@example.com\r\nTo: opsloop@example.com\r\nSubject: charset\r\n"
        b"Message-ID: <cs-" + declared.encode() + b"@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=" + declared.encode() + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + payload + b"\r\n"
    )


def huge_attachment() -> bytes:
    message = EmailMessage()
    message["From"] = DEV
    message["To"] = BOT
    message["Subject"] = "logs"
    message["Message-ID"] = "<huge-1@example.com>"
    message.set_content("see the attached logs")
    message.add_attachment(b"\0" * 300_000, maintype="application", subtype="gzip", filename="x.gz")
    return bytes(message)


async def test_malformed_mail_becomes_a_failed_inbox_item_and_the_watcher_goes_on(make_mail):
    mail = await make_mail(EMAIL_MAX_BYTES=200_000)
    await mail.start()
    for raw in (
        broken_mime(),
        charset("x-no-such-charset", b"hello"),
        charset("utf-8", b"caf\xe9 \xff\xfe"),
        huge_attachment(),
    ):
        await mail.deliver(raw)
    good, _ = human_mail(DEV, "fine", "what is running in production?")
    await mail.deliver(good)
    await mail.work()

    items = await inbox(mail)
    assert [i.status for i in items] == ["failed"] * 4 + ["done"]
    errors = [i.error for i in items[:4]]
    assert "broken MIME structure" in errors[0]
    assert "unknown charset 'x-no-such-charset'" in errors[1]
    assert "not valid utf-8" in errors[2]
    assert "the limit is 200,000" in errors[3]
    assert [i.payload["sender"]["user_id"] for i in items[:4]] == [DEV] * 4
    assert len(await mail.sent_to(DEV)) == 1  # the good one is answered


async def test_an_unauthenticated_sender_cannot_start_a_thread(mail):
    raw, _ = human_mail(DEV, "restart", "restart checkout in staging", auth="forged")
    await mail.deliver(raw)
    [item] = await inbox(mail)
    assert item.status == "failed"
    assert "is not authenticated: no Authentication-Results from mx.example.com" in item.error
    assert mail.dispatcher.calls == [] and mail.sent == []


@pytest.fixture
def dovecot_without_idle(dovecot_without_idle_server: Dovecot | str) -> Dovecot:
    if isinstance(dovecot_without_idle_server, str):
        need_service("Dovecot", dovecot_without_idle_server)
    assert isinstance(dovecot_without_idle_server, Dovecot)
    return dovecot_without_idle_server


async def test_a_server_without_idle_is_polled(make_mail, dovecot_without_idle):
    mail = await make_mail(dovecot_without_idle)
    watcher = await mail.start()
    assert watcher.idle is False
    raw, _ = human_mail(DEV, "poll", "what is running in production?")
    await mail.deliver(raw)
    await mail.work()
    assert len(await mail.sent_to(DEV)) == 1


async def test_a_lost_connection_is_reopened(mail):
    watcher = mail.watcher
    assert watcher.mailbox is not None and watcher.idle is True
    watcher.mailbox.client.protocol.transport.abort()
    async with asyncio.timeout(20):
        await watcher.wait_for(lambda w: w.connections >= 2 and w.passes >= 2)
    raw, _ = human_mail(DEV, "again", "what is running in production?")
    await mail.deliver(raw)
    assert len(await inbox(mail)) == 1


async def test_idle_brings_new_mail_without_waiting_for_a_poll(make_mail):
    mail = await make_mail(IMAP_POLL_SECONDS=300)
    watcher = await mail.start()
    assert watcher.idle is True
    raw, _ = human_mail(DEV, "pushed", "what is running in production?")
    async with asyncio.timeout(10):  # far below the 300 s renewal: the server pushed it
        await mail.deliver(raw)
    assert len(await inbox(mail)) == 1


async def test_a_rebuilt_mailbox_is_read_again_without_repeating_mail(make_mail):
    mail = await make_mail()
    await mail.start()
    old, _ = human_mail(DEV, "one", "what is running in production?")
    await mail.deliver(old)
    await mail.stop()
    async with mail.ops.store.db.transaction(write=False) as conn:
        [before] = (await conn.execute(select(email_mailboxes))).all()

    # The mailbox is rebuilt (restored from a backup, moved server): new UIDVALIDITY.
    await mail.dovecot.delete(mail.mailbox)
    await mail.dovecot.create(mail.mailbox)
    await mail.dovecot.append(old, mail.mailbox)
    new, _ = human_mail(DEV, "two", "what is running in staging?")
    await mail.dovecot.append(new, mail.mailbox)
    await mail.start()

    assert [i.payload["text"].split("\n")[0] for i in await inbox(mail)] == ["one", "two"]
    assert len(mail.dispatcher.of("process")) == 2
    async with mail.ops.store.db.transaction(write=False) as conn:
        [after] = (await conn.execute(select(email_mailboxes))).all()
    assert after.uidvalidity != before.uidvalidity and after.last_uid == 2


async def test_a_mail_too_long_to_read_is_refused_with_the_reason(mail):
    raw, _ = human_mail(DEV, "novel", "word " * 5_000)
    await mail.deliver(raw)
    [item] = await inbox(mail)
    assert item.status == "failed" and "the limit is 16,000" in item.error
    assert mail.dispatcher.calls == []


async def test_a_deployment_may_let_unauthenticated_mail_start_threads(make_mail):
    mail = await make_mail(EMAIL_ACCEPT_UNAUTHENTICATED="true")
    await mail.start()
    raw, _ = human_mail(DEV, "hi", "what is running in production?", auth=None)
    await mail.deliver(raw)
    await mail.work()
    [item] = await inbox(mail)
    assert item.status == "done"
    assert item.payload["sender"]["email"] is None  # not vouched for: never decides anything
    assert len(await mail.sent_to(DEV)) == 1
