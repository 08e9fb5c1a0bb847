"""Console login codes and sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.events import Identity, utcnow
from bot.store import ConsoleSessions, Database
from bot.store._sessions import ConsoleSessionRow, LoginCodeRow
from bot.store._tables import UTCDateTime


class _OldBase(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


class OldSession(_OldBase):
    """A console session row as revision 0005 had it."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]


async def test_a_login_code_is_spent_exactly_once_even_by_racing_requests(
    database: Database,
) -> None:
    sessions = ConsoleSessions(database)
    code = await sessions.new_login_code("web:dev-1")
    spent = await asyncio.gather(*(sessions.use_login_code(code) for _ in range(8)))
    assert spent.count("web:dev-1") == 1 and spent.count(None) == 7
    assert await sessions.use_login_code("made-up") is None
    stale = await sessions.new_login_code("web:dev-1", ttl=timedelta(0))
    assert await sessions.use_login_code(stale) is None


async def test_a_login_code_from_before_codes_named_anyone_signs_nobody_in(
    database: Database,
) -> None:
    sessions = ConsoleSessions(database)
    code = await sessions.new_login_code("web:dev-1")
    async with database.transaction() as connection:
        await connection.execute(update(LoginCodeRow).values(principal=None))
    assert await sessions.use_login_code(code) is None


async def test_a_session_keeps_who_signed_in_and_how(database: Database) -> None:
    sessions = ConsoleSessions(database)
    ann = Identity(
        channel="oidc",
        user_id="ann@example.com",
        display_name="Ann",
        groups=("sre-oncall", "staff"),
        auth="oidc",
    )
    _, secret = await sessions.start(method="oidc", identity=ann)
    checked = await sessions.check(secret)
    assert checked is not None and checked.identity == ann
    assert checked.principal == "oidc:ann@example.com" and checked.auth == "oidc"
    [listed] = await sessions.list_sessions()
    assert listed.identity == ann

    nobody, _ = await sessions.start(method="login-code")
    assert nobody.identity is None


async def test_acting_as_changes_who_and_records_how(database: Database) -> None:
    sessions = ConsoleSessions(database)
    dev = Identity(channel="web", user_id="dev-1", display_name="dev-1", auth="login-link")
    session, secret = await sessions.start(method="login-link", identity=dev)
    oncall = Identity(channel="web", user_id="oncall-1", display_name="oncall-1")
    switched = await sessions.act_as(session.id, oncall, "dev")
    assert switched.identity == oncall.model_copy(update={"auth": "dev"})
    checked = await sessions.check(secret)
    assert checked is not None and checked.principal == "web:oncall-1" and checked.auth == "dev"
    assert checked.method == "login-link"  # how the browser signed in stays


async def test_a_person_lists_and_revokes_only_their_own_sessions(database: Database) -> None:
    sessions = ConsoleSessions(database)
    dev = Identity(channel="web", user_id="dev-1", auth="login-link")
    oncall = Identity(channel="web", user_id="oncall-1", auth="login-link")
    mine, _ = await sessions.start(method="login-link", identity=dev)
    theirs, _ = await sessions.start(method="login-link", identity=oncall)
    assert [s.id for s in await sessions.list_sessions(principal="web:dev-1")] == [mine.id]
    assert not await sessions.revoke(theirs.id, principal="web:dev-1")
    assert [s.id for s in await sessions.list_sessions(principal="web:oncall-1")] == [theirs.id]
    assert await sessions.revoke(mine.id, principal="web:dev-1")
    assert await sessions.revoke(theirs.id)  # no owner given: anyone's (the admin, the CLI)


async def test_a_session_is_active_until_it_expires_or_is_revoked(database: Database) -> None:
    sessions = ConsoleSessions(database)
    session, secret = await sessions.start(method="api-token")
    assert session.id.startswith("cs_") and secret not in session.model_dump_json()
    checked = await sessions.check(secret)
    assert checked is not None and checked.id == session.id and checked.method == "api-token"
    assert await sessions.check("not-" + secret) is None

    _, expired = await sessions.start(method="login-code", ttl=timedelta(seconds=-1))
    assert await sessions.check(expired) is None
    assert [s.id for s in await sessions.list_sessions()] == [session.id]
    assert len(await sessions.list_sessions(include_ended=True)) == 2

    assert await sessions.revoke_secret(secret)
    assert await sessions.check(secret) is None
    assert not await sessions.revoke(session.id)  # already revoked
    assert await sessions.revoke_all() == 0


async def test_last_seen_is_written_at_most_once_a_minute(database: Database) -> None:
    sessions = ConsoleSessions(database)
    session, secret = await sessions.start(method="login-code")
    seen = await sessions.check(secret)
    assert seen is not None and seen.last_seen_at == session.last_seen_at  # not rewritten
    earlier = utcnow() - timedelta(minutes=5)
    async with database.transaction() as connection:
        await connection.execute(
            update(ConsoleSessionRow)
            .where(ConsoleSessionRow.id == session.id)
            .values(last_seen_at=earlier)
        )
    seen = await sessions.check(secret)
    assert seen is not None and seen.last_seen_at > earlier + timedelta(minutes=4)
    [listed] = await sessions.list_sessions()
    assert listed.last_seen_at == seen.last_seen_at


async def test_sessions_under_another_cookie_key_are_revoked(database: Database) -> None:
    """Regression: after the API token changed, every old session was signed out (its
    cookie no longer verified) but `opsloop sessions list` still called it active."""
    sessions = ConsoleSessions(database)
    old, _ = await sessions.start(method="login-code", key_id="old-key")
    unknown, _ = await sessions.start(method="login-code")  # from before keys were kept
    current, _ = await sessions.start(method="api-token", key_id="new-key")
    assert await sessions.revoke_other_keys("new-key") == 2
    active = {s.id for s in await sessions.list_sessions()}
    assert active == {current.id}
    assert old.id not in active and unknown.id not in active


async def test_upgrading_names_token_sessions_admin_and_ends_the_nameless_ones(
    tmp_path: Path,
) -> None:
    """Sessions from before sessions named anyone could act as anyone: they end at upgrade,
    except those of the API token, which are the admin's."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await database.migrate("0005")
        later = utcnow() + timedelta(days=1)
        async with database.session() as session:
            for sid, method in (("cs_token", "api-token"), ("cs_link", "login-code")):
                session.add(
                    OldSession(
                        id=sid,
                        secret_hash=sid,
                        method=method,
                        created_at=utcnow(),
                        last_seen_at=utcnow(),
                        expires_at=later,
                    )
                )
        await database.migrate()
        sessions = {s.id: s for s in await ConsoleSessions(database).list_sessions()}
        assert list(sessions) == ["cs_token"]
        admin = sessions["cs_token"].identity
        assert admin is not None and (admin.principal, admin.auth) == ("admin:admin", "admin")
        [ended] = [
            s
            for s in await ConsoleSessions(database).list_sessions(include_ended=True)
            if s.id == "cs_link"
        ]
        assert ended.revoked_at is not None and ended.revoked_at <= utcnow()
    finally:
        await database.dispose()
