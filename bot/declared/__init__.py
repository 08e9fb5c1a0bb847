"""Tools, agents and MCP servers a team declares as data, in a folder (``OPSLOOP_TOOLS_DIR``).

Each ``*.toml``, ``*.yaml`` or ``*.yml`` file in the folder declares one thing, named by its
``kind``:

- ``kind = "runbook"``: a tool without Python, an HTTP request or a command
  (:mod:`bot.declared.runbooks`);
- ``kind = "agent"``: an agent whose tools are named or matched by pattern;
- ``kind = "mcp"``: a Model Context Protocol server whose tools agents may call
  (:mod:`bot.mcp`).

Every file is checked at start-up; one bad file stops it with the file and the field named.
"""

from __future__ import annotations

from bot.declared._load import AgentSpec, Declared, load_declared

__all__ = ["AgentSpec", "Declared", "load_declared"]
