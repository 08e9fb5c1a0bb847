"""The extending guide and its example plugin: the guide shows the files, and they work.

``examples/plugin`` stands for a team's own folder: the plugin is loaded from it as the
working directory (``OPSLOOP_PLUGINS=myteam.ops``), its tests run there, and the real CLI
runs there as a subprocess, as the guide tells a reader to.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.events import CallTool
from bot.model import ModelRequest
from bot.testing import FunctionModel, Reply, ScriptedModel, Testbot

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "extending.md"
FOLDER = ROOT / "examples" / "plugin"
OPSLOOP = Path(sys.executable).with_name("opsloop")

_BLOCK = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
_MUST_NAME_A_FILE = {"python", "toml", "yaml", "markdown"}


def blocks() -> list[tuple[str | None, str, str]]:
    return [(m["file"], m["lang"], m["body"]) for m in _BLOCK.finditer(GUIDE.read_text())]


def test_every_code_block_of_the_guide_is_an_example_file_verbatim() -> None:
    shown = [(name, lang, body) for name, lang, body in blocks() if lang in _MUST_NAME_A_FILE]
    assert len(shown) >= 7
    for name, lang, body in shown:
        assert name is not None, f"a {lang} block names no file:\n{body[:200]}"
        assert body == (ROOT / name).read_text(), f"{name} differs from the guide's copy"


def test_the_guides_picture_of_the_folder_names_every_file_in_it() -> None:
    [tree] = [body for _, lang, body in blocks() if lang == "text"]
    files = [
        p
        for p in FOLDER.rglob("*")
        if p.is_file()
        and not any(
            part.startswith(".") or part == "__pycache__" for part in p.relative_to(FOLDER).parts
        )
        and not p.name.endswith(".db")  # where a reader ran opsloop
    ]
    assert len(files) >= 9
    missing = [str(p.relative_to(FOLDER)) for p in files if f" {p.name}" not in tree]
    assert missing == []


def test_the_guide_keeps_the_places_for_runbooks_and_mcp_servers() -> None:
    headings = re.findall(r"^## (.+)$", GUIDE.read_text(), re.M)
    for heading in (
        "Your first tool in ten minutes",
        "A new agent",
        "Plugins",
        "Approval is decided on the call",
        "A runbook",
        "An MCP server",
    ):
        assert heading in headings


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh shell in the team's folder: no opsloop or provider settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPSLOOP_", "ANTHROPIC_", "OPENAI_"))
        and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    return env | {"OPSLOOP_HOME": str(tmp_path), **extra}


def test_the_example_plugins_own_tests_pass_in_its_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
        cwd=FOLDER,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b\d+ passed\b", done.stdout) and "failed" not in done.stdout


@pytest.fixture
def myteam(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The example's ``myteam`` package, imported from its folder (and forgotten after)."""
    monkeypatch.syspath_prepend(str(FOLDER))
    _forget()
    from myteam.ops import plugin  # type: ignore[import-not-found]

    yield plugin
    _forget()


def _forget() -> None:
    for name in [m for m in sys.modules if m == "myteam" or m.startswith("myteam.")]:
        del sys.modules[name]


async def test_the_declared_agent_reads_flags_with_the_plugins_tool_only(myteam) -> None:
    seen: list[str] = []

    def decide(request: ModelRequest) -> CallTool | Reply:
        seen.append(request.agent)
        if "<tool_result" in request.context:
            return Reply(text="it is off")
        assert [t.name for t in request.tools] == ["flag_status", "ask_human"]
        arguments = {"flag": "new-checkout", "environment": "production"}
        return CallTool(tool="flag_status", arguments=arguments)

    async with Testbot(
        plugins=[myteam], model=FunctionModel(decide), tools_dir=FOLDER / "tools"
    ) as bot:
        routed = bot.ops.runtime.agents.route("run an audit of new-checkout")
        assert routed.name == "flag-auditor"
        turn = await bot.send("run an audit of new-checkout")

        assert seen == ["flag-auditor", "flag-auditor"]
        assert turn.tool_calls[0].output == {
            "flag": "new-checkout",
            "environment": "production",
            "enabled": False,
        }
        assert turn.replies == ["it is off"]


async def test_the_plugin_agents_prompt_comes_from_the_plugins_folder(myteam) -> None:
    async with Testbot(plugins=[myteam], model=ScriptedModel([Reply(text="hi")])) as bot:
        prompts = bot.ops.runtime.prompts
        assert prompts.where("flagger") == FOLDER / "myteam" / "prompts" / "flagger.md"
        await bot.send("which flags are on?")
        [request] = bot.ops.runtime.models["default"].requests  # type: ignore[attr-defined]
        assert request.system.startswith("You are flagger, who looks after my team's feature")
        assert "Use exactly the flag and environment" in request.system


# ---------------------------------------------------------------- the real CLI


def opsloop(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``opsloop COMMAND`` in the team's folder, as the guide shows it."""
    assert f"$ opsloop {command}\n" in GUIDE.read_text(), "the guide shows this command"
    done = subprocess.run(
        [str(OPSLOOP), *shlex.split(command)],
        cwd=FOLDER,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_cli_runs_the_plugins_tool_from_its_folder_offline(tmp_path: Path) -> None:
    env = clean_env(tmp_path, OPSLOOP_PLUGINS="myteam.ops")
    read = opsloop(
        'chat --as dev-1 -m "call flag_status flag=new-checkout environment=staging"', env
    )
    assert "opsloop (flagger)>" in read.stdout, "the message went to the plugin's agent"
    assert "offline model" in read.stdout
    assert '→ flag_status(flag="new-checkout", environment="staging")' in read.stdout
    assert '"enabled": true' in read.stdout

    change = opsloop(
        'chat --as dev-1 -m "call set_flag flag=new-checkout environment=production enabled=true"',
        env,
    )
    [request_id] = re.findall(r"pending request: (hr_\w+)", change.stdout)
    assert "approval needed" in change.stdout and "→ set_flag" not in change.stdout
    approved = subprocess.run(
        [str(OPSLOOP), "approve", request_id, "--as", "oncall-1"],
        cwd=FOLDER,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert approved.returncode == 0, approved.stderr
    assert "→ set_flag(" in approved.stdout and "approved by cli:oncall-1" in approved.stdout


def test_the_declared_agent_is_tried_from_the_cli(tmp_path: Path) -> None:
    env = clean_env(tmp_path, OPSLOOP_PLUGINS="myteam.ops", OPSLOOP_TOOLS_DIR="tools")
    done = opsloop(
        "chat --as dev-1 --agent flag-auditor"
        ' -m "call flag_status flag=new-checkout environment=production"',
        env,
    )
    assert "opsloop (flag-auditor)>" in done.stdout
    assert '→ flag_status(flag="new-checkout", environment="production")' in done.stdout


def test_tools_list_shows_the_plugins_tools(tmp_path: Path) -> None:
    listed = opsloop("tools list", clean_env(tmp_path, OPSLOOP_PLUGINS="myteam.ops"))
    for name in ("flag_status", "set_flag", "myteam", "deploy"):
        assert name in listed.stdout
