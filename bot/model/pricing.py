"""What a model call cost, from the configured price table (US dollars per million tokens)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Price
    from bot.events import Usage

__all__ = ["cost_usd", "price_for"]


def price_for(model_name: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of ``model_name``: its exact entry, else the longest key it starts with.

    Providers answer with dated names (``claude-sonnet-4-5-20250929``) that the table lists
    once, undated (``claude-sonnet-4-5``); the longest key keeps ``gpt-4.1-mini-2025-04-14``
    on ``gpt-4.1-mini`` rather than ``gpt-4.1``.

    Args:
        model_name: the model's name as the provider gave it.
        prices: the price table.

    Returns:
        The price, or ``None`` for a model the table does not know.
    """
    if model_name in prices:
        return prices[model_name]
    keys = [key for key in prices if key and model_name.startswith(key)]
    return prices[max(keys, key=len)] if keys else None


def cost_usd(usage: Usage, model_name: str, prices: Mapping[str, Price]) -> float:
    """What ``usage`` cost on ``model_name``, in US dollars.

    Args:
        usage: the tokens one call used.
        model_name: the model's name as the provider gave it.
        prices: the price table, per million tokens.

    Returns:
        The cost; ``0.0`` for a model the table does not know (a local model, say).
    """
    price = price_for(model_name, prices)
    if price is None:
        return 0.0
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cached_tokens * price.cached_input
        + usage.cache_write_tokens * price.cache_write
    ) / 1_000_000
