"""The Dockerfile and docker-compose.yml agree with the code they run.

Docker is not needed: the files are parsed, and every command in them is checked against
the real ``opsloop`` CLI, every setting against the real settings, the health check against
the real HTTP app.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import typer
import yaml
from typer.core import TyperGroup
from typer.testing import CliRunner

from bot.api import create_app
from bot.cli import app as cli_app
from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "api", "worker", "beat")


COMPOSE_SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"


class ComposeLoader(yaml.SafeLoader):
    """YAML read the way Docker Compose reads it (Go's yaml.v3), not PyYAML's lenient way.

    A key repeated in one mapping is an error (PyYAML silently keeps the last one); keys
    that come in through a ``<<`` merge may be overridden, as YAML allows. Booleans are
    YAML 1.2's ``true``/``false`` only, so ``restart: no`` stays the string Compose sees.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"mapping key {key!r} already defined at line {seen[key].start_mark.line + 1}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


ComposeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ComposeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_compose(text: str) -> dict[str, Any]:
    """Parse a compose file strictly and validate it against the Compose specification.

    Raises:
        yaml.YAMLError: the YAML is invalid or repeats a key.
        jsonschema.ValidationError: the file is not a valid Compose file.
    """
    data = yaml.load(text, Loader=ComposeLoader)  # a SafeLoader subclass: no arbitrary objects
    validator = jsonschema.Draft202012Validator(json.loads(COMPOSE_SCHEMA.read_text("utf-8")))
    # Compose validates JSON: the round trip turns anything JSON has no type for into an error.
    validator.validate(json.loads(json.dumps(data)))
    assert isinstance(data, dict)
    return data


def compose() -> dict[str, Any]:
    return load_compose((ROOT / "docker-compose.yml").read_text("utf-8"))


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def dockerfile_cmd() -> list[str]:
    cmds = [rest for instruction, rest in dockerfile_instructions() if instruction == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    command = json.loads(cmds[-1])  # exec form: JSON, so no shell sits between
    assert isinstance(command, list)
    return command


def dockerfile_env() -> dict[str, str]:
    """The ENV of the final stage."""
    stages: list[dict[str, str]] = []
    for instruction, rest in dockerfile_instructions():
        if instruction == "FROM":
            stages.append({})
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                stages[-1][name] = value
    return stages[-1]


def opsloop_commands() -> dict[str, list[str]]:
    """Every command that runs ``opsloop``, by where it is written."""
    commands = {"Dockerfile CMD": dockerfile_cmd()}
    for name, service in services().items():
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if command and command[0] == "opsloop":
            commands[f"compose service {name}"] = command
    return commands


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text("utf-8")
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def setting_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.add(alias.choices[0] if hasattr(alias, "choices") else str(alias))
    return names


def looks_like_a_setting(name: str) -> bool:
    return name.startswith("OPSLOOP_") or name in setting_names()


# ---------------------------------------------------------------- commands


def test_every_app_service_runs_opsloop() -> None:
    commands = opsloop_commands()
    assert {f"compose service {name}" for name in APP_SERVICES} <= commands.keys()


@pytest.mark.parametrize("where", sorted(opsloop_commands()))
def test_command_is_a_real_cli_command(where: str) -> None:
    args = opsloop_commands()[where][1:]
    result = CliRunner().invoke(cli_app, [*args, "--help"])
    # Click exits 2 for an unknown command or option, before it gets to --help.
    assert result.exit_code == 0, f"{where}: opsloop {shlex.join(args)}\n{result.output}"
    assert "Usage: opsloop" in result.output


def parse(args: list[str]) -> None:
    """Parse ``opsloop ARGS`` as the CLI would, converting values, without running it.

    Raises:
        LookupError: there is no such command.
        typer.TyperException: the options or their values are wrong (Click's usage errors).
    """
    command = typer.main.get_command(cli_app)
    ctx: typer.Context | None = None
    name = "opsloop"
    while isinstance(command, TyperGroup) and args and not args[0].startswith("-"):
        ctx = typer.Context(command, info_name=name, parent=ctx)
        name, args = args[0], args[1:]
        found = command.get_command(ctx, name)
        if found is None:
            raise LookupError(f"no command {name!r}")
        command = found
    command.make_context(name, list(args), parent=ctx)


@pytest.mark.parametrize("where", sorted(opsloop_commands()))
def test_command_arguments_parse(where: str) -> None:
    """Values are converted and range-checked too (``--help`` stops before that)."""
    args = opsloop_commands()[where][1:]
    try:
        parse(args)
    except (LookupError, typer.TyperException) as exc:
        pytest.fail(f"{where}: opsloop {shlex.join(args)}: {exc}")


def test_a_wrong_command_would_be_caught() -> None:
    # The two checks above are only worth something if they fail for a wrong command.
    runner = CliRunner()
    assert runner.invoke(cli_app, ["worker", "--threads", "2", "--help"]).exit_code == 2
    assert runner.invoke(cli_app, ["gateway-nonexistent", "--help"]).exit_code == 2
    with pytest.raises(typer.BadParameter, match="greater than or equal to 1"):
        parse(["worker", "--concurrency", "0"])
    with pytest.raises(typer.TyperException, match="No such option"):
        parse(["beat", "--concurrency", "2"])
    with pytest.raises(LookupError, match="nonexistent"):
        parse(["threads", "nonexistent"])
    parse(["threads", "list", "--status", "paused"])
    with pytest.raises(typer.BadParameter):
        parse(["threads", "list", "--status", "sleeping"])


def test_image_default_command_serves_the_api() -> None:
    assert dockerfile_cmd() == ["opsloop", "api"]
    assert services()["api"]["command"] == ["opsloop", "api"]


# ---------------------------------------------------------------- ordering and health


def test_migrate_runs_once_before_everything_that_uses_the_database() -> None:
    found = services()
    migrate = found["migrate"]
    assert migrate["command"] == ["opsloop", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "beat"):
        depends = found[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_services_waited_on_as_healthy_have_a_health_check() -> None:
    found = services()
    for name, service in found.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in found, f"{name} depends on unknown service {needed}"
            if how["condition"] == "service_healthy":
                assert "healthcheck" in found[needed], f"{name} waits for {needed} healthy"
    assert "pg_isready" in " ".join(found["postgres"]["healthcheck"]["test"])
    assert found["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_api_health_check_hits_a_real_route_on_the_served_port(tmp_path: Path) -> None:
    api = services()["api"]
    test = api["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", "the slim image has python, not curl"
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(test))
    assert len(urls) == 1, test
    url = urlsplit(urls[0])
    app = create_app(load_settings(OPSLOOP_HOME=str(tmp_path)), plugins=())
    assert url.path in {getattr(route, "path", None) for route in app.routes}
    # The port it asks is the one the API binds, publishes and the image exposes.
    bind = api["environment"]["OPSLOOP_BIND"]
    assert bind == dockerfile_env()["OPSLOOP_BIND"] == "0.0.0.0:8000"
    port = bind.rpartition(":")[2]
    assert str(url.port) == port
    assert any(str(p).endswith(f":{port}") for p in api["ports"])
    exposed = [rest for instruction, rest in dockerfile_instructions() if instruction == "EXPOSE"]
    assert exposed == [port]


# ---------------------------------------------------------------- settings


def compose_env(service: str) -> dict[str, str]:
    environment = services()[service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {name: str(value) for name, value in environment.items()}


def test_every_compose_variable_and_setting_is_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text("utf-8")
    variables = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert "OPSLOOP_API_TOKEN" in variables
    names = variables | {name for service in APP_SERVICES for name in compose_env(service)}
    missing = {name for name in names if looks_like_a_setting(name)} - env_example_names()
    assert missing == set()


def test_every_opsloop_setting_in_the_image_is_in_env_example() -> None:
    env = dockerfile_env()
    assert env["OPSLOOP_HOME"] == "/data"
    assert env["PATH"].startswith("/app/.venv/bin:")
    missing = {name for name in env if looks_like_a_setting(name)} - env_example_names()
    assert missing == set()


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_settings_are_valid(service: str, tmp_path: Path) -> None:
    """What each service gets (image ENV, then compose's environment) passes start-up checks."""
    env = {
        name: value
        for name, value in (dockerfile_env() | compose_env(service)).items()
        if looks_like_a_setting(name)
    }
    # Interpolated values: a stand-in of the right shape.
    env = {name: re.sub(r"\$\{[^}]*\}", "x" * 32, value) for name, value in env.items()}
    assert env["OPSLOOP_HOME"] == "/data"
    settings = load_settings(**(env | {"OPSLOOP_HOME": str(tmp_path)}))
    assert settings.database.startswith("postgresql+psycopg://")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.api_token is not None
    assert settings.bind == "0.0.0.0:8000"


def test_app_services_share_one_definition() -> None:
    found = services()
    shared = compose()["x-opsloop"]
    for name in APP_SERVICES:
        service = found[name]
        assert service["image"] == shared["image"], name
        assert service["environment"] == shared["environment"], name
        assert service["env_file"] == [{"path": ".env", "required": False}], name


# ---------------------------------------------------------------- the image


def test_image_contains_every_package_of_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = set(wheel["packages"]) | set(wheel.get("force-include", {}))
    copied = {
        shlex.split(rest)[0].rstrip("/")
        for instruction, rest in dockerfile_instructions()
        if instruction == "COPY" and not rest.startswith("--from")
    }
    assert needed - copied == set()


def test_image_installs_the_locked_runtime_dependencies_as_a_user() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(rest for instruction, rest in instructions if instruction == "RUN")
    assert re.search(r"pip install \"?uv==", runs), "uv comes from PyPI, pinned"
    assert "uv sync --locked --no-dev" in runs
    assert "curl" not in runs and "wget" not in runs
    froms = [rest for instruction, rest in instructions if instruction == "FROM"]
    args = dict(rest.split("=", 1) for instruction, rest in instructions if instruction == "ARG")
    assert all(f.split()[0] in {"${PYTHON_IMAGE}", "python:3.11-slim"} for f in froms)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    users = [rest for instruction, rest in instructions if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    volumes = [rest for instruction, rest in instructions if instruction == "VOLUME"]
    assert json.loads(volumes[-1]) == [dockerfile_env()["OPSLOOP_HOME"]]


def test_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "*.db", "**/__pycache__", ".pytest_cache"} <= ignored
    # Everything the build copies is left in.
    assert not {"bot", "pyproject.toml", "uv.lock", "README.md"} & ignored


# ---------------------------------------------------------------- read as Compose reads it


def test_compose_file_is_valid_for_compose() -> None:
    """Regression: the file had two top-level ``services:`` and two ``volumes:`` keys.

    Compose refuses such a file; PyYAML kept the second copy, which had no ``gateway``.
    """
    data = compose()
    assert {"postgres", "redis", "migrate", "api", "worker", "beat", "gateway"} <= set(
        data["services"]
    )
    assert set(data["volumes"]) == {"postgres-data", "redis-data", "opsloop-data"}


def test_strict_loading_refuses_what_compose_refuses() -> None:
    # A repeated key, at the top or deeper, is an error; a key merged in by `<<` is not.
    with pytest.raises(yaml.YAMLError, match="'services' already defined at line 1"):
        load_compose("services: {a: {image: x}}\nservices: {b: {image: x}}\n")
    with pytest.raises(yaml.YAMLError, match="'image' already defined"):
        load_compose("services:\n  a:\n    image: x\n    image: y\n")
    merged = load_compose(
        "x-base: &base {image: x, restart: always}\nservices: {a: {<<: *base, restart: no}}\n"
    )
    assert merged["services"]["a"] == {"image": "x", "restart": "no"}
    # The schema: a volumes list where a mapping belongs, an unknown key, a wrong type.
    for bad in (
        "services: {a: {image: x}}\nvolumes:\n  - data:/data\n",
        "services: {a: {image: x, comand: [opsloop]}}\n",
        "services: {a: {image: x, restart: false}}\n",
    ):
        with pytest.raises(jsonschema.ValidationError):
            load_compose(bad)


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def compose_commands() -> dict[str, list[str]]:
    """Every ``docker compose`` command the README or the compose file's header shows."""
    found = {}
    sources = {
        "README": (ROOT / "README.md").read_text("utf-8"),
        "docker-compose.yml": (ROOT / "docker-compose.yml").read_text("utf-8"),
    }
    for where, text in sources.items():
        for line in text.splitlines():
            line = line.lstrip("#").strip()
            if line.startswith("docker compose "):
                found[f"{where}: {line}"] = shlex.split(line, comments=True)[2:]
    return found


def test_readme_shows_compose_commands() -> None:
    commands = compose_commands()
    assert any(where.startswith("README") for where in commands)
    assert any("--profile" in args for args in commands.values())


@pytest.mark.parametrize("where", sorted(compose_commands()))
def test_compose_command_names_real_services_and_profiles(where: str) -> None:
    """Every profile, service and ``--scale`` a documented command names exists."""
    found = services()
    profiles = {p for service in found.values() for p in service.get("profiles", [])}
    args = compose_commands()[where]
    named: list[str] = []
    while args and args[0].startswith("-"):  # global options come before the subcommand
        option = args.pop(0)
        if option == "--profile":
            profile = args.pop(0)
            assert profile in profiles, f"{where}: no profile {profile!r}"
    assert args and args[0] in {"up", "down", "logs", "ps", "run", "exec", "restart", "pull"}
    args = args[1:]
    while args:
        arg = args.pop(0)
        if arg == "--scale":
            named.append(args.pop(0).partition("=")[0])
        elif not arg.startswith("-"):
            named.append(arg)
    for name in named:
        assert name in found, f"{where}: no service {name!r}"
        assert "profiles" not in found[name] or "--profile" in where, where


def test_every_command_the_readme_runs_in_production_is_a_compose_service() -> None:
    section = readme_section("Running in production")
    named = set(re.findall(r"`(opsloop [a-z]+)`", section))
    assert {"opsloop migrate", "opsloop api", "opsloop worker", "opsloop beat"} <= named
    commands = {
        " ".join(service["command"][:2]): name
        for name, service in services().items()
        if service.get("command", [""])[0] == "opsloop"
    }
    for command in named:
        assert command in commands, f"the README names {command!r}; no service runs it"
    # The services the README names in backticks are the ones that exist, with their profile.
    assert "`gateway` service, in the profile of the same name" in section
    assert services()["gateway"]["profiles"] == ["gateway"]
    assert commands["opsloop gateway"] == "gateway"
