"""Runbooks: tools declared as data, an HTTP request or a command, without Python.

A runbook file (``kind = "runbook"`` in ``OPSLOOP_TOOLS_DIR``) names the tool, describes
it, declares typed arguments and one action, ``[http]`` or ``[command]``. Arguments are
validated before anything runs; templates fill in ``{argument}``, ``{secret.NAME}``
(``OPSLOOP_SECRET_NAME``) and ``{var.NAME}`` (``OPSLOOP_VAR_NAME``) values; secrets are
hidden (``***``) in everything the tool returns or raises. Runbooks are ``write`` tier
unless they say ``tier = "read"``, so policy asks a human before one runs by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, JsonValue, ValidationError

from bot.declared._load import validation_problems
from bot.declared._secrets import SECRET_PREFIX, VAR_PREFIX, Lookups
from bot.declared.runbooks._command import CommandPlan, run_command
from bot.declared.runbooks._http import HttpPlan, run_http
from bot.declared.runbooks._model import ArgumentSpec, RunbookFile, arguments_model
from bot.declared.runbooks._template import Slot, Template, as_text
from bot.errors import ConfigError, ToolError
from bot.tools import Tool, ToolContext

__all__ = ["SECRET_PREFIX", "VAR_PREFIX", "parse_runbook"]


class _Parser:
    """Parses one file's templates, naming the file and field in every error."""

    def __init__(self, path: Path, spec: RunbookFile) -> None:
        self.path = path
        self.arguments = spec.arguments
        self.templates: list[Template] = []

    def __call__(self, field: str, text: str, *, args: bool = True) -> Template:
        try:
            template = Template.parse(text, self.arguments if args else ())
        except ValueError as exc:
            raise ConfigError(f"{self.path}: {field}: {exc}") from None
        self.templates.append(template)
        return template

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {field}: {problem}")

    def body(self, field: str, value: Any) -> Any:
        if isinstance(value, str):
            return self(field, value)
        if isinstance(value, list):
            return [self.body(f"{field}.{i}", item) for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.body(f"{field}.{k}", item) for k, item in value.items()}
        return value


def _http(parse: _Parser, spec: RunbookFile) -> HttpPlan:
    assert spec.http is not None
    url = parse("http.url", spec.http.url)
    if url.slots("secret"):
        raise parse.fail(
            "http.url", "a secret may not be in the URL (URLs are logged); send it in a header"
        )
    before = ""
    for part in url.parts:
        if isinstance(part, str):
            before += part
        elif part.kind == "var":
            before += "\0"
        elif not any(c in before.split("://", 1)[-1] for c in "/?#"):
            raise parse.fail(
                "http.url",
                f"{part} would choose the host; put arguments after the host's first '/' "
                "(use {var.NAME} for a configurable base URL)",
            )
    headers = {k: parse(f"http.headers.{k}", v) for k, v in spec.http.headers.items()}
    return HttpPlan(spec.http, url, headers, parse.body("http.json", spec.http.json_body))


def _command(parse: _Parser, spec: RunbookFile) -> CommandPlan:
    assert spec.command is not None
    argv = tuple(parse(f"command.argv.{i}", a) for i, a in enumerate(spec.command.argv))
    if argv[0].slots("arg"):
        raise parse.fail("command.argv.0", "the program may not come from an argument")
    for i, template in enumerate(argv):
        if template.slots("secret"):
            raise parse.fail(
                f"command.argv.{i}",
                "a secret may not be in argv (anyone on the host can read a command line); "
                'pass it in env: env = { TOKEN = "{secret.NAME}" }',
            )
    for i, template in enumerate(argv):
        first = template.parts[0] if template.parts else None
        if not isinstance(first, Slot) or first.kind != "arg":
            continue
        arg = spec.arguments[first.name]
        if arg.type == "string" and arg.pattern is None and arg.enum is None:
            raise parse.fail(
                f"command.argv.{i}",
                f"{first} starts an argument, so its value could make it an option "
                f"('--kubeconfig=…'); give arguments.{first.name} a pattern or an enum",
            )
    env = {k: parse(f"command.env.{k}", v) for k, v in spec.command.env.items()}
    return CommandPlan(spec.command, argv, env, parse.path.parent / (spec.command.cwd or "."))


def _risk(
    parse: _Parser, spec: RunbookFile
) -> tuple[Callable[[Any], Mapping[str, str]] | None, tuple[str, ...]]:
    if isinstance(spec.touches, tuple):
        unknown = [name for name in spec.touches if name not in spec.arguments]
        if unknown:
            raise parse.fail("touches", f"names no argument: {', '.join(unknown)}")
        names = spec.touches

        def by_name(args: Any) -> dict[str, str]:
            values = args.model_dump()
            return {name: as_text(values[name]) for name in names if values[name] is not None}

        return (by_name if names else None), names
    attributes = {k: parse(f"touches.{k}", v) for k, v in spec.touches.items()}
    for key, template in attributes.items():
        if template.slots("secret") or template.slots("var"):
            raise parse.fail(f"touches.{key}", "attributes come from arguments and text only")

    def by_template(args: Any) -> dict[str, str]:
        values = args.model_dump()
        return {
            key: template.render(values, Lookups({}, {}))
            for key, template in attributes.items()
            if all(values[name] is not None for name in template.slots("arg"))
        }

    return (by_template if attributes else None), tuple(attributes)


def parse_runbook(path: Path, raw: dict[str, Any]) -> tuple[Tool, tuple[str, ...]]:
    """The tool a runbook file declares, and the agents it is added to.

    Raises:
        ConfigError: the file is invalid; the message names the file and each bad field.
    """
    try:
        spec = RunbookFile.model_validate({"name": path.stem, **raw})
    except ValidationError as exc:
        raise validation_problems(path, exc) from None
    parse = _Parser(path, spec)
    plan = _http(parse, spec) if spec.http is not None else _command(parse, spec)
    risk, declares = _risk(parse, spec)
    secrets = sorted({n for t in parse.templates for n in t.slots("secret")})
    variables = sorted({n for t in parse.templates for n in t.slots("var")})
    defaults = dict(spec.vars)
    name = spec.name

    async def run(ctx: ToolContext, args: BaseModel) -> JsonValue:
        lookups = Lookups.read(secrets, variables, defaults)
        values = args.model_dump()
        try:
            if isinstance(plan, HttpPlan):
                result: Any = await run_http(plan, values, lookups, ctx.idempotency_key)
            else:
                result = await run_command(plan, values, lookups, ctx.idempotency_key)
            output: JsonValue = lookups.scrub_json(result)
            return output
        except ToolError as exc:
            failure = lookups.scrub(str(exc))
        except Exception as exc:  # anything else, scrubbed the same way, never re-raised
            failure = lookups.scrub(f"{name}: {type(exc).__name__}: {exc}")
        raise ToolError(failure)  # outside the except: the original is not its context

    return (
        Tool(
            name=name,
            description=spec.description,
            args=_arguments(path, name, spec.arguments),
            fn=run,
            tier=spec.tier,
            repeatable=spec.tier == "read",  # the far side may not honour Idempotency-Key
            risk=risk,
            declares=declares,
            source="runbook",
            origin=path.name,
            untrusted_output=True,
        ),
        spec.agents,
    )


def _arguments(path: Path, name: str, specs: dict[str, ArgumentSpec]) -> type[BaseModel]:
    model = arguments_model(name, specs)
    defaults = {k: s.default for k, s in specs.items() if s.default is not None}
    try:  # a default is checked against its own constraints now, not at the first call
        model.model_validate(defaults)
    except ValidationError as exc:
        bad = [e for e in exc.errors() if e["type"] != "missing"]
        if bad:
            where = ", ".join(f"arguments.{e['loc'][0]}.default" for e in bad)
            raise ConfigError(f"{path}: {where}: {bad[0]['msg']}") from None
    return model
