"""Settings: defaults, database URLs, one line per problem, no secrets, prices, home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config import DEFAULT_PRICES, Price, Settings, load_settings
from bot.errors import ConfigError


def _setting_env_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(str(choice) for choice in getattr(alias, "choices", ()))
    return names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No setting from the developer's shell or a stray ``.env`` reaches these tests."""
    for name in _setting_env_names():
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def problem(**env: str) -> str:
    """The ConfigError message for these environment variables."""
    with pytest.raises(ConfigError) as caught:
        load_settings(**env)
    return str(caught.value)


# ---------------------------------------------------------------- defaults


def test_defaults(tmp_path):
    settings = load_settings()

    assert settings.home == Path(".")
    assert settings.database_url is None
    assert settings.database == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'opsloop.db'}"
    assert settings.models == "auto"
    assert settings.agents == ""
    assert settings.plugin_modules == () and settings.disabled_plugins == ()
    assert settings.tools_dir is None
    assert settings.inventory == "demo"
    assert settings.policy_file is None
    assert settings.prompts_dir is None
    assert settings.anthropic_api_key is None
    assert settings.context_tokens == 8_000
    assert settings.log_level == "WARNING"
    assert settings.prices == DEFAULT_PRICES


def test_sqlite_file_lives_under_opsloop_home(monkeypatch, tmp_path):
    home = tmp_path / "state"
    home.mkdir()
    monkeypatch.setenv("OPSLOOP_HOME", str(home))

    settings = load_settings()

    assert settings.home == home
    assert settings.database == f"sqlite+aiosqlite:///{home.resolve() / 'opsloop.db'}"


def test_relative_home_is_resolved_against_the_working_directory(monkeypatch, tmp_path):
    (tmp_path / "rel").mkdir()
    monkeypatch.setenv("OPSLOOP_HOME", "rel")

    assert load_settings().database == (
        f"sqlite+aiosqlite:///{(tmp_path / 'rel').resolve() / 'opsloop.db'}"
    )


def test_env_file_in_the_working_directory_is_read(tmp_path):
    (tmp_path / ".env").write_text("OPSLOOP_INVENTORY=team.inventory:make\n", encoding="utf-8")

    assert load_settings().inventory == "team.inventory:make"


def test_environment_variables_are_read_case_insensitively(monkeypatch):
    monkeypatch.setenv("opsloop_context_tokens", "900")

    assert load_settings().context_tokens == 900


def test_overrides_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("OPSLOOP_MODELS", "openai:gpt-4o")

    assert load_settings(OPSLOOP_MODELS="offline").models == "offline"


# ---------------------------------------------------------------- database URLs


@pytest.mark.parametrize(
    ("url", "stored", "database"),
    [
        (
            "postgres://u:p@db:5432/ops",
            "postgresql://u:p@db:5432/ops",
            "postgresql+psycopg://u:p@db:5432/ops",
        ),
        (
            "postgresql://u@db/ops",
            "postgresql://u@db/ops",
            "postgresql+psycopg://u@db/ops",
        ),
        (
            "postgresql+psycopg://u@db/ops",
            "postgresql+psycopg://u@db/ops",
            "postgresql+psycopg://u@db/ops",
        ),
        ("sqlite:////var/ops.db", "sqlite:////var/ops.db", "sqlite+aiosqlite:////var/ops.db"),
        (
            "sqlite+aiosqlite:///ops.db",
            "sqlite+aiosqlite:///ops.db",
            "sqlite+aiosqlite:///ops.db",
        ),
    ],
)
def test_database_url_is_normalised_to_an_async_driver(monkeypatch, url, stored, database):
    monkeypatch.setenv("DATABASE_URL", url)

    settings = load_settings()

    assert settings.database_url == stored
    assert settings.database == database


def test_empty_database_url_means_the_default_sqlite_file(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "")

    settings = load_settings()

    assert settings.database_url is None
    assert settings.database.startswith("sqlite+aiosqlite:///")
    assert settings.database.endswith("opsloop.db")


def test_unsupported_database_is_a_config_error(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://root:hunter2@db/ops")

    message = problem()

    assert message == (
        "invalid configuration:\n  DATABASE_URL: must be a sqlite:// or postgresql:// URL"
    )


# ---------------------------------------------------------------- one line per problem


def test_each_bad_value_gets_one_line_naming_its_variable(monkeypatch):
    monkeypatch.setenv("OPSLOOP_MODELS", "bogus")
    monkeypatch.setenv("OPSLOOP_MODEL_TIMEOUT", "-1")
    monkeypatch.setenv("OPSLOOP_LOG_LEVEL", "LOUD")
    monkeypatch.setenv("OPSLOOP_CONTEXT_TOKENS", "many")

    lines = problem().splitlines()

    assert lines[0] == "invalid configuration:"
    by_name = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert len(lines) == 1 + len(by_name) == 5
    assert set(by_name) == {
        "OPSLOOP_MODELS",
        "OPSLOOP_MODEL_TIMEOUT",
        "OPSLOOP_LOG_LEVEL",
        "OPSLOOP_CONTEXT_TOKENS",
    }
    assert "anthropic, openai or offline" in by_name["OPSLOOP_MODELS"]
    assert "greater than 0" in by_name["OPSLOOP_MODEL_TIMEOUT"]
    assert "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in by_name["OPSLOOP_LOG_LEVEL"]
    assert "valid integer" in by_name["OPSLOOP_CONTEXT_TOKENS"]


def test_problem_lines_never_show_a_secret(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret-123")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-456")
    monkeypatch.setenv("OPSLOOP_MODELS", "anthropic")
    monkeypatch.setenv("OPSLOOP_MODEL_RETRIES", "99")

    message = problem()

    assert "OPSLOOP_MODELS:" in message
    assert "OPSLOOP_MODEL_RETRIES:" in message
    assert "sk-secret-123" not in message
    assert "sk-secret-456" not in message


def test_secrets_are_not_shown_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-secret-123")

    settings = load_settings()

    assert "sk-secret-123" not in repr(settings)
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-secret-123"


@pytest.mark.parametrize(
    "chain", ["auto", "offline", "anthropic:claude-haiku-4-5, openai:gpt-4o-mini,offline"]
)
def test_valid_model_chains(monkeypatch, chain):
    monkeypatch.setenv("OPSLOOP_MODELS", chain)

    assert load_settings().models == chain.strip()


@pytest.mark.parametrize("chain", ["openai", "anthropic:", "azure:gpt-4o", "offline,,openai:x"])
def test_invalid_model_chains(monkeypatch, chain):
    monkeypatch.setenv("OPSLOOP_MODELS", chain)

    lines = problem().splitlines()

    assert len(lines) == 2
    assert lines[1].startswith("  OPSLOOP_MODELS: ")
    assert "is not provider:model" in lines[1]


# ---------------------------------------------------------------- prices


def test_prices_override_merges_with_the_defaults(monkeypatch):
    monkeypatch.setenv(
        "OPSLOOP_PRICES",
        json.dumps(
            {
                "gpt-4o": {"input": 1.0, "output": 2.0},
                "llama3:8b": {"input": 0, "output": 0, "cached_input": 0},
            }
        ),
    )

    prices = load_settings().prices

    assert prices["gpt-4o"] == Price(input=1.0, output=2.0)
    assert prices["llama3:8b"] == Price(input=0, output=0)
    assert prices["claude-sonnet-4-5"] == DEFAULT_PRICES["claude-sonnet-4-5"]
    assert set(prices) == set(DEFAULT_PRICES) | {"llama3:8b"}
    assert DEFAULT_PRICES["gpt-4o"] == Price(input=2.50, output=10.0, cached_input=1.25)


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"m": 3}', '{"m": {"output": 1}}'])
def test_bad_prices_are_reported_under_their_variable(monkeypatch, raw):
    monkeypatch.setenv("OPSLOOP_PRICES", raw)

    message = problem()

    assert "OPSLOOP_PRICES: must be a JSON object of model prices" in message
    assert message.startswith("invalid configuration:\n  OPSLOOP_PRICES:")


def test_bad_price_value_is_reported_on_one_line(monkeypatch):
    monkeypatch.setenv("OPSLOOP_PRICES", '{"m": {"input": "cheap", "output": 1}}')
    monkeypatch.setenv("OPSLOOP_MODELS", "bogus")

    lines = problem().splitlines()

    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "OPSLOOP_MODELS",
        "OPSLOOP_PRICES",
    ]
    assert "cheap" not in "\n".join(lines)


# ---------------------------------------------------------------- OPSLOOP_HOME


def test_home_that_is_a_file(monkeypatch, tmp_path):
    home = tmp_path / "a-file"
    home.write_text("", encoding="utf-8")
    monkeypatch.setenv("OPSLOOP_HOME", str(home))

    assert problem() == f"invalid configuration:\n  OPSLOOP_HOME: {home} is not a directory"


def test_home_that_does_not_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSLOOP_HOME", str(tmp_path / "missing"))

    assert "OPSLOOP_HOME:" in problem()
    assert not (tmp_path / "missing").exists()


def test_a_thread_page_is_linked_only_at_a_public_url(tmp_path):
    """Chat messages link the console only where others can reach it."""
    local = load_settings(OPSLOOP_HOME=str(tmp_path))
    public = load_settings(
        OPSLOOP_HOME=str(tmp_path), OPSLOOP_PUBLIC_URL="https://ops.example.com/"
    )
    assert local.thread_page("th_1") is None
    assert public.thread_page("th_1") == "https://ops.example.com/threads/th_1"
