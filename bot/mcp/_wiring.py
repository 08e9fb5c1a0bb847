"""Putting the declared MCP servers' tools into the catalogue, at start-up.

A server that cannot be reached at start-up is logged once, with the reason, and the
process goes on without its tools (they come with the next start). A declared agent that
names only such tools by pattern then stops start-up: the error says which servers are
down, so it is never mistaken for a typo.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.catalogue import Catalogue, build_catalogue
from bot.config import Settings
from bot.declared import Declared, load_declared
from bot.errors import ConfigError
from bot.mcp._hub import McpHub
from bot.mcp._tools import mcp_tools
from bot.plugins import Plugin

__all__ = ["catalogue_with", "check_catalogue"]


def catalogue_with(
    settings: Settings,
    declared: Declared,
    hub: McpHub,
    *,
    plugins: Sequence[Plugin] | None = None,
) -> Catalogue:
    """The catalogue, with the tools of the servers ``hub`` (already started) reached.

    Raises:
        ConfigError: the catalogue is invalid; if a server is down, the message says so.
    """
    tools, scopes = mcp_tools(hub)
    try:
        return build_catalogue(
            settings, plugins=plugins, declared=declared, extra_tools=tools, scopes=scopes
        )
    except ConfigError as exc:
        down = hub.unavailable()
        if not down:
            raise
        reasons = "; ".join(f"{name}: {why}" for name, why in sorted(down.items()))
        raise ConfigError(
            f"{exc}\n(MCP servers unavailable at start-up, so their tools are missing: {reasons})"
        ) from None


def check_catalogue(settings: Settings, *, connect: bool = True) -> Catalogue:
    """Build the catalogue once, connecting the declared servers and closing them after.

    For start-up checks run before a process serves (``opsloop worker``, ``api``, ``beat``).
    ``connect=False`` checks the declarations without starting any server: for a process
    that calls no tool (``beat``, ``opsloop run``'s supervisor, whose children check).

    Raises:
        ConfigError: a declaration or the catalogue is invalid.
    """
    declared = load_declared(settings.tools_dir)
    if not connect:  # the servers' tools are unknown: an agent's pattern may name only them
        return build_catalogue(settings, declared=declared, every_pattern=False)
    hub = McpHub(declared.mcp_servers)
    try:
        hub.start()
        return catalogue_with(settings, declared, hub)
    finally:
        hub.close()
