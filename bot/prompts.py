"""Prompts are files: templates in ``prompts/``, each call recording its content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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
    """Loads prompt templates along a search path, once each.

    The first directory holding ``<name>.md`` wins: plugins' prompt folders, then the team's
    folder (``OPSLOOP_PROMPTS_DIR``), then the bundled ``prompts/``. Adding an agent means
    adding its prompt, never copying the shipped ones.
    """

    def __init__(self, directory: Path | Sequence[Path] | None = None) -> None:
        """Read from ``directory``: one folder or a search path, the bundled one last."""
        if directory is None:
            found: list[Path] = []
        elif isinstance(directory, Path):
            found = [directory]
        else:
            found = list(directory)
        self.path: tuple[Path, ...] = tuple(
            dict.fromkeys(p.resolve() for p in [*found, DEFAULT_PROMPTS_DIR])
        )
        self.get = cache(self._load)

    @property
    def directory(self) -> Path:
        """The first directory searched."""
        return self.path[0]

    def where(self, name: str) -> Path | None:
        """The file ``name`` is read from, or ``None`` when no directory has it."""
        return next((d / f"{name}.md" for d in self.path if (d / f"{name}.md").is_file()), None)

    def _load(self, name: str) -> Prompt:
        path = self.where(name)
        if path is None:
            searched = ", ".join(str(d) for d in self.path)
            raise ConfigError(f"prompt {name!r}: no {name}.md in {searched}")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"prompt {name!r}: cannot read {path}: {exc.strerror}") from None
        return Prompt(name=name, template=text, sha256=hashlib.sha256(text.encode()).hexdigest())
