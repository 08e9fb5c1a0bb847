"""Prompts are files: templates in ``prompts/``, each call recording its content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

from bot.errors import ConfigError

__all__ = ["DEFAULT_PROMPTS_DIR", "Prompt", "PromptLibrary"]

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@dataclass(frozen=True)
class Prompt:
    """One prompt template and the hash of its content."""

    name: str
    """The file's stem."""
    template: str
    """The text, with ``$name`` placeholders."""
    sha256: str
    """Hash of the content: ties every model call to a prompt version."""

    def render(self, **values: str) -> str:
        """Fill the placeholders; unknown placeholders are an error, not silence."""
        try:
            return Template(self.template).substitute(values)
        except KeyError as exc:
            raise ConfigError(f"prompt {self.name}: no value for placeholder {exc}") from None
        except ValueError as exc:
            # A stray "$" (write "$$" for a literal dollar sign).
            raise ConfigError(f"prompt {self.name}: {exc}; write $$ for a literal $") from None


class PromptLibrary:
    """Loads prompt templates from a directory, once each."""

    def __init__(self, directory: Path | None = None) -> None:
        """Read from ``directory`` (the bundled ``prompts/`` by default)."""
        self.directory = directory or DEFAULT_PROMPTS_DIR
        self.get = cache(self._load)

    def _load(self, name: str) -> Prompt:
        path = self.directory / f"{name}.md"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"prompt {name!r}: cannot read {path}: {exc.strerror}") from None
        return Prompt(name=name, template=text, sha256=hashlib.sha256(text.encode()).hexdigest())
