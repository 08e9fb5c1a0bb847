"""Persistence: SQLite by default, PostgreSQL in production; one schema, Alembic migrations."""

from bot.store._database import Database
from bot.store._records import HumanRequest, InboxItem, OutboxItem, Thread, ThreadSummary
from bot.store._sessions import SESSION_TTL, ConsoleSession, ConsoleSessions
from bot.store._store import Store
from bot.store._tables import UTCDateTime

__all__ = [
    "SESSION_TTL",
    "ConsoleSession",
    "ConsoleSessions",
    "Database",
    "HumanRequest",
    "InboxItem",
    "OutboxItem",
    "Store",
    "Thread",
    "ThreadSummary",
    "UTCDateTime",
]
