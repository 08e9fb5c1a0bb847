"""Engine construction, SQLite tuning and schema migrations."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from bot.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["Database"]

T = TypeVar("T")

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_PG_POOL: dict[str, Any] = {"pool_size": 5, "max_overflow": 5, "pool_recycle": 1800}


class Database:
    """One database: an async engine, a session factory, and :meth:`run` for the hot path.

    On SQLite a writing transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time,
    waiting up to ``busy_timeout`` rather than failing), in WAL mode so readers never block.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        """Connect lazily to ``url`` (an async SQLAlchemy URL)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            # No ping before each transaction (a round trip each): a connection the server
            # dropped fails its transaction, which :meth:`run` tries again on a new one.
            kwargs |= _PG_POOL
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._sqlite: Engine | None = None
        if self.is_sqlite:
            _tune_sqlite(self.engine.sync_engine)
            # The hot path's own engines, where the async driver would make a trip to its
            # thread per statement, fetch and commit. A transaction runs whole on the event
            # loop when the write lock is free at once (it is short: a few statements on a
            # local file, no fsync in WAL mode); when another writer holds it, whole in a
            # worker thread that waits for it.
            sync_url = url.replace("+aiosqlite", "", 1)
            self._sqlite = create_engine(
                sync_url, connect_args={"check_same_thread": False}, echo=echo
            )
            _tune_sqlite(self._sqlite)
            self._sqlite_now = create_engine(
                sync_url, connect_args={"check_same_thread": False}, echo=echo
            )
            _tune_sqlite(self._sqlite_now, busy_ms=0)
        self._blocking: Engine | None = None
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def use_blocking_driver(self) -> None:
        """Run :meth:`run`'s transactions on PostgreSQL with the blocking driver, in place.

        For a process that does one thing at a time (a worker runs one task at a time on its
        own event loop): a transaction then holds the loop while it waits for the server,
        and saves the async driver's overhead on every round trip. Never in a process that
        serves concurrent requests. On SQLite, :meth:`run` works this way already.
        """
        if self._sqlite is None and self._blocking is None:
            self._blocking = create_engine(self.url, **_PG_POOL)

    @property
    def sync_engines(self) -> list[Engine]:
        """Every engine under this database (for instrumentation: events, metrics)."""
        engines = [self.engine.sync_engine]
        if self._sqlite is not None:
            engines += [self._sqlite, self._sqlite_now]
        if self._blocking is not None:
            engines.append(self._blocking)
        return engines

    async def run(self, work: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``work(connection)`` in one transaction and return what it returns.

        ``work`` is plain synchronous SQLAlchemy Core code, one function for both
        databases, with no effect outside the transaction (it may run twice): on
        PostgreSQL it runs on the async driver in one greenlet (or on the blocking one: see
        :meth:`use_blocking_driver`), and a transaction that fails because the connection
        was lost is tried once more on a new one; on SQLite it runs whole on the event loop
        if the database is free at once, else whole in a worker thread that waits for it.
        """
        if self._sqlite is not None:
            try:
                return self._run_whole(self._sqlite_now, work, write)
            except OperationalError as exc:
                if getattr(exc.orig, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
                    raise
            # Rolled back whole (nothing was committed): wait for the lock off the loop.
            return await asyncio.to_thread(self._run_whole, self._sqlite, work, write)
        # The whole transaction in one greenlet (as an AsyncSession runs): checkout, begin,
        # work, commit and check-in, switching to the event loop only to wait for the server.
        for last in (False, True):
            try:
                if self._blocking is not None:
                    return self._run_whole(self._blocking, work, write)
                return await greenlet_spawn(self._run_whole, self.engine.sync_engine, work, write)
            except DBAPIError as exc:
                if last or not exc.connection_invalidated:
                    raise
                # The server dropped the connection (restarted, or closed it idle): the pool
                # has thrown away every connection older than that one, so this try gets a
                # new one. A commit lost on the way is safe to try again: appends are fenced.
                log.warning("database connection lost (%s); trying the transaction again", exc.orig)
        raise AssertionError("unreachable")

    @staticmethod
    def _run_whole(engine: Engine, work: Callable[[Connection], T], write: bool) -> T:
        with engine.connect() as connection:
            if not write:
                connection = connection.execution_options(opsloop_read_only=True)
            with connection.begin():
                return work(connection)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """A Core connection in one transaction: the hot path, without ORM bookkeeping.

        A read transaction (``write=False``) does not take SQLite's write lock.
        """
        async with self.engine.connect() as connection:
            if not write:
                await connection.execution_options(opsloop_read_only=True)
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success and rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
        if self._blocking is not None:
            self._blocking.dispose()
        if self._sqlite is not None:
            self._sqlite.dispose()
            self._sqlite_now.dispose()

    # ------------------------------------------------------------ migrations

    # Alembic is imported where it is used: it costs a second of start-up for every command.

    def _alembic_config(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["database"] = self
        return config

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision``."""
        from alembic import command

        config = self._alembic_config()

        def upgrade(connection: Connection) -> None:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        async with self.engine.begin() as connection:
            await connection.run_sync(upgrade)

    async def current_revision(self) -> str | None:
        """The schema revision the database is at, or ``None`` when it has none."""
        from alembic.runtime.migration import MigrationContext

        def read(connection: Connection) -> str | None:
            return MigrationContext.configure(connection).get_current_revision()

        async with self.engine.connect() as connection:
            return await connection.run_sync(read)

    def head_revision(self) -> str | None:
        """The newest revision this code knows."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    async def ensure_schema(self, *, auto_migrate: bool) -> None:
        """Check the schema is current; migrate when allowed, else say what to run.

        Raises:
            ConfigError: the schema is behind and ``auto_migrate`` is off.
        """
        try:
            current = await self.current_revision()
        except Exception as exc:
            raise StoreError(f"cannot reach the database: {type(exc).__name__}: {exc}") from exc
        if current == self.head_revision():
            return
        if not auto_migrate:
            raise ConfigError(
                f"the database schema is at {current or 'nothing'}, this opsloop needs "
                f"{self.head_revision()}: run `opsloop migrate` first"
            )
        await self.migrate()


def _tune_sqlite(engine: Engine, *, busy_ms: int = 30000) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers queue for the lock up front (no deadlock on lock upgrade); readers don't.
        read_only = connection.get_execution_options().get("opsloop_read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
