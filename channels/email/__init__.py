"""The email channel."""

from __future__ import annotations

from bot.plugins import Plugin

__all__ = ["plugin"]

plugin = Plugin(name="email")
