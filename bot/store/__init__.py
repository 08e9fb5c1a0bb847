"""Persistence: SQLite by default, PostgreSQL in production; one schema, Alembic migrations."""

from bot.store._database import Database
from bot.store._pages import MAX_PAGE, Page
from bot.store._records import Approval, HumanRequest, InboxItem, OutboxItem, Thread, ThreadSummary
from bot.store._sessions import SESSION_TTL, ConsoleSession, ConsoleSessions
from bot.store._store import Store
from bot.store._tables import UTCDateTime
from bot.store._threads import thread_page
from bot.store._tokens import (
    DEFAULT_SCOPES,
    DEFAULT_TOKEN_TTL,
    SCOPES,
    ApiToken,
    ApiTokens,
    Scope,
)

__all__ = [
    "DEFAULT_SCOPES",
    "DEFAULT_TOKEN_TTL",
    "MAX_PAGE",
    "SCOPES",
    "SESSION_TTL",
    "ApiToken",
    "ApiTokens",
    "Approval",
    "ConsoleSession",
    "ConsoleSessions",
    "Database",
    "HumanRequest",
    "InboxItem",
    "OutboxItem",
    "Page",
    "Scope",
    "Store",
    "Thread",
    "ThreadSummary",
    "UTCDateTime",
    "thread_page",
]
