"""Runbook command actions against fake programs put first on PATH."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from bot.errors import ToolError
from tests.bot.runbooks.conftest import SECRET, FakeProgram, call, example, load


def runbook(argv: str, *, extra: str = "", arguments: str = "") -> str:
    return f"""
        kind = "runbook"
        description = "runs a program"
        {arguments}
        [command]
        argv = {argv}
        {extra}
    """


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_the_kubectl_example_runs_kubectl_with_one_item_per_argument(
    programs: FakeProgram, monkeypatch: pytest.MonkeyPatch
) -> None:
    programs.install("kubectl", "print('deployment.apps/web scaled')")
    monkeypatch.setenv("KUBECONFIG", "/etc/kube/config")
    monkeypatch.setenv("OPSLOOP_SECRET_UNRELATED", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:pw@db/opsloop")
    tool = example("kubectl-scale.toml")

    output = await call(tool, deployment="web", replicas=3, namespace="shop")

    assert output == {"exit_code": 0, "stdout": "deployment.apps/web scaled\n", "stderr": ""}
    [seen] = programs.calls()
    assert seen["argv"] == ["scale", "deployment/web", "--replicas=3", "-n", "shop"]
    # Only what the runbook passes (Python may add LC_CTYPE to its own environment).
    assert set(seen["env"]) - {"LC_CTYPE"} == {
        "PATH",
        "HOME",
        "KUBECONFIG",
        "OPSLOOP_IDEMPOTENCY_KEY",
    }
    assert seen["env"]["OPSLOOP_IDEMPOTENCY_KEY"] == "th_1:7"
    assert seen["env"]["KUBECONFIG"] == "/etc/kube/config"
    assert tool.attributes(tool.validate({"deployment": "w", "replicas": 1, "namespace": "n"})) == {
        "namespace": "n"
    }
    assert (tool.tier, tool.declares) == ("write", ("namespace",))


@pytest.mark.parametrize(
    "arguments",
    [
        {"deployment": "web; rm -rf /", "replicas": 3, "namespace": "shop"},
        {"deployment": "web", "replicas": "3", "namespace": "shop"},
        {"deployment": "web", "replicas": 51, "namespace": "shop"},
        {"deployment": "web", "replicas": True, "namespace": "shop"},
        {"deployment": "web", "replicas": 3, "namespace": "--kubeconfig=/tmp/x"},
        {"deployment": "web", "replicas": 3},
        {"deployment": "web", "replicas": 3, "namespace": "shop", "context": "prod"},
    ],
)
async def test_bad_arguments_are_refused_before_anything_runs(
    programs: FakeProgram, arguments: dict[str, object]
) -> None:
    programs.install("kubectl")
    tool = example("kubectl-scale.toml")
    with pytest.raises(Exception, match="validation error"):
        await call(tool, **arguments)
    assert programs.calls() == []


async def test_no_shell_reads_the_values(programs: FakeProgram, tmp_path: Path) -> None:
    programs.install("fake")
    tool = load(
        tmp_path,
        runbook(
            '["fake", "--message={message}", "{message}"]',
            arguments='[arguments.message]\npattern = ".*"',
        ),
    )
    hostile = "a b; touch pwned && echo $HOME `id` \"q\" 's' | cat > out"
    await call(tool, message=hostile)
    assert programs.calls()[0]["argv"] == [f"--message={hostile}", hostile]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()


async def test_secrets_go_in_through_env_and_never_come_out(
    programs: FakeProgram, tmp_path: Path, secret: str
) -> None:
    programs.install(
        "fake",
        """
        token = os.environ['API_TOKEN']
        print('token is', token)
        print('quoted', json.dumps(token), file=sys.stderr)
        """,
    )
    tool = load(tmp_path, runbook('["fake"]', extra='env = { API_TOKEN = "{secret.TOKEN}" }'))
    output = await call(tool)
    assert programs.calls()[0]["env"]["API_TOKEN"] == SECRET
    assert output["stdout"] == "token is ***\n"
    assert output["stderr"] == 'quoted "***"\n'


async def test_an_unexpected_exit_code_is_a_tool_error_without_the_secret(
    programs: FakeProgram, tmp_path: Path, secret: str
) -> None:
    programs.install(
        "fake",
        """
        print('failed using', os.environ['API_TOKEN'], file=sys.stderr)
        sys.exit(3)
        """,
    )
    tool = load(tmp_path, runbook('["fake"]', extra='env = { API_TOKEN = "{secret.TOKEN}" }'))
    with pytest.raises(ToolError) as caught:
        await call(tool)
    assert "fake exited with 3, expected 0" in str(caught.value)
    assert "failed using ***" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_listed_exit_codes_count_as_success(programs: FakeProgram, tmp_path: Path) -> None:
    programs.install("fake", "sys.exit(1)")
    tool = load(tmp_path, runbook('["fake"]', extra="expect_exit = [0, 1]"))
    assert (await call(tool))["exit_code"] == 1


async def test_a_command_past_its_time_is_killed_with_its_children(
    programs: FakeProgram, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    programs.install(
        "fake",
        f"""
        import subprocess, time
        child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
        open({str(pid_file)!r}, 'w').write(str(child.pid))
        time.sleep(600)
        """,
    )
    tool = load(tmp_path, runbook('["fake"]', extra="timeout_seconds = 2"))
    with pytest.raises(ToolError, match=r"did not finish within 2s .*process group was killed"):
        await call(tool)
    child = int(pid_file.read_text())
    program = programs.calls()[0]
    assert program  # it ran
    for _ in range(500):  # killed at once; reaped by init shortly after
        if gone(child):
            break
        await asyncio.sleep(0.01)
    assert gone(child)


async def test_output_is_capped_and_says_so(programs: FakeProgram, tmp_path: Path) -> None:
    programs.install("fake", "sys.stdout.write('x' * 1_000_000)")
    tool = load(tmp_path, runbook('["fake"]', extra="max_bytes = 100"))
    output = await call(tool)
    assert output["stdout"] == "x" * 100
    assert output["truncated"] == "stdout cut at 100 bytes"


async def test_a_missing_program_is_a_tool_error(programs: FakeProgram, tmp_path: Path) -> None:
    tool = load(tmp_path, runbook('["no-such-program-here"]'))
    with pytest.raises(ToolError, match="cannot start no-such-program-here"):
        await call(tool)


async def test_the_working_directory_is_relative_to_the_runbook(
    programs: FakeProgram, tmp_path: Path
) -> None:
    (tmp_path / "work").mkdir()
    programs.install("fake")
    tool = load(tmp_path, runbook('["fake"]', extra='cwd = "work"'))
    await call(tool)
    assert programs.calls()[0]["cwd"] == str(tmp_path / "work")


async def test_something_left_running_with_the_output_open_cannot_hang_the_call(
    programs: FakeProgram, tmp_path: Path
) -> None:
    pid_file = tmp_path / "daemon.pid"
    programs.install(
        "fake",
        f"""
        import subprocess
        daemon = subprocess.Popen(
            [sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True
        )
        open({str(pid_file)!r}, 'w').write(str(daemon.pid))
        print('started')
        """,
    )
    tool = load(tmp_path, runbook('["fake"]', extra="timeout_seconds = 1"))
    try:
        with pytest.raises(ToolError, match="kept its output open"):
            await call(tool)
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # it escaped the process group
