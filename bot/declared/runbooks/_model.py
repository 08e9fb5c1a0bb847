"""The shape of a runbook file, and the arguments model built from its ``[arguments]``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    create_model,
    field_validator,
    model_validator,
)

from bot.declared._secrets import SECRET_PREFIX
from bot.declared.runbooks._template import ARGUMENT_NAME

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_LENGTH",
    "ArgumentSpec",
    "CommandAction",
    "HttpAction",
    "RunbookFile",
    "arguments_model",
]

DEFAULT_MAX_LENGTH = 256
"""Characters a string argument may have when the runbook does not say."""
DEFAULT_MAX_BYTES = 16 * 1024
"""Bytes of a response or of a command's output returned when the runbook does not say."""

Scalar = str | int | float | bool
_PYTHON_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ArgumentSpec(_Strict):
    """One argument of a runbook: its type and what values it accepts."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    """The JSON type the model must send."""
    description: str = ""
    """What it means, for the model."""
    required: bool | None = None
    """Whether the model must send it; default true, false when a default is given."""
    default: Scalar | None = None
    """The value when the model leaves it out."""
    pattern: str | None = None
    """A regular expression a string must match whole (as if between ``^`` and ``$``)."""
    enum: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    """The only values accepted."""
    min: int | float | None = None
    """The smallest number accepted."""
    max: int | float | None = None
    """The largest number accepted."""
    max_length: int | None = Field(default=None, ge=1, le=100_000)
    """The longest string accepted (default 256)."""

    @model_validator(mode="after")
    def _consistent(self) -> ArgumentSpec:
        numeric = self.type in ("integer", "number")
        limits = (self.pattern, self.max_length, self.min, self.max)
        if self.enum is not None and any(v is not None for v in limits):
            raise ValueError("an enum lists every value: drop pattern, max_length, min and max")
        if self.type != "string" and (self.pattern is not None or self.max_length is not None):
            raise ValueError("pattern and max_length are for strings")
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError("min and max are for integers and numbers")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from None
        if self.required and self.default is not None:
            raise ValueError("a required argument has no default")
        for value in (*(self.enum or ()), *([self.default] if self.default is not None else [])):
            if not _is_type(value, self.type):
                raise ValueError(f"{value!r} is not of type {self.type}")
        return self

    @property
    def is_required(self) -> bool:
        """Whether the model must send it."""
        return self.default is None if self.required is None else self.required


def _is_type(value: Any, kind: str) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _PYTHON_TYPES[kind])


class HttpAction(_Strict):
    """``[http]``: one HTTP request."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    """The request method."""
    url: str = Field(min_length=1)
    """A template; argument values in it are URL-quoted."""
    headers: dict[str, str] = {}
    """Header templates (``Authorization = "Bearer {secret.TOKEN}"``)."""
    json_body: JsonValue = Field(default=None, alias="json")
    """The JSON body; its string values are templates."""
    expect_status: tuple[int, ...] = Field(default=(), max_length=50)
    """Statuses that count as success; default any 2xx."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    """The whole request, redirects and body included, must finish within this."""
    returns: str = Field(default="auto", pattern=r"^(auto|status|text|json(:[^\s]+)?)$")
    """What the tool returns: ``auto``, ``status``, ``text``, ``json`` or ``json:a.b.0.c``."""
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, le=1 << 20)
    """Bytes of the body read at most; a longer text body is cut and marked so."""

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not _HEADER_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not header names: {bad}")
        return value

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 100 <= code <= 599 for code in value):
            raise ValueError("statuses are 100 to 599")
        return value


class CommandAction(_Strict):
    """``[command]``: one program run without a shell."""

    argv: tuple[str, ...] = Field(min_length=1)
    """The program and its arguments, each a template that becomes exactly one item."""
    cwd: str | None = None
    """The working directory; relative to the runbook's folder. Default: that folder."""
    pass_env: tuple[str, ...] = ("PATH",)
    """Variables passed through from opsloop's environment (nothing else is)."""
    env: dict[str, str] = {}
    """More variables, as templates (``KUBE_TOKEN = "{secret.KUBE_TOKEN}"``)."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    """After this the command's whole process group is killed."""
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, le=1 << 20)
    """Bytes of stdout, and of stderr, returned at most."""
    expect_exit: tuple[int, ...] = Field(default=(0,), min_length=1)
    """Exit codes that count as success."""

    @field_validator("pass_env")
    @classmethod
    def _passed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a variable name")
            if name.startswith(SECRET_PREFIX):
                secret = name.removeprefix(SECRET_PREFIX)
                raise ValueError(
                    f'{name}: pass a secret as env = {{ NAME = "{{secret.{secret}}}" }}, '
                    "so it is hidden from the output"
                )
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not _ENV_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not variable names: {bad}")
        return value


class RunbookFile(_Strict):
    """A runbook file: a tool declared as data."""

    kind: Literal["runbook"]
    """Always ``runbook``."""
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """The tool's name (default: the file's name without its suffix)."""
    description: str = Field(min_length=1, max_length=2000)
    """What it does and when to use it, for the model."""
    tier: Literal["read", "write"] = "write"
    """``write`` (the default) changes something, so policy decides who approves it."""
    touches: tuple[str, ...] | dict[str, str] = ()
    """Policy attributes: argument names whose values they are (``["environment"]``), or a
    table of attribute templates (``{environment = "production", service = "{service}"}``)."""
    agents: tuple[str, ...] = ()
    """Existing agents this tool is added to."""
    arguments: dict[str, ArgumentSpec] = {}
    """The arguments, by name."""
    vars: dict[str, str] = {}
    """Defaults of ``{var.NAME}`` settings (``OPSLOOP_VAR_NAME`` overrides each)."""
    http: HttpAction | None = None
    """The request it makes, or"""
    command: CommandAction | None = None
    """the command it runs."""

    @field_validator("arguments")
    @classmethod
    def _argument_names(cls, value: dict[str, ArgumentSpec]) -> dict[str, ArgumentSpec]:
        for name in value:
            if not ARGUMENT_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: a name is a letter, then letters, digits or '_'")
            if name.startswith("model_") or hasattr(BaseModel, name):
                raise ValueError(f"{name!r} is reserved; choose another name")
        return value

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", name)]
        if bad:
            raise ValueError(f"a setting's name is in capitals (A-Z, 0-9, _), not {bad}")
        return value

    @model_validator(mode="after")
    def _one_action(self) -> RunbookFile:
        if (self.http is None) == (self.command is None):
            raise ValueError("give exactly one action: an [http] table or a [command] table")
        return self


def _typed(kind: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not _is_type(value, kind):
            raise ValueError(f"must be of type {kind}")
        return value

    return check


def _whole(pattern: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if compiled.fullmatch(value) is None:
            raise ValueError(f"must match the pattern {pattern!r} (whole value)")
        return value

    return AfterValidator(check)


def arguments_model(tool: str, specs: dict[str, ArgumentSpec]) -> type[BaseModel]:
    """The pydantic model of a runbook's arguments: strict types, no extra fields."""
    fields: dict[str, Any] = {}
    for name, spec in specs.items():
        kind: Any = _PYTHON_TYPES[spec.type]
        extra: dict[str, Any] = {}
        if spec.enum is not None:  # Literal alone would take True for 1, and 1.0
            kind = Annotated[Literal[spec.enum], BeforeValidator(_typed(spec.type))]
        else:
            extra["strict"] = True
        if spec.type == "string" and spec.enum is None:
            extra["max_length"] = spec.max_length or DEFAULT_MAX_LENGTH
        if spec.pattern is not None:
            kind = Annotated[kind, _whole(spec.pattern)]
            extra["json_schema_extra"] = {"pattern": f"^(?:{spec.pattern})$"}
        field = Field(
            spec.default if not spec.is_required else ...,
            description=spec.description or None,
            ge=spec.min,
            le=spec.max,
            **extra,
        )
        optional = not spec.is_required and spec.default is None
        fields[name] = (kind | None if optional else kind, field)
    title = "".join(part.capitalize() for part in re.split(r"[-_]", tool)) + "Arguments"
    model: type[BaseModel] = create_model(
        title, __config__=ConfigDict(extra="forbid", frozen=True), **fields
    )
    return model
