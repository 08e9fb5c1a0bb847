"""A model that plays decisions from a file: ``OPSLOOP_MODELS=scripted:/path/to/script.yaml``.

For trying a custom tool, a demo or an end-to-end check without an API key. The file
(JSON, or YAML for ``.yaml``/``.yml``) is a list of decisions::

    - tool: deploy
      arguments: {service: checkout, version: 1.4.3, environment: staging}
    - reply: "Deployed checkout 1.4.3 to staging."

Each decision is either ``tool`` (with optional ``arguments``) or ``reply``. They are played
in order **per thread**: a thread's n-th call of this script gets the n-th decision (calls
answered by another model, an admin's ``tools run`` say, do not count), whichever
process makes it (the count is read from the thread's own record, so a worker restart or a
decision taken elsewhere changes nothing). A thread that asks for more decisions than the
script holds gets a reply saying so. Every decision is validated and put to policy like a
real model's.

(The tests' :class:`~bot.model.testing.ScriptedModel` is one queue for the whole process
and fails when it runs out; a deployment needs every thread to play the script alike.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from bot.errors import ConfigError
from bot.events import CallTool, ModelCalled, Reply
from bot.model._base import Model, ModelRequest, ModelResponse

__all__ = ["ScriptFileModel", "load_script"]


class _Decision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str | None = Field(default=None, min_length=1, max_length=64)
    arguments: dict[str, JsonValue] | None = None
    reply: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> _Decision:
        if (self.tool is None) == (self.reply is None):
            raise ValueError("give either tool (with optional arguments) or reply")
        if self.reply is not None and self.arguments is not None:
            raise ValueError("arguments go with tool, not reply")
        return self

    def decision(self) -> CallTool | Reply:
        if self.tool is not None:
            return CallTool(tool=self.tool, arguments=self.arguments or {})
        assert self.reply is not None
        return Reply(text=self.reply)


def _parse(path: Path, text: str) -> Any:
    if path.suffix in {".yaml", ".yml"}:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"OPSLOOP_MODELS: {path} is not valid YAML: {exc}") from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"OPSLOOP_MODELS: {path} is not valid JSON: {exc}") from None
    raise ConfigError(f"OPSLOOP_MODELS: {path}: a script is a .json, .yaml or .yml file")


def load_script(path: Path) -> tuple[CallTool | Reply, ...]:
    """The decisions in the script file at ``path``.

    Raises:
        ConfigError: the file is missing, does not parse, or a decision is malformed
            (the message names the file and the decision's number).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"OPSLOOP_MODELS: cannot read the script {path}: {exc}") from None
    found = _parse(path, text)
    if not isinstance(found, list) or not found:
        raise ConfigError(f"OPSLOOP_MODELS: {path}: a script is a non-empty list of decisions")
    decisions = []
    for number, item in enumerate(found, start=1):
        try:
            decisions.append(_Decision.model_validate(item).decision())
        except ValidationError as exc:
            problem = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'decision'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise ConfigError(f"OPSLOOP_MODELS: {path}: decision {number}: {problem}") from None
    return tuple(decisions)


class ScriptFileModel(Model):
    """Decisions from a script, played in order within each thread."""

    provider = "scripted"

    def __init__(self, decisions: Sequence[CallTool | Reply], *, name: str = "script") -> None:
        """Play ``decisions``; ``name`` (the file's) is recorded as the model's name."""
        self.decisions = tuple(decisions)
        self.model_name = name

    @classmethod
    def from_file(cls, path: Path) -> ScriptFileModel:
        """The model for the script at ``path`` (see :func:`load_script`)."""
        return cls(load_script(path), name=path.name)

    async def request(self, request: ModelRequest) -> ModelResponse:
        """The decision for this thread's next model call."""
        played = sum(
            isinstance(e, ModelCalled) and (e.provider, e.model) == (self.provider, self.model_name)
            for e in request.events
        )
        if played < len(self.decisions):
            decision = self.decisions[played]
        else:
            decision = Reply(
                text=f"(scripted model: the script {self.model_name} has no decision left "
                f"for this thread; it holds {len(self.decisions)})"
            )
        return ModelResponse(decision=decision, provider=self.provider, model=self.model_name)
