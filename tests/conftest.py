"""Shared fixtures: real databases (SQLite and PostgreSQL), the app, fake models.

Real-service tests skip with a stated reason when a service is not running locally, and
fail instead under ``CI=true``, where CI has started every service.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from agents import registry as default_registry
from bot.app import Opsloop
from bot.config import Settings, load_settings
from bot.inventory import INVENTORY, SqlInventory
from bot.model import Model
from bot.policy import Policy, load_policy
from bot.prompts import PromptLibrary
from bot.runtime import Runtime
from bot.store import Database, Store
from bot.store._tables import Base

pytest_plugins = ["tests.model_guard"]

IN_CI = os.environ.get("CI") == "true"
PG_URL = os.environ.get("OPSLOOP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def need_service(name: str, reason: str) -> None:
    """Skip (locally) or fail (in CI) a test whose real service is missing."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: real-service tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    name = f"opsloop_test_{os.getpid()}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        need_service("PostgreSQL", str(exc).strip().splitlines()[0])
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    async_url = url.replace("postgresql://", "postgresql+psycopg://", 1)

    async def migrate() -> None:
        database = Database(async_url)
        await database.migrate()
        await database.dispose()

    # Requested from inside async fixtures, so run the migration on a loop of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    yield async_url
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: SQLite in a temp dir, then PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await db.migrate()
    else:
        db = Database(request.getfixturevalue("postgres_url"))
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        async with db.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield db
    await db.dispose()


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database, for tests that are not about the database."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    await db.migrate()
    yield db
    await db.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a temp home, from a clean environment."""
    return load_settings(OPSLOOP_HOME=str(tmp_path))


@pytest.fixture
def policy() -> Policy:
    """The bundled default policy."""
    return load_policy()


MakeOps = Callable[..., Any]


@pytest.fixture
def make_ops(settings: Settings, policy: Policy) -> Iterator[MakeOps]:
    """Build an :class:`Opsloop` on a database with a given model (and optional policy)."""
    built: list[Opsloop] = []

    async def make(
        database: Database,
        model: Model,
        *,
        policy_: Policy | None = None,
        settings_: Settings | None = None,
        clock: Callable[[], Any] | None = None,
    ) -> Opsloop:
        inventory = SqlInventory(database)
        await inventory.prepare()
        extra = {"clock": clock} if clock else {}
        runtime = Runtime(
            settings=settings_ or settings,
            policy=policy_ or policy,
            prompts=PromptLibrary(),
            agents=default_registry,
            models={"default": model},
            resources={INVENTORY: inventory},
            **extra,
        )
        ops = Opsloop(Store(database), runtime)
        built.append(ops)
        return ops

    yield make
    for ops in built:
        for model in ops.runtime.models.values():
            assert_consumed = getattr(model, "assert_consumed", None)
            if assert_consumed is not None:
                assert_consumed()
