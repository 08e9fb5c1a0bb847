"""The router the shipped agents use: the core's keyword router."""

from bot.agent import keyword_router

__all__ = ["keyword_router"]
