"""``opsloop run`` and ``opsloop api`` as a user starts them, when they cannot serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli._sessions import login_people
from bot.config import load_settings
from bot.errors import ConfigError
from bot.policy import load_policy


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other process is already listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def opsloop(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPSLOOP_", "ANTHROPIC_", "OPENAI_", "SLACK_", "DISCORD_", "IMAP_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**clean, "OPSLOOP_HOME": str(home), **env},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_port_out_of_range_is_a_bad_setting(tmp_path: Path) -> None:
    """Regression: ``OPSLOOP_BIND=127.0.0.1:99999`` passed validation, then died in a traceback."""
    with pytest.raises(ConfigError, match="OPSLOOP_BIND: the port must be 1 to 65535, not 99999"):
        load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_BIND="127.0.0.1:99999")
    with pytest.raises(ConfigError, match="OPSLOOP_BIND"):
        load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_BIND="127.0.0.1:0")
    assert load_settings(OPSLOOP_HOME=str(tmp_path), OPSLOOP_BIND="0.0.0.0:65535")

    result = opsloop(tmp_path, "run", OPSLOOP_BIND="127.0.0.1:99999")
    assert result.returncode == 2, result
    assert "OPSLOOP_BIND: the port must be 1 to 65535" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_run_on_a_port_in_use_says_so_in_one_line_before_any_link(
    tmp_path: Path, held_port: int
) -> None:
    """Regression: a port in use printed a login link for the other process, then "exit 3"."""
    result = opsloop(tmp_path, "run", OPSLOOP_BIND=f"127.0.0.1:{held_port}")
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{held_port}: Address already in use"
    ]
    assert "login" not in result.stdout and "running" not in result.stdout


def test_api_on_a_port_in_use_says_so_in_one_line(tmp_path: Path, held_port: int) -> None:
    """Regression: ``opsloop api`` on a port in use died with uvicorn's error after start-up."""
    result = opsloop(
        tmp_path, "api", "--bind", f"127.0.0.1:{held_port}", OPSLOOP_API_TOKEN="t" * 32
    )
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{held_port}: Address already in use"
    ]
    for bad in ("127.0.0.1:99999", "127.0.0.1:8²", "nohost"):
        result = opsloop(tmp_path, "api", "--bind", bad, OPSLOOP_API_TOKEN="t" * 32)
        assert result.returncode == 2, (bad, result)
        assert "must be host:port, port 1 to 65535" in result.stderr
        assert "Traceback" not in result.stderr


def test_api_refuses_development_identities(tmp_path: Path) -> None:
    result = opsloop(tmp_path, "api", OPSLOOP_API_TOKEN="t" * 32, OPSLOOP_DEV_IDENTITIES="true")
    assert result.returncode == 2, result
    [line] = result.stderr.strip().splitlines()
    assert "OPSLOOP_DEV_IDENTITIES=true lets anyone act as anyone" in line
    assert "`opsloop api` refuses" in line


def test_run_refuses_to_sign_in_someone_the_policy_does_not_know(tmp_path: Path) -> None:
    result = opsloop(tmp_path, "run", "--as", "mallory")
    assert result.returncode == 2, result
    assert "'mallory' is not a person in the policy; people: oncall-1" in result.stderr
    assert "login?code=" not in result.stdout and "running" not in result.stdout


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, ("dev-1", "oncall-1")),
        # No developer role: the first person; the approver is someone else.
        (
            '[people.ann]\nprincipals = ["web:ann"]\n[people.bob]\nprincipals = ["web:bob"]\n'
            '[roles]\nsre = ["ann", "bob"]\n'
            '[[rules]]\nname = "x"\ntiers = ["write"]\napproval = "required"\n'
            'approvers = ["role:sre"]\n',
            ("ann", "bob"),
        ),
        # Nobody who can sign in to the console approves: no approver line.
        (
            '[people.ann]\nprincipals = ["web:ann"]\n[people.bob]\nprincipals = ["slack:U2"]\n'
            '[roles]\ndeveloper = ["ann"]\noncall = ["bob"]\n'
            '[[rules]]\nname = "x"\ntiers = ["write"]\napproval = "required"\n'
            'approvers = ["role:oncall"]\n',
            ("ann", None),
        ),
    ],
)
def test_run_offers_a_developer_and_an_approver(
    tmp_path: Path, policy: str | None, expected: tuple[str | None, str | None]
) -> None:
    path = None
    if policy is not None:
        path = tmp_path / "policy.toml"
        path.write_text("version = 1\n" + policy)
    assert login_people(load_policy(path)) == expected


def test_run_keeps_the_token_it_made_up_so_a_restart_signs_nobody_out(tmp_path: Path) -> None:
    """Regression: a new made-up token each start changed the session key: every restart of
    `opsloop run` signed every console user out."""
    from bot.cli._serve import _local_token

    settings = load_settings(OPSLOOP_HOME=str(tmp_path))
    first = _local_token(settings)
    assert _local_token(settings) == first
    kept = tmp_path / ".opsloop" / "api-token"
    assert kept.read_text(encoding="utf-8").strip() == first
    assert kept.stat().st_mode & 0o777 == 0o600
    kept.write_text("short\n", encoding="utf-8")  # damaged: made anew, never used as is
    assert _local_token(settings) not in {"short", first}
