"""Cost from the price table: exact names, dated names, unknown models."""

from __future__ import annotations

import pytest

from bot.config import DEFAULT_PRICES, Price
from bot.events import Usage
from bot.model import cost_usd
from bot.model.pricing import price_for

MILLION = Usage(
    input_tokens=1_000_000,
    output_tokens=1_000_000,
    cached_tokens=1_000_000,
    cache_write_tokens=1_000_000,
)


def test_every_kind_of_token_is_billed_at_its_own_rate():
    # 3 input + 15 output + 0.30 cache read + 3.75 cache write
    assert cost_usd(MILLION, "claude-sonnet-4-5", DEFAULT_PRICES) == pytest.approx(22.05)


def test_a_realistic_call():
    usage = Usage(input_tokens=176, output_tokens=20, cached_tokens=1024)

    cost = cost_usd(usage, "gpt-4.1-mini", DEFAULT_PRICES)

    assert cost == pytest.approx((176 * 0.40 + 20 * 1.60 + 1024 * 0.10) / 1_000_000)


def test_a_dated_name_uses_its_undated_price():
    dated = cost_usd(MILLION, "claude-sonnet-4-5-20250929", DEFAULT_PRICES)

    assert dated == cost_usd(MILLION, "claude-sonnet-4-5", DEFAULT_PRICES)


def test_the_longest_matching_prefix_wins():
    assert price_for("gpt-4.1-mini-2025-04-14", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4.1-mini"]
    assert price_for("gpt-4.1-2025-04-14", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4.1"]


def test_an_exact_name_beats_a_prefix():
    prices = {"llama3": Price(input=1, output=1), "llama3.1:8b": Price(input=0.5, output=0.5)}

    assert price_for("llama3.1:8b", prices) == prices["llama3.1:8b"]


def test_an_unknown_model_costs_nothing():
    assert cost_usd(MILLION, "llama3.1:8b", DEFAULT_PRICES) == 0.0
    assert cost_usd(MILLION, "claude", DEFAULT_PRICES) == 0.0


def test_no_tokens_cost_nothing():
    assert cost_usd(Usage(), "claude-opus-4-1", DEFAULT_PRICES) == 0.0
