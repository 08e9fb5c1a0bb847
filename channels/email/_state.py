"""What the email channel keeps: mailbox cursors, the message index, used approval links.

:class:`MailState` is the interface; :class:`SqlMailState` keeps it in opsloop's database.
The plugin declares :data:`metadata`; opsloop's migrations create its tables
(``create_tables`` is for tests on a database migrated without them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from bot.events import utcnow
from bot.store import Database, UTCDateTime

__all__ = ["Cursor", "MailRecord", "MailState", "SqlMailState", "create_tables", "metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

email_mailboxes = Table(
    "email_mailboxes",
    metadata,
    Column("mailbox", String(255), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
"""Per watched mailbox (``user@host/INBOX``): the UIDVALIDITY and the last UID handled."""

email_messages = Table(
    "email_messages",
    metadata,
    Column("message_id", String(512), primary_key=True),
    Column("room", String(255), nullable=False),
    Column("thread_key", String(512), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("correspondent", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("subject_key", String(200), nullable=False),
    Column("refs", Text, nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_email_messages_thread", "room", "thread_key", "at"),
    Index("ix_email_messages_subject", "room", "subject_key", "correspondent"),
)
"""Every mail in or out: which conversation it belongs to (threading) and its request."""

email_link_uses = Table(
    "email_link_uses",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("request_id", String(40), nullable=False),
    Column("used_by", String(320), nullable=False),
    Column("used_at", UTCDateTime(), nullable=False),
)
"""Approval links already used: a link decides once."""


@dataclass(frozen=True)
class Cursor:
    """Where reading a mailbox stopped."""

    uidvalidity: int
    """The mailbox's UIDVALIDITY the UID belongs to."""
    last_uid: int
    """The last UID handled."""
    updated_at: datetime
    """When it moved last."""


@dataclass(frozen=True)
class MailRecord:
    """One mail of a conversation."""

    message_id: str
    """Its Message-ID, without angle brackets."""
    room: str
    """The bot address it went to or came from."""
    thread_key: str
    """The conversation's root Message-ID."""
    direction: str
    """``in`` or ``out``."""
    correspondent: str
    """The other party's address (sender of ``in``, first recipient of ``out``)."""
    subject: str
    """The subject as written."""
    subject_key: str = ""
    """The subject without ``Re:`` prefixes, for the last-resort match."""
    refs: tuple[str, ...] = ()
    """Its References (then In-Reply-To), oldest first."""
    request_id: str | None = None
    """The human request an outbound mail asks about."""


class MailState(Protocol):
    """The email channel's state (see the module docstring)."""

    async def cursor(self, mailbox: str) -> Cursor | None:
        """Where reading ``mailbox`` stopped, if it ever started."""

    async def save_cursor(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        """Remember that ``last_uid`` (and all before it) was handled."""

    async def remember(self, record: MailRecord) -> None:
        """Index one mail; a Message-ID already known is left as it was."""

    async def thread_of(self, room: str, message_ids: Sequence[str]) -> str | None:
        """The thread key of the newest known mail among ``message_ids``."""

    async def thread_by_subject(
        self, room: str, subject_key: str, correspondent: str, since: datetime
    ) -> str | None:
        """The newest thread with this subject and correspondent since ``since``."""

    async def record(self, message_id: str) -> MailRecord | None:
        """One indexed mail."""

    async def latest_inbound(self, room: str, thread_key: str) -> MailRecord | None:
        """The newest mail a person sent in the conversation (what a reply answers)."""

    async def use_link(self, token_id: str, request_id: str, by: str) -> bool:
        """Mark an approval link used; ``False`` if it was used before."""


def _record(row: object) -> MailRecord:
    refs = str(getattr(row, "refs", ""))
    return MailRecord(
        message_id=row.message_id,  # type: ignore[attr-defined]
        room=row.room,  # type: ignore[attr-defined]
        thread_key=row.thread_key,  # type: ignore[attr-defined]
        direction=row.direction,  # type: ignore[attr-defined]
        correspondent=row.correspondent,  # type: ignore[attr-defined]
        subject=row.subject,  # type: ignore[attr-defined]
        subject_key=row.subject_key,  # type: ignore[attr-defined]
        refs=tuple(refs.split()),
        request_id=row.request_id,  # type: ignore[attr-defined]
    )


class SqlMailState:
    """:class:`MailState` in opsloop's database (SQLite or PostgreSQL)."""

    def __init__(self, database: Database) -> None:
        """Use ``database``."""
        self.db = database

    async def cursor(self, mailbox: str) -> Cursor | None:
        """See :class:`MailState`."""
        t = email_mailboxes.c
        async with self.db.transaction(write=False) as conn:
            row = (await conn.execute(select(email_mailboxes).where(t.mailbox == mailbox))).first()
        return Cursor(row.uidvalidity, row.last_uid, row.updated_at) if row else None

    async def save_cursor(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        """See :class:`MailState`."""
        values = {"uidvalidity": uidvalidity, "last_uid": last_uid, "updated_at": utcnow()}
        async with self.db.transaction() as conn:
            moved = await conn.execute(
                update(email_mailboxes).where(email_mailboxes.c.mailbox == mailbox).values(values)
            )
            if moved.rowcount == 0:
                await conn.execute(insert(email_mailboxes).values(mailbox=mailbox, **values))

    async def remember(self, record: MailRecord) -> None:
        """See :class:`MailState`."""
        values = {
            "message_id": record.message_id[:512],
            "room": record.room,
            "thread_key": record.thread_key[:512],
            "direction": record.direction,
            "correspondent": record.correspondent[:320],
            "subject": record.subject[:300],
            "subject_key": record.subject_key[:200],
            "refs": " ".join(record.refs[-20:]),
            "request_id": record.request_id,
            "at": utcnow(),
        }
        try:
            async with self.db.transaction() as conn:
                await conn.execute(insert(email_messages).values(values))
        except IntegrityError:
            pass  # known already: the first record of a Message-ID wins

    async def thread_of(self, room: str, message_ids: Sequence[str]) -> str | None:
        """See :class:`MailState`."""
        if not message_ids:
            return None
        t = email_messages.c
        query = (
            select(t.thread_key)
            .where(t.room == room, t.message_id.in_([m[:512] for m in message_ids]))
            .order_by(t.at.desc())
            .limit(1)
        )
        async with self.db.transaction(write=False) as conn:
            return (await conn.execute(query)).scalar()

    async def thread_by_subject(
        self, room: str, subject_key: str, correspondent: str, since: datetime
    ) -> str | None:
        """See :class:`MailState`."""
        t = email_messages.c
        query = (
            select(t.thread_key)
            .where(
                t.room == room,
                t.subject_key == subject_key[:200],
                t.correspondent == correspondent,
                t.at >= since,
            )
            .order_by(t.at.desc())
            .limit(1)
        )
        async with self.db.transaction(write=False) as conn:
            return (await conn.execute(query)).scalar()

    async def record(self, message_id: str) -> MailRecord | None:
        """See :class:`MailState`."""
        query = select(email_messages).where(email_messages.c.message_id == message_id[:512])
        async with self.db.transaction(write=False) as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row else None

    async def latest_inbound(self, room: str, thread_key: str) -> MailRecord | None:
        """See :class:`MailState`."""
        t = email_messages.c
        query = (
            select(email_messages)
            .where(t.room == room, t.thread_key == thread_key, t.direction == "in")
            .order_by(t.at.desc())
            .limit(1)
        )
        async with self.db.transaction(write=False) as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row else None

    async def use_link(self, token_id: str, request_id: str, by: str) -> bool:
        """See :class:`MailState`."""
        values = {
            "token_id": token_id,
            "request_id": request_id,
            "used_by": by,
            "used_at": utcnow(),
        }
        try:
            async with self.db.transaction() as conn:
                await conn.execute(insert(email_link_uses).values(values))
        except IntegrityError:
            return False
        return True


async def create_tables(database: Database) -> None:
    """Create the tables where they are missing (until a migration creates them)."""
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all, checkfirst=True)
