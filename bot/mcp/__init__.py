"""Model Context Protocol servers as tool sources (placeholder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.errors import ConfigError

__all__ = ["parse_mcp_server"]


def parse_mcp_server(path: Path, raw: dict[str, Any]) -> Any:
    """The MCP server a declaration file describes."""
    raise ConfigError(f"{path}: MCP servers are not supported yet")
