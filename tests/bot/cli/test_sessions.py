"""``opsloop sessions``: one-time console links, and listing and revoking console sessions."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from bot.config import load_settings
from bot.events import ADMIN, Identity
from bot.store import ConsoleSessions, Database

T = TypeVar("T")


@pytest.fixture
def cli(cli):
    cli("threads", "list")  # creates the database, as any first command does
    return cli


def with_sessions(tmp_path: Path, work: Callable[[ConsoleSessions], Awaitable[T]]) -> T:
    async def body() -> T:
        database = Database(load_settings(OPSLOOP_HOME=str(tmp_path)).database)
        try:
            return await work(ConsoleSessions(database))
        finally:
            await database.dispose()

    return asyncio.run(body())


@pytest.mark.parametrize("command", [["login"], ["sessions", "link"]])
def test_login_prints_a_one_time_link_for_a_person(cli, tmp_path: Path, command: list[str]) -> None:
    result = cli(*command, "--as", "oncall-1")
    assert result.exit_code == 0, result.output
    assert "as web:oncall-1" in result.output
    found = re.search(r"http://127\.0\.0\.1:8000/login\?code=(\S+)", result.output)
    assert found, result.output
    code = found[1]
    assert with_sessions(tmp_path, lambda s: s.use_login_code(code)) == "web:oncall-1"
    assert with_sessions(tmp_path, lambda s: s.use_login_code(code)) is None


@pytest.mark.parametrize("command", [["login"], ["sessions", "link"]])
def test_login_needs_a_person_from_the_policy(cli, command: list[str]) -> None:
    result = cli(*command)
    assert result.exit_code == 2
    assert "--as" in result.output
    result = cli(*command, "--as", "mallory")
    assert result.exit_code == 2
    assert "'mallory' is not a person in the policy" in result.output
    assert "people: oncall-1, oncall-2, dev-1, dev-2" in result.output
    assert "login?code=" not in result.output


def test_login_takes_a_web_principal_and_refuses_a_person_without_one(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = 1\n[people.ann]\nprincipals = ["slack:U1"]\n'
        '[people.bob]\nprincipals = ["web:bob", "slack:U2"]\n'
        '[roles]\noncall = ["ann", "web:carol"]\n'
    )
    monkeypatch.setenv("OPSLOOP_POLICY_FILE", str(policy))
    result = cli("login", "--as", "ann")
    assert result.exit_code == 2
    assert 'ann has no web: principal in the policy: add "web:ann"' in result.output
    assert "as web:carol" in cli("login", "--as", "web:carol").output
    assert "as web:bob" in cli("login", "--as", "bob").output
    assert cli("login", "--as", "web:nobody").exit_code == 2


def test_list_and_revoke_one_then_all(cli, tmp_path: Path) -> None:
    assert "No active console sessions" in cli("sessions", "list").output
    dev = Identity(channel="web", user_id="dev-1", auth="login-link")
    first, _ = with_sessions(tmp_path, lambda s: s.start(method="login-link", identity=dev))
    second, _ = with_sessions(tmp_path, lambda s: s.start(method="admin", identity=ADMIN))
    with_sessions(tmp_path, lambda s: s.start(method="admin", identity=ADMIN))

    listed = [json.loads(line) for line in cli("sessions", "list", "--json").output.splitlines()]
    assert {s["id"] for s in listed} >= {first.id, second.id} and len(listed) == 3
    assert "secret" not in json.dumps(listed)
    table = cli("sessions", "list").output
    row = next(line for line in table.splitlines() if first.id in line)
    assert "web:dev-1" in row and "login-link" in row
    assert "admin:admin" in table
    assert {(s["principal"], s["auth"]) for s in listed} == {
        ("web:dev-1", "login-link"),
        ("admin:admin", "admin"),
    }

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
