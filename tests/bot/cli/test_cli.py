"""The opsloop command as a user types it: the offline model, the embedded database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def request_id_of(output: str) -> str:
    for line in output.splitlines():
        event = json.loads(line)
        if event["kind"] == "human_request":
            return event["request_id"]
    raise AssertionError(f"no human request in {output!r}")


def test_question_is_answered_from_the_inventory(cli) -> None:
    result = cli("chat", "-m", "what is running in staging?")
    assert result.exit_code == 0, result.output
    assert "list_services" in result.output
    assert "checkout 1.4.2 in staging: healthy" in result.output
    assert "offline model" in result.output


def test_deploy_approve_and_history(cli) -> None:
    paused = cli("chat", "-m", "deploy checkout 1.4.2 to production", "--as", "dev-1", "--json")
    assert paused.exit_code == 0, paused.output
    request_id = request_id_of(paused.output)
    assert json.loads(paused.output.splitlines()[-1])["status"] == "paused"

    self_approval = cli("approve", request_id, "--as", "dev-1")
    assert self_approval.exit_code == 1
    assert "may not decide" in self_approval.output

    approved = cli("approve", request_id, "--as", "oncall-1", "--comment", "go")
    assert approved.exit_code == 0, approved.output
    assert "approved" in approved.output and "oncall-1" in approved.output
    assert "deploy checkout 1.4.1 -> 1.4.2 in production" in approved.output

    history = cli("chat", "-m", "recent deploys of checkout")
    assert "deploy checkout 1.4.1 -> 1.4.2 in production" in history.output
    assert "approved by cli:oncall-1" in history.output

    again = cli("approve", request_id, "--as", "oncall-2")
    assert again.exit_code == 1
    assert "already approved by cli:oncall-1" in again.output


def test_reject_makes_the_agent_report_the_reason(cli) -> None:
    paused = cli("chat", "-m", "restart search in production", "--as", "dev-1", "--json")
    request_id = request_id_of(paused.output)
    rejected = cli("reject", request_id, "--as", "oncall-1", "--reason", "freeze")
    assert rejected.exit_code == 0, rejected.output
    assert "rejected by cli:oncall-1: freeze" in rejected.output


def test_four_eyes_when_the_requester_is_an_approver(cli, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        'version = 1\n[roles]\noncall = ["cli:oncall-1"]\n'
        '[[rules]]\ntiers = ["write"]\napproval = "required"\napprovers = ["role:oncall"]\n'
    )
    os.environ["OPSLOOP_POLICY_FILE"] = str(policy)
    try:
        paused = cli("chat", "-m", "restart search in staging", "--as", "oncall-1", "--json")
        result = cli("approve", request_id_of(paused.output), "--as", "oncall-1")
    finally:
        del os.environ["OPSLOOP_POLICY_FILE"]
    assert result.exit_code == 1
    assert "four-eyes rule: cli:oncall-1 may not approve their own request" in result.output


def test_threads_list_and_show(cli) -> None:
    cli("chat", "-m", "status of checkout in production", "--as", "dev-1")
    listing = cli("threads", "list", "--json")
    [thread] = [json.loads(line) for line in listing.output.splitlines()]
    assert thread["agent"] == "inspector" and thread["status"] == "waiting"
    shown = cli("threads", "show", thread["id"])
    assert shown.exit_code == 0
    assert "model offline/offline-patterns" in shown.output
    assert "service_status" in shown.output
    events = cli("threads", "show", thread["id"], "--json")
    kinds = [json.loads(line)["kind"] for line in events.output.splitlines()]
    assert kinds[0] == "user_message" and "model_call" in kinds and kinds[-1] == "status"


def test_threads_list_goes_on_from_its_cursor(cli) -> None:
    for service in ("checkout", "search", "payments"):
        cli("chat", "-m", f"status of {service} in production")
    listing = cli("threads", "list", "--json").stdout
    everything = [json.loads(line)["id"] for line in listing.splitlines()]
    first = cli("threads", "list", "--limit", "2", "--json")
    assert first.exit_code == 0, first.output
    [hint] = first.stderr.splitlines()
    assert hint.startswith("older threads: opsloop threads list --cursor ")
    rest = cli("threads", "list", "--cursor", hint.split()[-1], "--json")
    assert rest.exit_code == 0 and rest.stderr == ""
    listed = [json.loads(line)["id"] for line in (first.stdout + rest.stdout).splitlines()]
    assert listed == everything and len(set(listed)) == 3
    bad = cli("threads", "list", "--cursor", "nonsense")
    assert bad.exit_code == 1
    assert "pass the next_cursor of the previous page" in bad.output


def test_several_messages_share_one_thread(cli) -> None:
    result = cli(
        "chat", "-m", "status of checkout in staging", "-m", "status of search in staging", "--json"
    )
    threads = {json.loads(line)["thread_id"] for line in result.output.splitlines()}
    assert len(threads) == 1
    messages = [json.loads(line) for line in result.output.splitlines()]
    assert [m["text"] for m in messages if m["kind"] == "user_message"] == [
        "status of checkout in staging",
        "status of search in staging",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chat", "-m", ""], "the message is empty"),
        (["chat", "-m", "x" * 1_000_000], "the limit is 16,000"),
        (["chat", "-m", "hi", "--agent", "wizard"], "unknown agent 'wizard'"),
        (["approve", "hr_missing", "--as", "oncall-1"], "no human request 'hr_missing'"),
        (["threads", "show", "th_missing"], "no thread 'th_missing'"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_1(cli, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_setting_stops_with_one_line_per_problem(cli, monkeypatch) -> None:
    monkeypatch.setenv("OPSLOOP_MODELS", "nonsense")
    monkeypatch.setenv("OPSLOOP_CONTEXT_TOKENS", "ten")
    result = cli("threads", "list")
    assert result.exit_code == 2
    assert "OPSLOOP_MODELS:" in result.output and "OPSLOOP_CONTEXT_TOKENS:" in result.output


def test_interactive_chat_with_approval(cli) -> None:
    typed = "\n".join(
        [
            "deploy payments 2.9.0 to production",
            "/approve",
            "/as oncall-1",
            "/approve looks good",
            "/quit",
        ]
    )
    result = cli("chat", "--as", "dev-1", input=typed + "\n")
    assert result.exit_code == 0, result.output
    assert "approval needed" in result.output
    assert "cli:dev-1 may not decide" in result.output
    assert "approved" in result.output and "looks good" in result.output
    assert "deploy payments 2.8.3 -> 2.9.0 in production" in result.output


def test_invalid_utf8_argument_is_refused_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "OPSLOOP_HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "chat",
            "-m",
            b"caf\xe9".decode("utf-8", "surrogateescape"),
        ],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert b"not valid UTF-8" in result.stderr
    assert b"Traceback" not in result.stderr


def test_approve_with_set_runs_the_edited_call(cli) -> None:
    paused = cli("chat", "-m", "deploy checkout 1.4.2 to production", "--as", "dev-1", "--json")
    request_id = request_id_of(paused.output)
    malformed = cli("approve", request_id, "--as", "oncall-1", "--set", "version")
    assert malformed.exit_code == 1
    assert "--set 'version': expected KEY=VALUE" in malformed.output
    twice = cli("approve", request_id, "--as", "oncall-1", "--set", "a=1", "--set", "a=2")
    assert twice.exit_code == 1 and "given twice" in twice.output
    invalid = cli("approve", request_id, "--as", "oncall-1", "--set", "replicas=3")
    assert invalid.exit_code == 1
    assert "replicas: not an argument of deploy" in invalid.output
    # 1.5 parses as JSON (a number), but the recorded version is text, so it stays text.
    approved = cli("approve", request_id, "--as", "oncall-1", "--set", "version=1.5")
    assert approved.exit_code == 0, approved.output
    assert "with changes (version → 1.5) by oncall-1" in approved.output
    assert "deploy checkout 1.4.1 -> 1.5 in production" in approved.output
    shown = cli("threads", "show", request_id_of_thread(paused.output), "--json")
    events = [json.loads(line) for line in shown.output.splitlines()]
    [response] = [e for e in events if e["kind"] == "human_response"]
    assert response["changes"] == {"version": "1.5"}
    [call] = [e for e in events if e["kind"] == "tool_call"]
    assert call["arguments"]["version"] == "1.5"


def request_id_of_thread(output: str) -> str:
    return str(json.loads(output.splitlines()[0])["thread_id"])


def test_set_values_are_json_when_they_parse() -> None:
    from bot.cli._common import parse_sets

    recorded = {"version": "1.4.2", "limit": 5}
    sets = ["limit=10", "dry_run=true", 'tags=["a"]', "note=hello world", "version=2", "e="]
    assert parse_sets(sets, recorded) == {
        "limit": 10,
        "dry_run": True,
        "tags": ["a"],
        "note": "hello world",
        "version": "2",
        "e": "",
    }


def test_thread_view_says_how_each_person_was_authenticated(cli) -> None:
    paused = cli("chat", "-m", "deploy checkout 1.4.2 to production", "--as", "dev-1", "--json")
    request_id = request_id_of(paused.output)
    cli("approve", request_id, "--as", "dev-1")  # refused: recorded with how dev-1 was known
    approved = cli("approve", request_id, "--as", "oncall-1")
    assert approved.exit_code == 0, approved.output
    [thread] = [json.loads(line) for line in cli("threads", "list", "--json").output.splitlines()]
    shown = cli("threads", "show", thread["id"]).output
    assert "dev-1 · cli-local>" in shown
    assert f"refused {request_id} for dev-1 · cli-local" in shown
    assert f"approved {request_id} by oncall-1 · cli-local" in shown
    events = [
        json.loads(line)
        for line in cli("threads", "show", thread["id"], "--json").output.splitlines()
    ]
    [decided] = [e for e in events if e["kind"] == "human_response"]
    assert decided["actor"]["auth"] == "cli-local"
