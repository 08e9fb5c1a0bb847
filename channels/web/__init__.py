"""The web console: chat with opsloop and inspect threads in a browser."""

from __future__ import annotations

from bot.plugins import Plugin

__all__ = ["plugin"]

plugin = Plugin(name="web")
