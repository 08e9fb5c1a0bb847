"""Console login codes and sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from bot.events import utcnow
from bot.store import ConsoleSessions, Database
from bot.store._sessions import ConsoleSessionRow


async def test_a_login_code_is_spent_exactly_once_even_by_racing_requests(
    database: Database,
) -> None:
    sessions = ConsoleSessions(database)
    code = await sessions.new_login_code()
    spent = await asyncio.gather(*(sessions.use_login_code(code) for _ in range(8)))
    assert spent.count(True) == 1
    assert not await sessions.use_login_code("made-up")
    assert not await sessions.use_login_code(await sessions.new_login_code(ttl=timedelta(0)))


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
