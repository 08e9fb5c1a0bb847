"""What every command shares: settings, the app, one-line errors and exit codes."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import JsonValue
from rich.console import Console
from rich.markup import escape

from bot.app import Opsloop
from bot.config import Settings, load_settings
from bot.edits import typed
from bot.errors import ConfigError, OpsloopError, StoreError, UserFacingError
from bot.events import Identity

__all__ = ["console", "default_user", "fail", "identity", "open_app", "parse_sets", "run"]

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

T = TypeVar("T")

EXIT_USER = 1
"""The input was refused (bad message, unknown id, decision not allowed)."""
EXIT_CONFIG = 2
"""A setting or the policy file is invalid."""
EXIT_STORE = 3
"""The database could not be reached or refused the operation."""
EXIT_BUG = 70
"""Something unexpected: a bug to report."""


def fail(message: str, code: int = EXIT_USER) -> NoReturn:
    """Print one line to stderr and exit with ``code``."""
    errors.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def default_user() -> str:
    """Who the terminal user is when ``--as`` is not given."""
    return os.environ.get("OPSLOOP_USER") or os.environ.get("USER") or "operator"


def identity(user: str) -> Identity:
    """The terminal's identity for ``user``."""
    user = user.strip()
    if not user:
        fail("--as needs a user id")
    # Whoever runs the command on this machine, with its database: trusted as local.
    return Identity(channel="cli", user_id=user, display_name=user, auth="cli-local")


def parse_sets(sets: list[str], recorded: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """``--set key=value`` options as argument overrides.

    A value is read as JSON when it parses (``3``, ``true``, ``["a"]``), else as text; an
    argument recorded as text stays text (``--set version=1.5`` is ``"1.5"``, not 1.5).
    A malformed option, or a key given twice, fails with one line.
    """
    changes: dict[str, JsonValue] = {}
    for item in sets:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key or any(c.isspace() for c in key):
            fail(f"--set {item!r}: expected KEY=VALUE, e.g. --set version=1.4.3")
        if key in changes:
            fail(f"--set {key}: given twice")
        changes[key] = typed(raw, recorded.get(key))
    return changes


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[Opsloop]:
    """An :class:`Opsloop` for the life of one command."""
    app = await Opsloop.from_settings(settings)
    try:
        yield app
    finally:
        await app.aclose()


def run(body: Callable[[Opsloop], Awaitable[T]]) -> T:
    """Load settings, open the app, run ``body``; turn known errors into one line and a code."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")

    async def main() -> T:
        async with open_app(settings) as app:
            return await body(app)

    return guarded(main())


def guarded(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine``; known errors become one line on stderr and an exit code."""
    try:
        return asyncio.run(coroutine)
    except UserFacingError as exc:
        fail(str(exc), EXIT_USER)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StoreError as exc:
        fail(str(exc), EXIT_STORE)
    except OpsloopError as exc:
        fail(f"{type(exc).__name__}: {exc}", EXIT_BUG)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
