"""``OPSLOOP_MODELS=scripted:PATH``: decisions played from a file, in order within each thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.events import CallTool, Identity, ModelCalled, Reply, UserMessage
from bot.model import ModelRequest, build_model
from bot.model.scripted import ScriptFileModel, load_script

ANN = Identity(channel="cli", user_id="dev-1")
YAML = """\
# try the deploy tool without an API key
- tool: deploy
  arguments: {service: checkout, version: "1.4.3", environment: staging}
- reply: Deployed checkout 1.4.3 to staging.
"""


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def request(*events) -> ModelRequest:
    return ModelRequest(agent="deployer", system="", context="", events=events)


def model_called(provider: str = "scripted", model: str = "script.yaml") -> ModelCalled:
    return ModelCalled(agent="deployer", provider=provider, model=model, prompt_hash="h")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(YAML)
    return path


async def test_one_setting_plays_a_yaml_script(script):
    model = build_model(settings(OPSLOOP_MODELS=f"scripted:{script}"))

    assert isinstance(model, ScriptFileModel)
    assert (model.provider, model.model_name) == ("scripted", "script.yaml")
    first = await model.request(request(UserMessage(sender=ANN, text="go")))
    assert first.decision == CallTool(
        tool="deploy",
        arguments={"service": "checkout", "version": "1.4.3", "environment": "staging"},
    )
    assert (first.provider, first.model) == ("scripted", "script.yaml")


async def test_each_thread_plays_the_script_from_its_start(script):
    model = ScriptFileModel.from_file(script)
    message = UserMessage(sender=ANN, text="go")

    one = await model.request(request(message))
    other = await model.request(request(message))
    second = await model.request(request(message, model_called()))
    past_the_end = await model.request(request(message, model_called(), model_called()))

    assert one.decision == other.decision
    assert isinstance(one.decision, CallTool)
    assert second.decision == Reply(text="Deployed checkout 1.4.3 to staging.")
    assert isinstance(past_the_end.decision, Reply)
    assert "no decision left for this thread; it holds 2" in past_the_end.decision.text


async def test_calls_another_model_answered_do_not_count(script):
    """Regression: an admin's ``tools run`` decision counted, so decision 2 was played first."""
    model = ScriptFileModel.from_file(script)
    message = UserMessage(sender=ANN, text="go")

    after_admin = await model.request(request(message, model_called("admin", "tools-run")))

    assert isinstance(after_admin.decision, CallTool)


def test_json_scripts_too(tmp_path):
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"tool": "list_services"}, {"reply": "done"}]))

    assert load_script(path) == (
        CallTool(tool="list_services", arguments={}),
        Reply(text="done"),
    )


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("s.yaml", "- reply: hi\n- {tool: x, reply: y}\n", "decision 2: .*either tool"),
        ("s.yaml", "- {reply: hi, arguments: {a: 1}}\n", "decision 1: .*arguments go with tool"),
        ("s.yaml", "- {tool: x, when: later}\n", "decision 1: when: Extra inputs"),
        ("s.yaml", "- {tool: x, arguments: [1]}\n", "decision 1: arguments: Input should be"),
        ("s.yaml", "tool: x\n", "a non-empty list of decisions"),
        ("s.yaml", "[]\n", "a non-empty list of decisions"),
        ("s.yaml", "- [unclosed\n", "is not valid YAML"),
        ("s.json", "[{", "is not valid JSON"),
        ("s.txt", "[]", "a .json, .yaml or .yml file"),
    ],
)
def test_a_bad_script_stops_start_up_naming_the_file_and_decision(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(ConfigError, match=problem) as caught:
        build_model(settings(OPSLOOP_MODELS=f"scripted:{path}"))
    assert str(path) in str(caught.value)


def test_a_missing_script_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the script"):
        build_model(settings(OPSLOOP_MODELS=f"scripted:{tmp_path / 'nope.yaml'}"))


def test_the_setting_accepts_scripted_only_with_a_path_and_last(script):
    assert load_settings(OPSLOOP_MODELS=f"scripted:{script}").models == f"scripted:{script}"
    with pytest.raises(ConfigError, match="scripted:PATH"):
        load_settings(OPSLOOP_MODELS="scripted")
    with pytest.raises(ConfigError, match="scripted can only be the last"):
        build_model(settings(OPSLOOP_MODELS=f"scripted:{script},offline"))
