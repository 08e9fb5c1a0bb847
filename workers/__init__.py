"""Celery workers: process inbound events, deliver outbound messages, sweep, schedule."""

from __future__ import annotations

from bot.config import Settings
from bot.plugins import Dispatcher, Plugin
from workers.cli import register

__all__ = ["plugin"]


def _dispatcher(settings: Settings) -> Dispatcher:
    from workers.celery_app import celery_app, configure
    from workers.dispatch import CeleryDispatcher

    configure(settings)
    return CeleryDispatcher(celery_app)


plugin = Plugin(name="workers", cli=register, dispatcher=_dispatcher)
"""What the workers add: the worker and beat commands, and the Celery dispatcher."""
