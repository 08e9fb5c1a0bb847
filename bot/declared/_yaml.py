"""YAML declarations (placeholder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.errors import ConfigError


def load_yaml(path: Path, text: str) -> Any:
    """The document in ``text``."""
    raise ConfigError(f"{path}: YAML is not supported yet")
