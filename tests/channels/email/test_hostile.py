"""Hostile mail against a real Dovecot: MIME nested past any reason is refused, never fatal."""

from __future__ import annotations

from sqlalchemy import select

from bot.store._tables import InboxRow
from channels.email._parse import MAX_MIME_DEPTH
from tests.channels.email.conftest import DEV
from tests.channels.email.harness import AUTHSERV, BOT, human_mail


async def inbox(mail) -> list[InboxRow]:
    async with mail.ops.store.db.session() as session:
        return list((await session.scalars(select(InboxRow).order_by(InboxRow.id))).all())


def nested_mime(depth: int, message_id: str) -> bytes:
    """A mail whose multipart parts nest ``depth`` deep, a text part at the bottom."""
    head = (
        f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=example.com\r\n"
        f"From: {DEV}\r\nTo: {BOT}\r\nSubject: deep\r\nMessage-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    opening = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    closing = "".join(f"\r\n--b{i}--" for i in reversed(range(depth)))
    return (head + opening + "Content-Type: text/plain\r\n\r\nhello" + closing + "\r\n").encode()


async def test_mime_nested_a_thousand_deep_is_refused_and_the_watcher_goes_on(mail):
    """Regression: a 1,000-level nested mail made the parser raise ``RecursionError``."""
    await mail.deliver(nested_mime(1_000, "deep-1@example.com"))
    await mail.deliver(nested_mime(MAX_MIME_DEPTH + 1, "deep-2@example.com"))
    good, _ = human_mail(DEV, "fine", "what is running in production?")
    await mail.deliver(good)
    await mail.work()

    items = await inbox(mail)
    assert [i.status for i in items] == ["failed", "failed", "done"]
    for item in items[:2]:
        assert f"MIME parts nested deeper than {MAX_MIME_DEPTH}" in item.error
        assert item.payload["sender"]["user_id"] == DEV
    assert [i.idempotency_key for i in items[:2]] == [
        "email:deep-1@example.com",
        "email:deep-2@example.com",
    ]
    assert len(await mail.sent_to(DEV)) == 1  # the good one is answered


async def test_mime_nested_within_the_bound_is_read(mail):
    await mail.deliver(nested_mime(MAX_MIME_DEPTH, "ok-1@example.com"))
    await mail.work()
    [item] = await inbox(mail)
    assert item.status == "done", item.error
