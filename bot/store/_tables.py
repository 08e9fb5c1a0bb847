"""The SQL schema. Alembic migrations in ``bot/migrations`` create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "DeployRow",
    "HumanRequestRow",
    "InboxRow",
    "OutboxRow",
    "RequestMessageRow",
    "ServiceRow",
    "ThreadEventRow",
    "ThreadRow",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store in UTC; refuse naive datetimes, which would be ambiguous."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (so migrations are portable)."""

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class ThreadRow(Base):
    """A conversation: the index over its events, never a second source of truth."""

    __tablename__ = "threads"
    __table_args__ = (
        UniqueConstraint("channel", "tenant", "room", "thread_key", name="uq_threads_conversation"),
        Index("ix_threads_updated", "updated_at", "id"),
        Index("ix_threads_status_updated", "status", "updated_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str] = mapped_column(String(255))
    room: Mapped[str] = mapped_column(String(255))
    thread_key: Mapped[str] = mapped_column(String(512))
    agent: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class ThreadEventRow(Base):
    """One entry of a thread's append-only log, ordered by a per-thread sequence."""

    __tablename__ = "thread_events"

    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]


class InboxRow(Base):
    """An inbound event as received: deduplicated on its idempotency key, never lost."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_status_received", "status", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    thread_id: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class OutboxRow(Base):
    """A message to deliver, committed with the events that produced it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class HumanRequestRow(Base):
    """A pending or decided human request: the exact call to run, who may answer, until when."""

    __tablename__ = "human_requests"
    __table_args__ = (
        Index("ix_human_requests_thread_status", "thread_id", "status", "created_at", "id"),
        Index("ix_human_requests_status_created", "status", "created_at", "id"),
        Index("ix_human_requests_status_expiry", "status", "expires_at"),
        Index("ix_human_requests_status_escalation", "status", "next_escalation_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id"))
    type: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str | None] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any] | None]
    call_id: Mapped[str | None] = mapped_column(String(40))
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[list[Any]]
    approvers: Mapped[list[Any]]
    requested_by: Mapped[str | None] = mapped_column(String(320))
    requesters: Mapped[list[Any] | None]
    change_key: Mapped[str | None] = mapped_column(String(255))
    four_eyes: Mapped[bool]
    mode: Mapped[str] = mapped_column(String(8), server_default="any")
    min_approvals: Mapped[int] = mapped_column(Integer, server_default="1")
    approvals: Mapped[list[Any] | None]
    """Approvals given so far while more were needed (``Approval`` as JSON), oldest first."""
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)
    message_ref: Mapped[dict[str, Any] | None]
    """Where the channel posted the request (to edit it after the decision)."""
    notify: Mapped[list[Any] | None]
    """Places the request is also posted besides its thread."""
    escalate_after: Mapped[str | None] = mapped_column(String(32))
    """The escalation interval, as the rule gave it (``15m``)."""
    escalate_to: Mapped[list[Any] | None]
    """The escalation chain."""
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    """Escalation steps taken so far."""
    escalated_to: Mapped[list[Any] | None]
    """Approver entries the steps taken added."""
    next_escalation_at: Mapped[datetime | None]
    """When the next step is due; ``None`` when there is none before expiry, or decided."""


class RequestMessageRow(Base):
    """One more place a channel posted a request (a notify room, an escalation DM)."""

    __tablename__ = "request_messages"
    __table_args__ = (UniqueConstraint("request_id", "place", name="uq_request_messages_place"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("human_requests.id"), index=True)
    place: Mapped[str] = mapped_column(String(320))
    """The target it was posted for (``slack:#deploys``, ``slack:U123``)."""
    ref: Mapped[dict[str, Any]]
    """The channel's own reference to the message, to edit it."""
    created_at: Mapped[datetime]


class LockRow(Base):
    """A named lock across processes (one sweep at a time), lapsing if its holder dies."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime]


class ToolRunRow(Base):
    """A call of a tool that cannot tell a repeat, started once under its idempotency key."""

    __tablename__ = "tool_runs"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(40))
    tool: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]


class ServiceRow(Base):
    """Demo inventory: one service in one environment."""

    __tablename__ = "inventory_services"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    environment: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    health: Mapped[str] = mapped_column(String(16))
    replicas: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class DeployRow(Base):
    """Demo inventory: a deploy, restart or roll-back, at most once per idempotency key."""

    __tablename__ = "inventory_deploys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    service: Mapped[str] = mapped_column(String(64), index=True)
    environment: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(32))
    previous_version: Mapped[str | None] = mapped_column(String(32))
    requested_by: Mapped[str | None] = mapped_column(String(320))
    approved_by: Mapped[str | None] = mapped_column(String(320))
    at: Mapped[datetime]
