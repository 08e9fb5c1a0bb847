"""Reading the declarations folder: one file, one declaration, dispatched on ``kind``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import ConfigError
from bot.tools import Tool

__all__ = ["AgentSpec", "Declared", "load_declared", "read_declaration"]

SUFFIXES = (".toml", ".yaml", ".yml")
_KINDS = 'kind = "runbook" or kind = "agent" or kind = "mcp"'


class AgentSpec(BaseModel):
    """An agent declared as data; its tools are found by name or pattern among all tools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "agent"
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    """How people and the router name it."""
    description: str = Field(min_length=1)
    """What it is for, in a sentence."""
    prompt: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """The name of its prompt template (``<prompt>.md`` on the prompt path)."""
    tools: tuple[str, ...] = Field(min_length=1)
    """Tool names or glob patterns (``"git_*"``); each must match at least one tool."""
    model_route: str = "default"
    """Which model chain to use."""
    keywords: tuple[str, ...] = ()
    """Words that make the keyword router pick it."""
    max_steps: int = Field(default=6, ge=1, le=20)
    """Model calls allowed per run."""


@dataclass(frozen=True)
class Declared:
    """Everything the folder declares."""

    tools: tuple[Tool, ...] = ()
    """Runbook tools."""
    agents: tuple[AgentSpec, ...] = ()
    """Declared agents."""
    mcp_servers: tuple[Any, ...] = ()
    """MCP server declarations (:class:`bot.mcp.McpServer`)."""
    attach: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Tool name to the names of existing agents it is added to (a runbook's ``agents``)."""


def read_declaration(path: Path) -> dict[str, Any]:
    """One file's table, from TOML or YAML.

    Raises:
        ConfigError: unreadable, not valid TOML/YAML, or not a table.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if path.suffix == ".toml":
        try:
            raw: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    else:
        from bot.declared._yaml import load_yaml

        raw = load_yaml(path, text)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table of settings at the top")
    return raw


def validation_problems(path: Path, exc: ValidationError) -> ConfigError:
    """One :class:`ConfigError` naming the file and each bad field."""
    lines = [
        f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return ConfigError(f"{path}:\n  " + "\n  ".join(lines))


def _agent(path: Path, raw: dict[str, Any]) -> AgentSpec:
    try:
        return AgentSpec.model_validate({"name": path.stem, **raw})
    except ValidationError as exc:
        raise validation_problems(path, exc) from None


def load_declared(directory: Path | None) -> Declared:
    """Read every declaration in ``directory`` (nothing when ``None``).

    Raises:
        ConfigError: the folder is missing, or a file is invalid; the message names it.
    """
    if directory is None:
        return Declared()
    if not directory.is_dir():
        raise ConfigError(f"OPSLOOP_TOOLS_DIR: {directory} is not a directory")
    from bot.declared.runbooks import parse_runbook
    from bot.mcp import parse_mcp_server

    tools: list[Tool] = []
    agents: list[AgentSpec] = []
    servers: dict[str, tuple[Path, Any]] = {}  # by name, with the file that declares each
    attach: dict[str, tuple[str, ...]] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        raw = read_declaration(path)
        kind = raw.get("kind")
        if kind == "runbook":
            tool, scoped = parse_runbook(path, raw)
            tools.append(tool)
            if scoped:
                attach[tool.name] = scoped
        elif kind == "agent":
            agents.append(_agent(path, raw))
        elif kind == "mcp":
            server = parse_mcp_server(path, raw)
            if server.name in servers:
                first = servers[server.name][0]
                raise ConfigError(f"{path}: MCP server {server.name!r} is declared in {first} too")
            servers[server.name] = (path, server)
        elif kind is None:
            raise ConfigError(f"{path}: kind is missing: start the file with {_KINDS}")
        else:
            raise ConfigError(f"{path}: kind must be {_KINDS}, not kind = {kind!r}")
    return Declared(
        tools=tuple(tools),
        agents=tuple(agents),
        mcp_servers=tuple(server for _, server in servers.values()),
        attach=attach,
    )
