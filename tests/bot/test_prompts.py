"""Prompt templates: the bundled ones render, hashes track content, problems are ConfigErrors."""

from __future__ import annotations

import hashlib

import pytest

from agents import registry
from bot.errors import ConfigError
from bot.prompts import DEFAULT_PROMPTS_DIR, Prompt, PromptLibrary


@pytest.mark.parametrize("agent", registry.agents, ids=lambda a: a.name)
def test_every_agent_has_a_bundled_prompt_that_renders(agent):
    prompt = PromptLibrary().get(agent.prompt)
    tools = ", ".join(t.name for t in agent.all_tools)

    text = prompt.render(agent=agent.name, tools=tools, max_steps=str(agent.max_steps))

    words = " ".join(text.split())
    assert prompt.name == agent.prompt
    assert f"You are {agent.name}," in words
    assert tools in words
    assert f"at most {agent.max_steps} steps" in words
    assert "$" not in text


@pytest.mark.parametrize("agent", registry.agents, ids=lambda a: a.name)
def test_bundled_prompt_hash_is_the_sha256_of_the_file(agent):
    path = DEFAULT_PROMPTS_DIR / f"{agent.prompt}.md"

    prompt = PromptLibrary().get(agent.prompt)

    assert prompt.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prompt.template == path.read_text(encoding="utf-8")


def test_hash_is_the_sha256_of_the_content(tmp_path):
    (tmp_path / "helper.md").write_text("You are $agent.\n", encoding="utf-8")

    prompt = PromptLibrary(tmp_path).get("helper")

    assert prompt.sha256 == hashlib.sha256(b"You are $agent.\n").hexdigest()
    assert prompt.render(agent="inspector") == "You are inspector.\n"


def test_hash_changes_when_the_content_changes(tmp_path):
    path = tmp_path / "helper.md"
    path.write_text("You are $agent.\n", encoding="utf-8")
    before = PromptLibrary(tmp_path).get("helper")

    path.write_text("You are $agent, and brief.\n", encoding="utf-8")
    after = PromptLibrary(tmp_path).get("helper")

    assert before.sha256 != after.sha256
    assert after.sha256 == hashlib.sha256(b"You are $agent, and brief.\n").hexdigest()


def test_hash_of_non_ascii_content_is_of_its_utf8_bytes(tmp_path):
    content = "Vous êtes $agent — soyez bref.\n"
    (tmp_path / "fr.md").write_text(content, encoding="utf-8")

    prompt = PromptLibrary(tmp_path).get("fr")

    assert prompt.sha256 == hashlib.sha256(content.encode("utf-8")).hexdigest()


def test_library_loads_each_prompt_once(tmp_path):
    path = tmp_path / "helper.md"
    path.write_text("first\n", encoding="utf-8")
    library = PromptLibrary(tmp_path)
    first = library.get("helper")

    path.write_text("second\n", encoding="utf-8")

    assert library.get("helper") is first
    assert library.get("helper").template == "first\n"


def test_missing_placeholder_value_is_a_config_error():
    prompt = Prompt(name="helper", template="You are $agent with $tools.", sha256="x")

    with pytest.raises(ConfigError) as caught:
        prompt.render(agent="inspector")

    assert str(caught.value) == "prompt helper: no value for placeholder 'tools'"


def test_dollar_sign_can_be_escaped():
    prompt = Prompt(name="helper", template="Budget: $$5 for $agent", sha256="x")

    assert prompt.render(agent="inspector") == "Budget: $5 for inspector"


def test_stray_dollar_sign_is_a_config_error():
    prompt = Prompt(name="helper", template="Budget: $5 for $agent", sha256="x")

    with pytest.raises(ConfigError, match="prompt helper"):
        prompt.render(agent="inspector")


def test_missing_file_is_a_config_error(tmp_path):
    library = PromptLibrary(tmp_path)

    with pytest.raises(ConfigError) as caught:
        library.get("nope")

    assert str(caught.value) == (
        f"prompt 'nope': no nope.md in {tmp_path.resolve()}, {DEFAULT_PROMPTS_DIR.resolve()}"
    )


def test_default_directory_is_the_bundled_prompts():
    assert PromptLibrary().directory == DEFAULT_PROMPTS_DIR
    assert {p.stem for p in DEFAULT_PROMPTS_DIR.glob("*.md")} >= {a.prompt for a in registry.agents}
