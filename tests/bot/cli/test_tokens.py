"""``opsloop tokens``: make a per-person token, list it, revoke it, all from the terminal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import AuthenticationError
from bot.store import ApiToken, ApiTokens, Database


def check(tmp_path: Path, token: str) -> ApiToken:
    async def body() -> ApiToken:
        database = Database(load_settings(OPSLOOP_HOME=str(tmp_path)).database)
        try:
            return await ApiTokens(database).check(token)
        finally:
            await database.dispose()

    return asyncio.run(body())


def test_create_list_revoke_round_trip(cli, tmp_path: Path) -> None:
    made = cli(
        "tokens",
        "create",
        "--user",
        "oncall-1",
        "--scope",
        "decide",
        "--scope",
        "read",
        "--expires",
        "30d",
        "--label",
        "pager bridge",
    )
    assert made.exit_code == 0, made.output
    [token] = made.stdout.splitlines()  # only the token, so $(...) captures it
    assert token.startswith("opl_tk_")
    assert "not shown again" in made.stderr
    found = check(tmp_path, token)
    assert (found.person, found.scopes, found.label) == (
        "oncall-1",
        ("read", "decide"),
        "pager bridge",
    )
    assert found.expires_at is not None
    assert (found.expires_at - found.created_at).days == 30

    listed = cli("tokens", "list", "--json")
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == found.id and row["person"] == "oncall-1"
    assert token.split("_", 3)[3] not in listed.stdout
    table = cli("tokens", "list")
    assert found.id in table.stdout and "active" in table.stdout

    revoked = cli("tokens", "revoke", found.id)
    assert revoked.exit_code == 0 and f"revoked {found.id}" in revoked.stdout
    with pytest.raises(AuthenticationError, match="was revoked"):
        check(tmp_path, token)
    assert "No active tokens" in cli("tokens", "list").stdout
    assert "revoked" in cli("tokens", "list", "--all").stdout
    again = cli("tokens", "revoke", found.id)
    assert again.exit_code == 1 and "no active token" in again.stderr


def test_defaults_and_never(cli, tmp_path: Path) -> None:
    made = cli("tokens", "create", "--user", "web:alice", "--expires", "never")
    assert made.exit_code == 0, made.output
    found = check(tmp_path, made.stdout.strip())
    assert (found.person, found.scopes, found.expires_at) == (
        "alice",
        ("read", "act", "decide"),
        None,
    )
    made = cli("tokens", "create", "--user", "dev-1")
    found = check(tmp_path, made.stdout.strip())
    assert found.expires_at is not None and (found.expires_at - found.created_at).days == 90
    assert [
        json.loads(line)["person"]
        for line in cli("tokens", "list", "--user", "dev-1", "--json").stdout.splitlines()
    ] == ["dev-1"]


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--user", "mallory"], "unknown person 'mallory'"),
        (["--user", "dev-1", "--scope", "root"], "unknown scope 'root'"),
        (["--user", "dev-1", "--expires", "tomorrow"], "30d"),
    ],
)
def test_mistakes_exit_2_and_make_nothing(cli, args: list[str], why: str) -> None:
    result = cli("tokens", "create", *args)
    assert result.exit_code == 2, result.output
    assert why in result.stderr and result.stdout == ""
    assert "No tokens" in cli("tokens", "list", "--all").stdout
