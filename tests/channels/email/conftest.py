from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text

from bot.model.offline import OfflineModel
from bot.policy import Policy
from bot.store import Database
from channels.email._state import create_tables, metadata
from tests.channels.email.harness import Mail, email_settings
from tests.channels.email.servers import Dovecot, dovecot_or_reason, start_smtp
from tests.conftest import need_service

ONCALL = "oncall@example.com"
DEV = "dev@example.com"


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[Dovecot | str]:
    yield from dovecot_or_reason(idle=True)


@pytest.fixture(scope="session")
def dovecot_without_idle_server() -> Iterator[Dovecot | str]:
    yield from dovecot_or_reason(idle=False)


@pytest.fixture
def dovecot(dovecot_server: Dovecot | str) -> Dovecot:
    if isinstance(dovecot_server, str):
        need_service("Dovecot", dovecot_server)
    assert isinstance(dovecot_server, Dovecot)
    return dovecot_server


@pytest.fixture
async def mail_database(database: Database) -> Database:
    """The test database with the email channel's tables, empty."""
    await create_tables(database)
    if not database.is_sqlite:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names}"))
    return database


@pytest.fixture
def email_policy(policy: Policy) -> Policy:
    roles = dict(policy.roles)
    roles["oncall"] = (*roles["oncall"], f"email:{ONCALL}")
    return policy.model_copy(update={"roles": roles})


async def _mail(
    dovecot: Dovecot,
    database: Database,
    make_ops,
    policy: Policy,
    smtp_tls: ssl.SSLContext | None = None,
    client_tls: ssl.SSLContext | None = None,
    model=None,
    **extra,
):
    mailbox = f"t{uuid.uuid4().hex[:10]}"
    await dovecot.create(mailbox)
    smtp = await start_smtp(smtp_tls)
    ops = await make_ops(database, model or OfflineModel(), policy_=policy)
    settings = email_settings(dovecot, smtp, mailbox, **extra)
    return Mail(
        dovecot=dovecot,
        smtp=smtp,
        mailbox=mailbox,
        ops=ops,
        settings=settings,
        client_tls=client_tls,
    )


@pytest.fixture
async def mail(dovecot, mail_database, make_ops, email_policy) -> AsyncIterator[Mail]:
    """The email channel on a fresh mailbox, its watcher running."""
    harness = await _mail(dovecot, mail_database, make_ops, email_policy)
    await harness.start()
    yield harness
    await harness.stop()
    await harness.smtp.close()


@pytest.fixture
async def make_mail(dovecot, mail_database, make_ops, email_policy):
    """Build a harness with extra settings (not started)."""
    made: list[Mail] = []

    async def make(server: Dovecot | None = None, **extra) -> Mail:
        server = server or dovecot
        harness = await _mail(server, mail_database, make_ops, email_policy, **extra)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.stop()
        await harness.smtp.close()
