"""``{name}`` templates: the only substitution a runbook does.

A template is text with placeholders: ``{argument}`` (a validated argument of the call),
``{secret.NAME}`` (the environment variable ``OPSLOOP_SECRET_NAME``, redacted from
everything the tool returns or raises) and ``{var.NAME}`` (``OPSLOOP_VAR_NAME``, plain
configuration such as a base URL). ``{{`` and ``}}`` are literal braces. Nothing else is a
placeholder: no attribute access, indexing or format specs, because nothing here uses
``str.format`` on values that came from a model.

Templates are checked when the runbook is loaded: a placeholder naming no declared
argument is an error then, not at the first call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.declared._secrets import SECRET_NAME

__all__ = ["ARGUMENT_NAME", "Lookup", "Slot", "Template", "as_text"]

ARGUMENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
"""What an argument may be called (and so what ``{name}`` may name)."""

_SETTING = re.compile(r"^(secret|var)\.(" + SECRET_NAME + ")$")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class Lookup(Protocol):
    """Where ``{secret.NAME}`` and ``{var.NAME}`` values come from at call time."""

    def secret(self, name: str) -> str:
        """The secret ``name``."""
        ...

    def var(self, name: str) -> str:
        """The setting ``name``."""
        ...


@dataclass(frozen=True)
class Slot:
    """One placeholder."""

    kind: Literal["arg", "secret", "var"]
    """An argument, a secret or a plain setting."""
    name: str
    """The argument's or setting's name."""

    def __str__(self) -> str:
        return "{" + (self.name if self.kind == "arg" else f"{self.kind}.{self.name}") + "}"


def as_text(value: Any) -> str:
    """An argument's value as text: strings as they are, other values as JSON writes them."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Template:
    """A parsed template."""

    parts: tuple[str | Slot, ...]
    """Literal text and placeholders, in order."""

    @classmethod
    def parse(cls, text: str, arguments: Collection[str]) -> Template:
        """Parse ``text``, whose ``{name}`` placeholders must name one of ``arguments``.

        Raises:
            ValueError: a lone brace, an unknown argument, or something that is not a
                placeholder (``{a.b}``, ``{a!r}``, ``{a:>9}``).
        """
        parts: list[str | Slot] = []
        literal: list[str] = []
        pos = 0
        for match in _TOKEN.finditer(text):
            literal.append(text[pos : match.start()])
            pos = match.end()
            token, inner = match.group(0), match.group(1)
            if token in ("{{", "}}"):
                literal.append(token[0])
                continue
            if inner is None:
                raise ValueError(f"a lone {token!r}; write {token * 2} for a literal brace")
            if "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(_slot(inner, arguments))
        literal.append(text[pos:])
        if "".join(literal):
            parts.append("".join(literal))
        return cls(tuple(parts))

    def slots(self, kind: str) -> tuple[str, ...]:
        """The names of the placeholders of one kind (``arg``, ``secret`` or ``var``)."""
        return tuple(p.name for p in self.parts if isinstance(p, Slot) and p.kind == kind)

    @property
    def whole(self) -> Slot | None:
        """The placeholder, when the template is exactly one placeholder."""
        only = self.parts[0] if len(self.parts) == 1 else None
        return only if isinstance(only, Slot) else None

    def render(
        self,
        values: Mapping[str, Any],
        lookup: Lookup,
        encode: Callable[[str], str] | None = None,
    ) -> str:
        """The text, with ``encode`` applied to argument values only (URL quoting)."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.kind == "secret":
                out.append(lookup.secret(part.name))
            elif part.kind == "var":
                out.append(lookup.var(part.name))
            else:
                text = as_text(values.get(part.name))
                out.append(encode(text) if encode else text)
        return "".join(out)

    def value(self, values: Mapping[str, Any], lookup: Lookup) -> Any:
        """Like :meth:`render`, but a lone ``{argument}`` keeps its JSON type.

        ``"{replicas}"`` stays an integer; an unset optional argument is ``null``.
        """
        whole = self.whole
        if whole is not None and whole.kind == "arg":
            return values.get(whole.name)
        return self.render(values, lookup)


def _slot(inner: str, arguments: Collection[str]) -> Slot:
    setting = _SETTING.fullmatch(inner)
    if setting:
        return Slot("secret" if setting[1] == "secret" else "var", setting[2])
    if ARGUMENT_NAME.fullmatch(inner):
        if inner not in arguments:
            known = ", ".join(sorted(arguments)) or "none"
            raise ValueError(f"{{{inner}}} names no argument (arguments: {known})")
        return Slot("arg", inner)
    raise ValueError(
        f"{{{inner}}} is not a placeholder: write {{argument}}, {{secret.NAME}} or "
        "{var.NAME} (NAME in capitals), with nothing else inside the braces"
    )
