"""Two approvals needed, on the command line: progress in the output and the thread view."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def test_two_approvals_from_the_terminal(
    cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = 1\n[roles]\noncall = ["cli:oncall-1", "cli:oncall-2"]\n'
        '[[rules]]\ntiers = ["write"]\napproval = "required"\napprovers = ["role:oncall"]\n'
        "min_approvals = 2\n"
    )
    monkeypatch.setenv("OPSLOOP_POLICY_FILE", str(policy))
    paused = cli("chat", "-m", "restart search in staging", "--as", "dev-1")
    assert "may approve: role:oncall (2 different people)" in paused.output
    found = re.search(r"approval needed (hr_\w+)", paused.output)
    assert found, paused.output
    request_id = found[1]

    first = cli("approve", request_id, "--as", "oncall-1")
    assert first.exit_code == 0, first.output
    assert (
        f"approved {request_id} by oncall-1 (pending: approved by cli:oncall-1; "
        "still needed: 1 more of role:oncall)"
    ) in first.output
    assert "restart search" not in first.output.split(request_id)[-1]  # nothing ran yet

    again = cli("approve", request_id, "--as", "oncall-1")
    assert again.exit_code == 1
    assert "already approved by you" in again.output

    second = cli("approve", request_id, "--as", "oncall-2")
    assert second.exit_code == 0, second.output
    assert "approved by cli:oncall-1, cli:oncall-2" in second.output

    [thread] = [json.loads(line) for line in cli("threads", "list", "--json").output.splitlines()]
    shown = cli("threads", "show", thread["id"]).output
    assert "still needed: 1 more of role:oncall" in shown
