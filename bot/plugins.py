"""Where the packages around the core plug in: channels, workers, anything a team adds.

The core imports none of them. A plugin is a :class:`Plugin` exposed through the
``opsloop.plugins`` entry-point group (see ``pyproject.toml``); :func:`load_plugins` finds
them. A plugin may add CLI commands, HTTP routes, outbound senders for its channels and
the dispatcher that hands work to workers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.errors import ConfigError

if TYPE_CHECKING:
    import typer
    from fastapi import FastAPI
    from pydantic_settings import BaseSettings
    from sqlalchemy import MetaData

    from bot.agent import Agent
    from bot.app import Opsloop
    from bot.config import Settings
    from bot.inventory import Inventory
    from bot.policy import Policy
    from bot.store import Database, InboxItem, OutboxItem, Store
    from bot.tools import Resource, Tool

__all__ = [
    "ChannelContext",
    "DeliveryContext",
    "DeliveryFailedError",
    "DeliveryRetryError",
    "Dispatcher",
    "Gateway",
    "Plugin",
    "ResourceContext",
    "Sender",
    "enqueue",
    "enqueue_item",
    "extension_plugins",
    "load_plugins",
]

log = logging.getLogger(__name__)

ENQUEUE_SECONDS = 2.0
"""How long an event loop waits for the broker to take a task before leaving it to the
sweeper (the event is stored already, so nothing is lost)."""


async def enqueue(send: Callable[[], None], *, what: str, seconds: float = ENQUEUE_SECONDS) -> bool:
    """Hand stored work to the broker without blocking the event loop; ``False`` if it failed.

    Broker calls block, and with the broker down they block for a while: run off the loop,
    so other requests (and Discord's heartbeats) go on, and bounded, so a caller answers
    in time. Failing is fine: the work is stored, and the sweeper enqueues it again.
    """
    try:
        await asyncio.wait_for(asyncio.to_thread(send), seconds)
    except Exception as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        log.warning("could not enqueue %s (%s); the sweeper will pick it up", what, reason)
        return False
    return True


async def enqueue_item(dispatcher: Dispatcher, item_id: int) -> bool:
    """Hand a stored inbox item to the workers (see :func:`enqueue`)."""
    return await enqueue(lambda: dispatcher.process(item_id), what=f"inbox item {item_id}")


class Dispatcher(Protocol):
    """Hands work to workers. Every method only enqueues; none waits for the work.

    The methods block (a broker call): async code calls them through :func:`enqueue`, on
    a thread of its own, so an implementation must not need the caller's event loop.
    """

    def process(self, item_id: int) -> None:
        """Process one inbox item."""

    def deliver(self, thread_id: str, *, countdown: float | None = None) -> None:
        """Deliver a thread's pending outbound messages, in order; not before ``countdown`` s."""

    def resume(self, thread_id: str) -> None:
        """Drive a running thread whose worker went away."""

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""


@dataclass(frozen=True)
class DeliveryContext:
    """What a sender may use besides the message."""

    store: Store
    """To read and record where requests were posted (``message_ref``)."""
    settings: Settings
    """The settings."""
    policy: Policy | None = None
    """The policy in force (who approves what), for senders that address approvers."""


class DeliveryRetryError(Exception):
    """A sender's request to try again later (rate limit, outage)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        """Create it; ``retry_after`` in seconds, as the platform asked."""
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryFailedError(Exception):
    """A sender's verdict: the platform will never take this message as it is.

    The platform refused its form, so the message is marked failed at once, with this
    reason, and not retried.
    """


Sender = Callable[["OutboxItem", DeliveryContext], Awaitable[None]]
"""Delivers one outbound message to its channel, or raises."""


@dataclass(frozen=True)
class ChannelContext:
    """What a channel's inbound side needs: the app and the way to hand work on."""

    ops: Opsloop
    """The app: its store, settings and ingest."""
    dispatcher: Dispatcher
    """Where processing is enqueued."""

    async def accept(self, event: Any) -> InboxItem | None:
        """The fast path: validate, dedupe, store and enqueue; ``None`` for a duplicate.

        Raises:
            UserFacingError: the event cannot be accepted (nothing was stored).
        """
        item = await self.ops.ingest(event)
        if item is not None:
            await enqueue_item(self.dispatcher, item.id)
        return item


Gateway = Callable[[ChannelContext], Awaitable[None]]
"""A long-running inbound connection (Slack Socket Mode, Discord's gateway, IMAP IDLE)."""


@dataclass(frozen=True)
class Plugin:
    """What one package adds to opsloop."""

    name: str
    """The plugin's name, for messages."""
    cli: Callable[[typer.Typer], None] | None = None
    """Adds commands to the ``opsloop`` command."""
    routes: Callable[[FastAPI], None] | None = None
    """Adds routes to the HTTP app."""
    senders: dict[str, Sender] = field(default_factory=dict)
    """Outbound senders by channel name."""
    dispatcher: Callable[[Settings], Dispatcher] | None = None
    """Builds the dispatcher (one plugin provides it: the workers)."""
    gateway: Callable[[], Gateway | None] | None = None
    """The channel's gateway when its settings are present, else ``None``."""
    settings: type[BaseSettings] | None = None
    """The plugin's own settings (validated at start-up, listed in ``.env.example``)."""
    tables: MetaData | None = None
    """Tables the plugin keeps in opsloop's database (created by opsloop's migrations)."""

    tools: tuple[Tool, ...] = ()
    """Tools it adds: its agents use them, and so may agents declared elsewhere by name."""
    agents: tuple[Agent, ...] = ()
    """Agents it adds, each with its tools and the name of its prompt."""
    prompts: Path | None = None
    """A folder of its agents' prompt templates (searched before the team's and the bundled
    ones)."""
    resources: Mapping[Resource[Any], Callable[[ResourceContext], object]] = field(
        default_factory=dict
    )
    """Shared services its tools get through ``ctx.get(KEY)``, each made once a process by a
    factory. An object with an async ``aclose()`` is closed when opsloop stops."""
    inventories: Mapping[str, Callable[[Database], Inventory]] = field(default_factory=dict)
    """Inventory backends by name, chosen with ``OPSLOOP_INVENTORY=<name>``."""


@dataclass(frozen=True)
class ResourceContext:
    """What a resource factory may use."""

    settings: Settings
    """The settings."""
    database: Database
    """opsloop's database (a backend may keep its own tables there)."""


@cache
def load_plugins() -> tuple[Plugin, ...]:
    """Every installed plugin, in entry-point name order."""
    plugins = []
    for entry in sorted(entry_points(group="opsloop.plugins"), key=lambda e: e.name):
        try:
            plugin: Any = entry.load()
        except Exception as exc:
            raise ConfigError(f"plugin {entry.name} ({entry.value}) failed to load: {exc}") from exc
        if not isinstance(plugin, Plugin):
            raise ConfigError(f"plugin {entry.name} ({entry.value}) is not an opsloop Plugin")
        plugins.append(plugin)
    return tuple(plugins)


def _local_plugin(spec: str) -> Plugin:
    """Import ``package.module`` (its ``plugin``) or ``package.module:attribute``."""
    module_name, _, attribute = spec.partition(":")
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # "myteam.ops" next to where opsloop runs
        sys.path.append(cwd)
    try:
        found: Any = getattr(importlib.import_module(module_name), attribute or "plugin")
    except Exception as exc:
        raise ConfigError(f"OPSLOOP_PLUGINS: cannot load {spec!r}: {exc}") from exc
    if callable(found) and not isinstance(found, Plugin):
        found = found()
    if not isinstance(found, Plugin):
        raise ConfigError(f"OPSLOOP_PLUGINS: {spec!r} is not an opsloop Plugin")
    return found


def extension_plugins(settings: Settings) -> tuple[Plugin, ...]:
    """The plugins whose tools, agents, prompts, resources and inventories are in force.

    That is every installed plugin, then each module ``OPSLOOP_PLUGINS`` lists, less those
    ``OPSLOOP_DISABLE_PLUGINS`` names (``agents`` switches the shipped agents off).

    Raises:
        ConfigError: a plugin does not load, two have one name, or a disabled one is unknown.
    """
    found = list(load_plugins())
    found += [_local_plugin(spec) for spec in settings.plugin_modules]
    names = [p.name for p in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"OPSLOOP_PLUGINS: more than one plugin is called {', '.join(twice)}")
    unknown = sorted(set(settings.disabled_plugins) - set(names))
    if unknown:
        raise ConfigError(
            f"OPSLOOP_DISABLE_PLUGINS: no plugin called {', '.join(unknown)}; "
            f"installed: {', '.join(names)}"
        )
    return tuple(p for p in found if p.name not in settings.disabled_plugins)
