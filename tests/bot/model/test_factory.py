"""build_model: auto picks, explicit chains, the wrapping, and missing keys."""

from __future__ import annotations

import sys
import types

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.model import (
    AnthropicModel,
    BreakerModel,
    FallbackModel,
    FunctionModel,
    OpenAIModel,
    RetryingModel,
    build_model,
)


def settings(**values) -> Settings:
    """Settings from these environment-style values only (a developer's .env is ignored)."""
    return Settings(_env_file=None, **values)


@pytest.fixture
async def built():
    made = []

    def build(config: Settings, **kwargs):
        model = build_model(config, **kwargs)
        made.append(model)
        return model

    yield build
    for model in made:
        await model.aclose()


def provider_of(model):
    """The provider model inside Breaker(Retrying(provider)), checking the wrapping."""
    assert isinstance(model, BreakerModel)
    assert isinstance(model.inner, RetryingModel)
    return model.inner.inner


async def test_auto_prefers_anthropic(built):
    model = built(settings(ANTHROPIC_API_KEY="sk-ant-x", OPENAI_API_KEY="sk-x"))

    inner = provider_of(model)
    assert isinstance(inner, AnthropicModel)
    assert (model.provider, model.model_name) == ("anthropic", "claude-sonnet-4-6")


async def test_auto_uses_openai_with_only_its_key(built):
    model = built(settings(OPENAI_API_KEY="sk-x"))

    assert isinstance(provider_of(model), OpenAIModel)
    assert (model.provider, model.model_name) == ("openai", "gpt-4.1-mini")


async def test_auto_uses_a_compatible_server_without_a_key(built):
    model = built(settings(OPENAI_BASE_URL="http://ollama.test:11434/v1"))

    inner = provider_of(model)
    assert isinstance(inner, OpenAIModel)
    assert inner._client.api_key == "unused"
    assert str(inner._client.base_url) == "http://ollama.test:11434/v1/"


@pytest.mark.parametrize("values", [{}, {"ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": ""}])
async def test_auto_without_keys_is_offline(built, values):
    offline = FunctionModel(lambda request: None, model_name="offline")

    model = built(settings(**values), offline_factory=lambda: offline)

    assert model is offline


async def test_offline_defaults_to_the_offline_model(built, monkeypatch):
    class FakeOffline(FunctionModel):
        def __init__(self) -> None:
            super().__init__(lambda request: None, model_name="fake-offline")

    module = types.ModuleType("bot.model.offline")
    module.OfflineModel = FakeOffline
    monkeypatch.setitem(sys.modules, "bot.model.offline", module)

    model = built(settings(OPSLOOP_MODELS="offline"))

    assert isinstance(model, FakeOffline)


async def test_an_explicit_chain_falls_back_in_order(built):
    offline = FunctionModel(lambda request: None, model_name="offline")
    config = settings(
        OPSLOOP_MODELS="openai:gpt-4o-mini, anthropic:claude-haiku-4-5,offline",
        ANTHROPIC_API_KEY="sk-ant-x",
        OPENAI_API_KEY="sk-x",
        OPSLOOP_MODEL_RETRIES=4,
        OPSLOOP_BREAKER_FAILURES=2,
    )

    model = built(config, offline_factory=lambda: offline)

    assert isinstance(model, FallbackModel)
    first, second, last = model.models
    assert isinstance(provider_of(first), OpenAIModel)
    assert isinstance(provider_of(second), AnthropicModel)
    assert [m.model_name for m in (first, second)] == ["gpt-4o-mini", "claude-haiku-4-5"]
    assert last is offline
    assert first.inner._retries == 4
    assert first.breaker._threshold == 2
    assert (model.provider, model.model_name) == ("openai", "gpt-4o-mini")


async def test_a_single_provider_is_not_wrapped_in_a_fallback(built):
    model = built(
        settings(OPSLOOP_MODELS="anthropic:claude-opus-4-1", ANTHROPIC_API_KEY="sk-ant-x")
    )

    assert not isinstance(model, FallbackModel)
    assert provider_of(model).model_name == "claude-opus-4-1"


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"OPSLOOP_MODELS": "anthropic:claude-haiku-4-5"}, "ANTHROPIC_API_KEY"),
        ({"OPSLOOP_MODELS": "openai:gpt-4.1"}, "OPENAI_API_KEY"),
        (
            {
                "OPSLOOP_MODELS": "openai:gpt-4.1,anthropic:claude-haiku-4-5",
                "OPENAI_API_KEY": "sk-x",
            },
            "ANTHROPIC_API_KEY",
        ),
    ],
)
def test_a_provider_without_its_key_is_a_config_error(values, names):
    with pytest.raises(ConfigError) as caught:
        build_model(settings(**values))

    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_offline_must_come_last():
    config = settings(OPSLOOP_MODELS="offline,openai:gpt-4.1", OPENAI_API_KEY="sk-x")

    with pytest.raises(ConfigError, match="offline can only be the last"):
        build_model(config, offline_factory=lambda: FunctionModel(lambda r: None))
