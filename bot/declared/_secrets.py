"""Secrets in declarations: ``{secret.NAME}`` in a value, filled from ``OPSLOOP_SECRET_NAME``.

A declaration file never holds a secret itself, only where to find one. The value is read
from the environment when it is used (a connection opened, a request sent), so a file can
be checked, shown and committed without one; a missing secret names the variable to set,
never a value. Runbooks and MCP servers share this one convention.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from bot.errors import ConfigError

__all__ = ["SECRET_PREFIX", "fill_secrets", "secret_names", "secret_variable"]

SECRET_PREFIX = "OPSLOOP_SECRET_"
"""Environment variables holding secrets start with this."""

_TEMPLATE = re.compile(r"\{secret\.([A-Za-z0-9_]{1,64})\}")


def secret_variable(name: str) -> str:
    """The environment variable holding secret ``name`` (``token`` -> ``OPSLOOP_SECRET_TOKEN``)."""
    return SECRET_PREFIX + name.upper()


def secret_names(text: str) -> tuple[str, ...]:
    """The secrets ``text`` refers to, in order, each once."""
    return tuple(dict.fromkeys(_TEMPLATE.findall(text)))


def fill_secrets(text: str, *, where: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every ``{secret.NAME}`` replaced by the secret's value.

    Args:
        text: A declared value, such as ``"Bearer {secret.github_token}"``.
        where: What the value is, for the error (``"mcp/git.toml: headers.Authorization"``).
        environ: Where secrets are read from (the process environment by default).

    Raises:
        ConfigError: a secret is not set; the message names the variable, not a value.
    """
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        variable = secret_variable(match[1])
        found = env.get(variable)
        if found is None:
            raise ConfigError(f"{where}: secret {match[1]!r} is not set (set {variable})")
        return found

    return _TEMPLATE.sub(value, text)
