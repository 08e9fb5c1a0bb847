"""Putting one opsloop together from its settings: database, plugins, resources, runtime."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bot.agent import AgentRegistry
from bot.config import Settings
from bot.declared import load_declared
from bot.inventory import INVENTORY, load_inventory
from bot.mcp import MCP_HUB, McpHub, catalogue_with
from bot.model import Model
from bot.plugins import Plugin, ResourceContext
from bot.policy import Policy, load_policy
from bot.runtime import Runtime
from bot.store import Database
from bot.tools import Resource

__all__ = ["assemble", "close_resources"]

log = logging.getLogger(__name__)


async def assemble(
    settings: Settings,
    *,
    models: Mapping[str, Model] | None = None,
    agents: AgentRegistry | None = None,
    policy: Policy | None = None,
    auto_migrate: bool | None = None,
    plugins: Sequence[Plugin] | None = None,
    resources: Mapping[Resource[Any], object] | None = None,
) -> tuple[Database, Runtime]:
    """Connect, check the schema, and load policy, plugins, prompts, agents, models, resources.

    ``plugins`` replaces the installed and ``OPSLOOP_PLUGINS`` ones (the testing kit passes
    a plugin under test directly), and ``resources`` stand in for the plugins' own (their
    factories are not run). The declared MCP servers are connected too (their hub is a
    resource, closed with the others by :func:`close_resources`).

    Raises:
        ConfigError: something configured is missing or invalid.
    """
    from bot.model import build_model

    # Checked before connecting: a bad policy or declaration leaves no connection to close.
    policy = policy or load_policy(settings.policy_file)
    declared = load_declared(settings.tools_dir)
    database = Database(settings.database)
    hub = McpHub(declared.mcp_servers)  # one session per MCP server, for this process
    given = dict(resources or {})
    made_here: dict[Resource[Any], object] = {MCP_HUB: hub}
    try:  # nothing half-made is left open when a plugin or a server does not load
        await database.ensure_schema(
            auto_migrate=database.is_sqlite if auto_migrate is None else auto_migrate
        )
        await hub.astart()
        catalogue = catalogue_with(settings, declared, hub, plugins=plugins)
        backends = {k: v for p in catalogue.plugins for k, v in p.inventories.items()}
        inventory = load_inventory(settings.inventory, database, backends)
        await inventory.prepare()
        made_here[INVENTORY] = inventory
        made = ResourceContext(settings=settings, database=database)
        for plugin in catalogue.plugins:
            for key, factory in plugin.resources.items():
                if key not in given:
                    made_here[key] = factory(made)
        runtime = Runtime(
            settings=settings,
            policy=policy,
            prompts=catalogue.prompts,
            agents=agents or catalogue.registry,
            models=models or {"default": build_model(settings)},
            resources={**made_here, **given},
            tools=catalogue.tools,
        )
        return database, runtime
    except BaseException:
        await close_resources(made_here)
        await database.dispose()
        raise


async def close_resources(resources: Mapping[Resource[Any], object]) -> None:
    """Close every resource with an ``aclose()``; one failing does not stop the others."""
    for key, value in resources.items():
        close = getattr(value, "aclose", None)
        if close is None:
            continue
        try:
            result = close()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("closing resource %s failed", key.name)
