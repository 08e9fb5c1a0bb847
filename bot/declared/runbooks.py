"""Runbooks: tools declared as data (placeholder until the runbook actions land)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.tools import Tool

__all__ = ["parse_runbook"]


def parse_runbook(path: Path, raw: dict[str, Any]) -> tuple[Tool, tuple[str, ...]]:
    """The tool a runbook file declares, and the agents it is added to."""
    raise ConfigError(f"{path}: runbooks are not supported yet")
