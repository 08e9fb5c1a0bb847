"""Fixtures shared by the core's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bot.cli import app

CLEARED = (
    "DATABASE_URL",
    "OPSLOOP_BIND",
    "OPSLOOP_PLUGINS",
    "OPSLOOP_POLICY_FILE",
    "OPSLOOP_PUBLIC_URL",
    "OPSLOOP_TOOLS_DIR",
    "OPSLOOP_USER",
)
"""Settings a developer's shell may hold that would change what a command does."""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``opsloop ARGS…`` in-process, in a temp home as the working directory, from a shell
    without opsloop settings; ``input`` is what is typed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPSLOOP_HOME", str(tmp_path))
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke
