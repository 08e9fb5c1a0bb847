"""Loading runbooks: what a file may say, and how each mistake is reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.catalogue import build_catalogue
from bot.config import Settings
from bot.declared import load_declared
from bot.declared.runbooks._template import Template
from bot.errors import ConfigError
from tests.bot.runbooks.conftest import EXAMPLES, load

HTTP = '[http]\nurl = "https://api.example.com/v1/{name}"\n'
NAME_ARG = "[arguments.name]\npattern = '[a-z]+'\n"
BASE = 'kind = "runbook"\ndescription = "d"\n'


def declared(tmp_path: Path, text: str, name: str = "broken.toml") -> Path:
    folder = tmp_path / "tools"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_defaults_fail_closed(tmp_path: Path) -> None:
    tool = load(tmp_path, BASE + NAME_ARG + HTTP, name="restart-web.toml")
    assert tool.name == "restart-web"
    assert tool.tier == "write"
    assert (tool.source, tool.origin, tool.untrusted_output) == (
        "runbook",
        "restart-web.toml",
        True,
    )
    assert tool.risk is None and tool.declares == ()
    assert tool.spec.parameters["additionalProperties"] is False


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BASE + NAME_ARG + HTTP + "extra = 1\n", "extra: Extra inputs are not permitted"),
        (BASE + NAME_ARG + HTTP + "timeout_seconds = 0\n", "http.timeout_seconds: Input should"),
        (BASE + NAME_ARG + HTTP + "timeout_seconds = 1e9\n", "http.timeout_seconds: Input should"),
        (
            BASE + '[command]\nargv = ["x"]\ntimeout_seconds = 0\n',
            "command.timeout_seconds: Input should",
        ),
        (BASE + 'name = "has space"\n' + HTTP.replace("{name}", ""), "name: String should"),
        ('kind = "runbook"\n' + HTTP.replace("{name}", ""), "description: Field required"),
        (BASE + NAME_ARG, "exactly one action"),
        (BASE + NAME_ARG + HTTP + '[command]\nargv = ["x"]\n', "exactly one action"),
        (BASE + 'tier = "admin"\n' + NAME_ARG + HTTP, "tier: Input should be 'read' or 'write'"),
        (BASE + HTTP, "http.url: {name} names no argument (arguments: none)"),
        (BASE + NAME_ARG + HTTP.replace("{name}", "{name!r}"), "{name!r} is not a placeholder"),
        (BASE + NAME_ARG + HTTP.replace("{name}", "{name.__class__}"), "is not a placeholder"),
        (BASE + NAME_ARG + HTTP.replace("{name}", "{name:>99}"), "is not a placeholder"),
        (BASE + NAME_ARG + HTTP.replace("{name}", "{secret.lower}"), "is not a placeholder"),
        (BASE + NAME_ARG + HTTP.replace("{name}", "{name}}"), "a lone '}'"),
        (
            BASE + NAME_ARG + HTTP.replace("{name}", "?t={secret.TOKEN}"),
            "http.url: a secret may not be in the URL",
        ),
        (
            BASE + NAME_ARG + '[http]\nurl = "https://{name}.example.com/"\n',
            "http.url: {name} would choose the host",
        ),
        (
            BASE + NAME_ARG + '[http]\nurl = "{var.BASE}{name}"\n',
            "http.url: {name} would choose the host",
        ),
        (
            BASE + NAME_ARG + HTTP + '[http.headers]\n"Bad Header" = "x"\n',
            "http.headers: Value error, not header names",
        ),
        (
            BASE + NAME_ARG + HTTP + "[http.json]\nx = '{nope}'\n",
            "http.json.x: {nope} names no argument",
        ),
        (BASE + NAME_ARG + HTTP + 'returns = "xml"\n', "http.returns: String should match"),
        (BASE + NAME_ARG + HTTP + 'method = "TRACE"\n', "http.method: Input should be"),
        (
            BASE + "[arguments.name]\ntype = 'integer'\npattern = 'x'\n" + HTTP,
            "arguments.name: Value error, pattern and max_length are for strings",
        ),
        (
            BASE + "[arguments.name]\npattern = '[a-z'\n" + HTTP,
            "arguments.name: Value error, pattern is not a regular expression",
        ),
        (
            BASE + "[arguments.name]\ntype = 'integer'\nenum = [1, 'two']\n" + HTTP,
            "arguments.name: Value error, 'two' is not of type integer",
        ),
        (
            BASE + "[arguments.name]\npattern = '[a-z]+'\ndefault = 'A1'\n" + HTTP,
            "arguments.name.default: Value error, must match the pattern",
        ),
        (
            BASE + "[arguments.name]\ntype = 'integer'\nmax = 3\ndefault = 5\n" + HTTP,
            "arguments.name.default: Input should be less than or equal to 3",
        ),
        (BASE + "[arguments.json]\n" + HTTP.replace("{name}", ""), "'json' is reserved"),
        (BASE + "[arguments.model_x]\n" + HTTP.replace("{name}", ""), "is reserved"),
        (BASE + "[arguments.2x]\n" + HTTP.replace("{name}", ""), "a name is a letter"),
        (BASE + 'touches = ["env"]\n' + NAME_ARG + HTTP, "touches: names no argument: env"),
        (
            BASE + 'touches = { env = "{secret.TOKEN}" }\n' + NAME_ARG + HTTP,
            "touches.env: attributes come from arguments and text only",
        ),
        (BASE + NAME_ARG + HTTP + "[vars]\nlower = 'x'\n", "vars: Value error"),
        (BASE + NAME_ARG + '[command]\nargv = ["{name}"]\n', "command.argv.0: the program"),
        (
            BASE + "[arguments.name]\n" + '[command]\nargv = ["kubectl", "{name}"]\n',
            "command.argv.1: {name} starts an argument, so its value could make it an option",
        ),
        (  # a suffix does not help: "--kubeconfig=/tmp/evil" + ".conf" is still an option
            BASE + "[arguments.name]\n" + '[command]\nargv = ["kubectl", "{name}.conf"]\n',
            "command.argv.1: {name} starts an argument, so its value could make it an option",
        ),
        (
            BASE + '[command]\nargv = ["x"]\npass_env = ["OPSLOOP_SECRET_TOKEN"]\n',
            "command.pass_env: Value error, OPSLOOP_SECRET_TOKEN: pass a secret as env",
        ),
        (
            BASE + '[command]\nargv = ["x", "--token={secret.T}"]\n',
            "command.argv.1: a secret may not be in argv",
        ),
        (BASE + "[command]\nargv = []\n", "command.argv: Tuple should have at least 1 item"),
        (
            BASE + '[command]\nargv = ["x"]\nenv = { "1X" = "y" }\n',
            "command.env: Value error, not variable names",
        ),
    ],
)
def test_every_mistake_names_the_file_and_the_field(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = declared(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_declared(path.parent)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_yaml_runbooks_are_read_strictly(tmp_path: Path) -> None:
    path = declared(
        tmp_path,
        """\
        kind: runbook
        description: d
        tier: read
        http:
          url: https://api.example.com/
          method: GET
          method: DELETE
        """,
        name="twice.yaml",
    )
    with pytest.raises(ConfigError) as caught:
        load_declared(path.parent)
    assert str(caught.value) == f"{path}, line 7: key 'method' appears twice (first on line 6)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: runbook\n---\nkind: runbook\n", "line 2: more than one YAML document"),
        ("kind: runbook\ndescription: [d\n", "line 3: expected ',' or ']'"),
        ("kind: runbook\ndescription: d\ntier: on\n", "tier: Input should be 'read' or 'write'"),
    ],
)
def test_yaml_mistakes_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = declared(tmp_path, text, name="bad.yml")
    with pytest.raises(ConfigError) as caught:
        load_declared(path.parent)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_bad_arguments_are_refused_with_a_reason(tmp_path: Path) -> None:
    tool = load(
        tmp_path,
        BASE
        + """
        [arguments.env]
        enum = ["staging", "production"]
        [arguments.count]
        type = "integer"
        min = 1
        max = 5
        [arguments.ratio]
        type = "number"
        required = false
        [arguments.text]
        required = false
        [arguments.tag]
        pattern = "v[0-9]+"
        default = "v1"
        [arguments.size]
        type = "integer"
        enum = [1, 2]
        required = false
        [http]
        url = "https://api.example.com/{env}"
        """,
    )
    good = tool.validate({"env": "staging", "count": 2})
    assert good.model_dump() == {
        "env": "staging",
        "count": 2,
        "ratio": None,
        "text": None,
        "tag": "v1",
        "size": None,
    }
    assert tool.validate({"env": "staging", "count": 2, "ratio": 1}).model_dump()["ratio"] == 1
    refused = [
        {"env": "dev", "count": 2},
        {"env": "staging", "count": 0},
        {"env": "staging", "count": "2"},
        {"env": "staging", "count": 2.0},
        {"env": "staging", "count": True},
        {"env": "staging", "count": 2, "ratio": "1.5"},
        {"env": "staging", "count": 2, "tag": "v1x"},
        {"env": "staging", "count": 2, "tag": "xv1"},
        {"env": "staging", "count": 2, "text": "x" * 257},
        {"env": "staging", "count": 2, "other": 1},
        {"env": "staging", "count": 2, "size": True},  # not 1, whatever Python says
        {"env": "staging", "count": 2, "size": 1.0},
        {"count": 2},
    ]
    for arguments in refused:
        with pytest.raises(ValidationError):
            tool.validate(arguments)
    schema = tool.spec.parameters
    assert schema["properties"]["env"]["enum"] == ["staging", "production"]
    assert schema["properties"]["tag"]["pattern"] == "^(?:v[0-9]+)$"
    assert schema["properties"]["count"]["minimum"] == 1
    assert schema["required"] == ["env", "count"]


def test_templates_substitute_names_only() -> None:
    template = Template.parse("a{{b}}{x}-{secret.T}-{var.V}}}", ["x"])
    shown = [str(p) for p in template.parts]
    assert shown == ["a{b}", "{x}", "-", "{secret.T}", "-", "{var.V}", "}"]

    class Lookup:
        def secret(self, name: str) -> str:
            return "S"

        def var(self, name: str) -> str:
            return "V"

    assert template.render({"x": "{secret.T}"}, Lookup()) == "a{b}{secret.T}-S-V}"
    assert Template.parse("{x}", ["x"]).value({"x": 3}, Lookup()) == 3


def test_the_examples_join_the_shipped_agents(settings: Settings) -> None:
    catalogue = build_catalogue(settings.model_copy(update={"tools_dir": EXAMPLES}))
    deployer = catalogue.registry.get("deployer")
    inspector = catalogue.registry.get("inspector")
    for name in ("trigger_workflow", "scale_deployment", "flush_cdn"):
        assert deployer.tool(name) is catalogue.tools[name]
    assert inspector.tool("service-health") is catalogue.tools["service-health"]


def test_yaml_reads_on_and_no_as_text_not_booleans(tmp_path: Path) -> None:
    from bot.declared._yaml import load_yaml

    path = tmp_path / "x.yaml"
    assert load_yaml(path, "a: on\nb: no\nc: true\n") == {"a": "on", "b": "no", "c": True}


def test_both_forms_of_touches_give_the_same_text_for_a_value(tmp_path: Path) -> None:
    """Regression: the list form gave "True" and the table form "true" for one boolean."""
    head = BASE + '[arguments.flag]\ntype = "boolean"\n'
    http = '[http]\nurl = "https://api.example.com/x"\n'
    by_name = load(tmp_path, head.replace("kind", 'touches = ["flag"]\nkind', 1) + http, "a.toml")
    by_table = load(
        tmp_path, head.replace("kind", 'touches = { flag = "{flag}" }\nkind', 1) + http, "b.toml"
    )
    for tool in (by_name, by_table):
        assert tool.attributes(tool.validate({"flag": True})) == {"flag": "true"}
