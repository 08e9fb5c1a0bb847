"""Model Context Protocol servers as tool sources.

A file in ``OPSLOOP_TOOLS_DIR`` with ``kind = "mcp"`` declares a server
(:class:`McpServer`); its tools appear to agents like any other tool, checked against the
server's own JSON schema, tiered from its hints (``readOnlyHint`` reads, anything else writes
and needs approval, unless the declaration says otherwise), their results capped and marked
untrusted. :class:`McpHub` keeps one session per server per process, on a loop of its own,
and reconnects when one drops.
"""

from __future__ import annotations

from bot.mcp._config import McpServer, ToolOverride, parse_mcp_server
from bot.mcp._hub import MCP_HUB, LinkState, McpHub
from bot.mcp._link import Backoff, McpUnavailableError
from bot.mcp._tools import McpToolError, mcp_tools, render_result, tier_of
from bot.mcp._wiring import catalogue_with, check_catalogue

__all__ = [
    "MCP_HUB",
    "Backoff",
    "LinkState",
    "McpHub",
    "McpServer",
    "McpToolError",
    "McpUnavailableError",
    "ToolOverride",
    "catalogue_with",
    "check_catalogue",
    "mcp_tools",
    "parse_mcp_server",
    "render_result",
    "tier_of",
]
