"""Secrets in declarations: ``{secret.NAME}`` in a value, filled from ``OPSLOOP_SECRET_NAME``.

A declaration file never holds a secret itself, only where to find one. The value is read
from the environment when it is used (a connection opened, a request sent), so a file can
be checked, shown and committed without one; a missing or empty secret names the variable
to set, never a value. ``NAME`` is written in capitals, as the variable is. Runbooks and MCP
servers share this one convention, and :class:`Lookups` hides the values again in whatever
the far side sends back: a secret's value, and its URL-quoted and JSON-escaped forms, is
replaced by ``***``. Runbooks also read plain settings, ``{var.NAME}`` from
``OPSLOOP_VAR_NAME``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from bot.errors import ConfigError, ToolError

__all__ = [
    "MASK",
    "SECRET_NAME",
    "SECRET_PREFIX",
    "VAR_PREFIX",
    "Lookups",
    "fill_secrets",
    "secret_names",
    "secret_problem",
    "secret_variable",
]

SECRET_PREFIX = "OPSLOOP_SECRET_"
"""Environment variables holding secrets start with this."""
SECRET_NAME = r"[A-Z][A-Z0-9_]{0,63}"
"""A secret's (or a setting's) name: capitals, as its environment variable is written."""

_TEMPLATE = re.compile(r"\{secret\.(" + SECRET_NAME + r")\}")
_ANY = re.compile(r"\{secret\.([^}]*)\}")


def secret_variable(name: str) -> str:
    """The environment variable holding secret ``name`` (``TOKEN`` -> ``OPSLOOP_SECRET_TOKEN``)."""
    return SECRET_PREFIX + name


def secret_names(texts: Iterable[str]) -> tuple[str, ...]:
    """The secrets ``texts`` refer to, in order, each once."""
    return tuple(dict.fromkeys(n for text in texts for n in _TEMPLATE.findall(text)))


def secret_problem(text: str) -> str | None:
    """Why a ``{secret.…}`` in ``text`` names no secret, or ``None`` when all do."""
    for name in _ANY.findall(text):
        if not re.fullmatch(SECRET_NAME, name):
            return (
                f"{{secret.{name}}}: write a secret's name in capitals, {{secret.{name.upper()}}}"
            )
    return None


def fill_secrets(text: str, *, where: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every ``{secret.NAME}`` replaced by the secret's value.

    Args:
        text: A declared value, such as ``"Bearer {secret.GITHUB_TOKEN}"``.
        where: What the value is, for the error (``"mcp/git.toml: headers.Authorization"``).
        environ: Where secrets are read from (the process environment by default).

    Raises:
        ConfigError: a secret is not set or empty; the message names the variable, not a value.
    """
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        variable = secret_variable(match[1])
        found = env.get(variable)
        if not found:
            raise ConfigError(f"{where}: secret {match[1]!r} is not set (set {variable})")
        return found

    return _TEMPLATE.sub(value, text)


VAR_PREFIX = "OPSLOOP_VAR_"
"""``{var.NAME}`` reads the environment variable ``OPSLOOP_VAR_NAME``."""
MASK = "***"
"""What a secret is replaced with."""


def _forms(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


class Lookups:
    """The secrets and settings of one call, and a scrubber that hides the secrets."""

    def __init__(self, secrets: Mapping[str, str], variables: Mapping[str, str]) -> None:
        """Hold ``secrets`` and ``variables`` (by name, without their prefix)."""
        self._secrets = dict(secrets)
        self._vars = dict(variables)
        forms = {f for value in self._secrets.values() for f in _forms(value) if f}
        self._needles = sorted(forms, key=len, reverse=True)
        self._byte_needles = [n.encode() for n in self._needles]

    @classmethod
    def read(
        cls,
        secrets: Collection[str],
        variables: Collection[str],
        defaults: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Lookups:
        """Read the named secrets and settings from the environment.

        A setting unset in the environment takes its value from ``defaults`` (a runbook's
        ``[vars]``); a secret has no default.

        Raises:
            ToolError: one is unset or empty; the message names the variables, never a value.
        """
        env = os.environ if environ is None else environ
        fallback = {VAR_PREFIX + n: v for n, v in (defaults or {}).items()}

        def get(name: str) -> str:
            return env.get(name) or fallback.get(name) or ""

        wanted = [SECRET_PREFIX + n for n in secrets] + [VAR_PREFIX + n for n in variables]
        missing = [name for name in wanted if not get(name)]
        if missing:
            raise ToolError(f"not configured: set {', '.join(missing)} in opsloop's environment")
        return cls(
            {n: get(SECRET_PREFIX + n) for n in secrets},
            {n: get(VAR_PREFIX + n) for n in variables},
        )

    def secret(self, name: str) -> str:
        """The secret ``name`` (read by :meth:`read`)."""
        return self._secrets[name]

    def var(self, name: str) -> str:
        """The setting ``name`` (read by :meth:`read`)."""
        return self._vars[name]

    @property
    def margin(self) -> int:
        """Bytes to read past a cap so a secret straddling it can still be recognised."""
        return max((len(n) for n in self._byte_needles), default=0)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for needle in self._needles:
            text = text.replace(needle, MASK)
        return text

    def scrub_json(self, value: Any) -> Any:
        """``value`` (JSON) with every secret in its strings and keys replaced by ``***``."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_json(v) for k, v in value.items()}
        return value

    def capped(self, data: bytes, cap: int, *, more: bool = False) -> tuple[str, bool]:
        """At most ``cap`` bytes of ``data`` as text, scrubbed, and whether any was cut.

        The cut never falls inside a secret (it moves back to where the secret starts), so
        no prefix of one survives. ``data`` should hold :attr:`margin` bytes past ``cap``
        when there are that many; ``more`` says there were bytes after ``data``.
        """
        cut = min(len(data), cap)
        moved = True
        while moved:
            moved = False
            for needle in self._byte_needles:
                start = data.find(needle, max(0, cut - len(needle) + 1))
                if 0 <= start < cut < start + len(needle):
                    cut, moved = start, True
        text = data[:cut].decode("utf-8", errors="replace")
        return self.scrub(text), more or cut < len(data)
