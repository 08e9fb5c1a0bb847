"""Engine construction, SQLite tuning and schema migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["Database"]

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class Database:
    """One database: an async engine plus a session factory.

    On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (one writer at a time,
    waiting up to ``busy_timeout`` rather than failing), in WAL mode so readers never block.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        """Connect lazily to ``url`` (an async SQLAlchemy URL)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            kwargs |= {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success and rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

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


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
