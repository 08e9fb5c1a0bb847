"""An MCP server declaration: how to reach it, and what of it agents may use.

One file in ``OPSLOOP_TOOLS_DIR`` with ``kind = "mcp"`` declares one server, reached either
by running a command (stdio: ``command``, ``args``, ``env``) or at a URL (Streamable HTTP:
``url``, ``headers``). Values in ``env`` and ``headers`` may be ``{secret.NAME}`` templates,
filled from ``OPSLOOP_SECRET_NAME`` when the connection opens (:mod:`bot.declared._secrets`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.declared._secrets import secret_problem
from bot.policy import RiskTier

__all__ = ["McpServer", "ToolOverride", "parse_mcp_server"]

_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ToolOverride(BaseModel):
    """What the configuration says about one of the server's tools (``[tools.<name>]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: RiskTier | None = None
    """``read`` or ``write``, whatever the server's hints say."""
    touches: tuple[str, ...] = ()
    """Argument names whose values are what a call touches (policy ``where`` attributes)."""
    agents: tuple[str, ...] = ()
    """Existing agents this tool is added to (besides the server's ``agents``)."""


class McpServer(BaseModel):
    """One Model Context Protocol server whose tools agents may call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mcp"] = "mcp"
    name: str = Field(pattern=_NAME)
    """The server's name, in messages and as each tool's origin (default: the file stem)."""
    command: str | None = Field(default=None, min_length=1)
    """The program to run (stdio); looked up on ``PATH`` like a shell would."""
    args: tuple[str, ...] = ()
    """Its arguments."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment (the server gets only these, ``PATH``, ``HOME`` and a few more)."""
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """The Streamable HTTP endpoint (``http://host:port/mcp``)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers sent with every request (``Authorization = "Bearer {secret.TOKEN}"``)."""
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How long one tool call may take before it is a tool error."""
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long connecting (start, handshake, tool list) may take."""
    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,32}$")
    """Put before each tool's name (``git_`` makes ``status`` into ``git_status``)."""
    allow: tuple[str, ...] = ("*",)
    """Glob patterns of the server's tool names to offer (all by default)."""
    deny: tuple[str, ...] = ()
    """Glob patterns of tool names never to offer (wins over ``allow``)."""
    agents: tuple[str, ...] = ()
    """Existing agents every offered tool is added to."""
    tier: RiskTier | None = None
    """Every tool's tier, whatever the server's hints say (a tool's own ``tier`` wins)."""
    tools: dict[str, ToolOverride] = Field(default_factory=dict)
    """Per-tool settings, by the server's tool name (without ``prefix``)."""
    max_result_bytes: int = Field(default=16_000, ge=256, le=1_000_000)
    """The most of a result the model gets; the rest is cut, and the cut said."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (Streamable HTTP)")
        if self.command is None and (self.args or self.env):
            raise ValueError("args and env are for a command; an HTTP server takes headers")
        if self.url is None and self.headers:
            raise ValueError("headers are for a url; a command takes env")
        for header in self.headers:
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
                raise ValueError(f"headers: {header!r} is not a header name")
        for field, values in (("env", self.env), ("headers", self.headers)):
            for key, value in values.items():
                if (problem := secret_problem(value)) is not None:
                    raise ValueError(f"{field}.{key}: {problem}")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """How the server is reached."""
        return "stdio" if self.command is not None else "http"

    @property
    def where(self) -> str:
        """How people recognise it in a message: the command or the URL (never a secret)."""
        return self.command or self.url or self.name

    def override(self, tool: str) -> ToolOverride:
        """The settings for the server's tool ``tool`` (empty when none are given)."""
        return self.tools.get(tool) or ToolOverride()


def parse_mcp_server(path: Path, raw: dict[str, Any]) -> McpServer:
    """The MCP server a declaration file describes.

    Raises:
        ConfigError: a field is missing or invalid; the message names the file and field.
    """
    from bot.declared._load import validation_problems

    try:
        return McpServer.model_validate({"name": path.stem, **raw})
    except ValidationError as exc:
        raise validation_problems(path, exc) from None
