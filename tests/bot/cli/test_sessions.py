"""``opsloop sessions``: one-time console links, and listing and revoking console sessions."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import load_settings
from bot.store import ConsoleSessions, Database

T = TypeVar("T")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPSLOOP_HOME", str(tmp_path))
    for name in ("OPSLOOP_BIND", "OPSLOOP_PUBLIC_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    invoke("threads", "list")  # creates the database, as any first command does
    return invoke


def with_sessions(tmp_path: Path, work: Callable[[ConsoleSessions], Awaitable[T]]) -> T:
    async def body() -> T:
        database = Database(load_settings(OPSLOOP_HOME=str(tmp_path)).database)
        try:
            return await work(ConsoleSessions(database))
        finally:
            await database.dispose()

    return asyncio.run(body())


def test_link_prints_a_one_time_login_link(cli, tmp_path: Path) -> None:
    result = cli("sessions", "link")
    assert result.exit_code == 0, result.output
    found = re.search(r"http://127\.0\.0\.1:8000/login\?code=(\S+)", result.output)
    assert found, result.output
    code = found[1]
    assert with_sessions(tmp_path, lambda s: s.use_login_code(code)) is True
    assert with_sessions(tmp_path, lambda s: s.use_login_code(code)) is False


def test_list_and_revoke_one_then_all(cli, tmp_path: Path) -> None:
    assert "No active console sessions" in cli("sessions", "list").output
    first, _ = with_sessions(tmp_path, lambda s: s.start(method="login-code"))
    second, _ = with_sessions(tmp_path, lambda s: s.start(method="api-token"))
    with_sessions(tmp_path, lambda s: s.start(method="api-token"))

    listed = [json.loads(line) for line in cli("sessions", "list", "--json").output.splitlines()]
    assert {s["id"] for s in listed} >= {first.id, second.id} and len(listed) == 3
    assert "secret" not in json.dumps(listed)
    table = cli("sessions", "list").output
    assert first.id in table and "login-code" in table

    result = cli("sessions", "revoke", first.id)
    assert result.exit_code == 0 and f"revoked {first.id}" in result.output
    again = cli("sessions", "revoke", first.id)
    assert again.exit_code == 1 and "no active session" in again.output
    assert first.id not in cli("sessions", "list").output
    assert "revoked" in cli("sessions", "list", "--all").output

    result = cli("sessions", "revoke", "--all")
    assert result.exit_code == 0 and "revoked 2 sessions" in result.output
    assert with_sessions(tmp_path, lambda s: s.list_sessions()) == []


@pytest.mark.parametrize("args", [[], ["cs_x", "--all"]])
def test_revoke_needs_exactly_one_of_an_id_or_all(cli, args: list[str]) -> None:
    result = cli("sessions", "revoke", *args)
    assert result.exit_code == 1
    assert "either a session id or --all" in result.output
