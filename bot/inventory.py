"""The deploy system the chat-ops tools talk to, behind one small interface.

No real infrastructure is reachable from a fresh install, so opsloop ships a demo inventory
kept in its own database: services, environments, versions, health and deploy history. A
team replaces it with its own deploy system by writing a class with the methods of
:class:`Inventory` and setting ``OPSLOOP_INVENTORY=package.module:factory``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import func, select
from sqlalchemy.engine import Row

from bot.errors import ConfigError, ToolError
from bot.events import utcnow
from bot.store import Database
from bot.store._tables import DeployRow, ServiceRow
from bot.tools import Resource

__all__ = ["INVENTORY", "Inventory", "SqlInventory", "load_inventory"]

Record = dict[str, Any]


@runtime_checkable
class Inventory(Protocol):
    """What the chat-ops tools need from a deploy system.

    Changing methods take an ``idempotency_key``: called twice with the same key, they must
    return the first result without acting again.
    """

    async def prepare(self) -> None:
        """Get ready (connect, seed demo data); called once at start-up."""

    async def list_services(self, environment: str | None) -> list[Record]:
        """Every service, or those in one environment."""

    async def service_status(self, service: str, environment: str) -> Record:
        """One service's version, health and replicas in one environment."""

    async def recent_deploys(
        self, service: str | None, environment: str | None, limit: int
    ) -> list[Record]:
        """The newest deploys, restarts and roll-backs first."""

    async def change(
        self,
        action: str,
        service: str,
        environment: str,
        *,
        version: str | None,
        idempotency_key: str,
        requested_by: str | None,
        approved_by: str | None,
    ) -> Record:
        """Deploy ``version``, ``restart`` or ``rollback`` a service; once per key."""


_SEED = [
    # service, environment, previous version, version, health, replicas
    ("checkout", "staging", "1.4.1", "1.4.2", "healthy", 2),
    ("checkout", "production", "1.4.0", "1.4.1", "healthy", 6),
    ("payments", "staging", "2.8.3", "2.9.0", "healthy", 2),
    ("payments", "production", "2.8.2", "2.8.3", "healthy", 4),
    ("search", "staging", "0.17.4", "0.18.0", "degraded", 1),
    ("search", "production", "0.17.3", "0.17.4", "healthy", 3),
    ("notifications", "staging", "3.0.9", "3.1.0", "healthy", 1),
    ("notifications", "production", "3.0.8", "3.0.9", "healthy", 2),
]


def _service(row: ServiceRow | Row[Any]) -> Record:
    return {
        "service": row.name,
        "environment": row.environment,
        "version": row.version,
        "health": row.health,
        "replicas": row.replicas,
        "updated_at": row.updated_at.isoformat(timespec="seconds"),
    }


def _deploy(row: DeployRow) -> Record:
    return {
        "id": row.id,
        "action": row.action,
        "service": row.service,
        "environment": row.environment,
        "version": row.version,
        "previous_version": row.previous_version,
        "requested_by": row.requested_by,
        "approved_by": row.approved_by,
        "at": row.at.isoformat(timespec="seconds"),
    }


INVENTORY: Resource[Inventory] = Resource("inventory")
"""The deploy system, as tools ask for it: ``ctx.get(INVENTORY)``."""


class SqlInventory:
    """The demo inventory, kept in opsloop's own database."""

    def __init__(self, database: Database) -> None:
        """Use ``database``."""
        self.db = database

    async def prepare(self) -> None:
        """Seed the demo services the first time."""
        async with self.db.session() as session:
            if await session.scalar(select(func.count()).select_from(ServiceRow)):
                return
            now = utcnow()
            for hours, (name, env, previous, version, health, replicas) in enumerate(_SEED, 1):
                session.add(
                    DeployRow(
                        idempotency_key=f"seed:{name}:{env}",
                        service=name,
                        environment=env,
                        action="deploy",
                        version=version,
                        previous_version=previous,
                        requested_by="seed",
                        approved_by=None,
                        at=now - timedelta(hours=48 - hours),
                    )
                )
                session.add(
                    ServiceRow(
                        name=name,
                        environment=env,
                        version=version,
                        health=health,
                        replicas=replicas,
                        updated_at=now,
                    )
                )

    async def list_services(self, environment: str | None) -> list[Record]:
        """Every service, or those in one environment."""
        services = ServiceRow.__table__
        query = select(services).order_by(services.c.name, services.c.environment)
        if environment:
            query = query.where(services.c.environment == environment)
        # One read transaction in one trip, no ORM: the tools most turns call.
        rows = await self.db.run(lambda c: c.execute(query).all(), write=False)
        return [_service(r) for r in rows]

    async def _row(self, session: Any, service: str, environment: str) -> ServiceRow:
        row: ServiceRow | None = await session.get(ServiceRow, (service, environment))
        if row is None:
            names = (await session.scalars(select(ServiceRow.name).distinct())).all()
            envs = (await session.scalars(select(ServiceRow.environment).distinct())).all()
            raise ToolError(
                f"no service {service!r} in {environment!r}; services: {', '.join(sorted(names))};"
                f" environments: {', '.join(sorted(envs))}"
            )
        return row

    async def service_status(self, service: str, environment: str) -> Record:
        """One service in one environment."""
        async with self.db.session() as session:
            return _service(await self._row(session, service, environment))

    async def recent_deploys(
        self, service: str | None, environment: str | None, limit: int
    ) -> list[Record]:
        """The newest changes first."""
        query = select(DeployRow).order_by(DeployRow.id.desc()).limit(limit)
        if service:
            query = query.where(DeployRow.service == service)
        if environment:
            query = query.where(DeployRow.environment == environment)
        async with self.db.session() as session:
            return [_deploy(r) for r in (await session.scalars(query)).all()]

    async def change(
        self,
        action: str,
        service: str,
        environment: str,
        *,
        version: str | None,
        idempotency_key: str,
        requested_by: str | None,
        approved_by: str | None,
    ) -> Record:
        """Deploy, restart or roll back, at most once per idempotency key."""
        async with self.db.session() as session:
            done = await session.scalar(
                select(DeployRow).where(DeployRow.idempotency_key == idempotency_key)
            )
            if done is not None:
                return _deploy(done)
            row = await self._row(session, service, environment)
            previous = row.version
            if action == "rollback":
                last = await session.scalar(
                    select(DeployRow)
                    .where(
                        DeployRow.service == service,
                        DeployRow.environment == environment,
                        DeployRow.action == "deploy",
                        DeployRow.version == previous,
                        DeployRow.previous_version != previous,
                    )
                    .order_by(DeployRow.id.desc())
                )
                if last is None or not last.previous_version:
                    raise ToolError(
                        f"{service} in {environment} has no earlier version to go back to"
                    )
                version = last.previous_version
            elif action == "restart":
                version = previous
            elif not version:
                raise ToolError("a deploy needs a version")
            now = utcnow()
            row.version, row.health, row.updated_at = version, "healthy", now
            deploy = DeployRow(
                idempotency_key=idempotency_key,
                service=service,
                environment=environment,
                action=action,
                version=version,
                previous_version=previous,
                requested_by=requested_by,
                approved_by=approved_by,
                at=now,
            )
            session.add(deploy)
            await session.flush()
            return _deploy(deploy)


def load_inventory(
    spec: str,
    database: Database,
    backends: Mapping[str, Callable[[Database], Inventory]] | None = None,
) -> Inventory:
    """The inventory ``spec`` names.

    That is ``demo`` (the database inventory), a backend a plugin names in ``backends``, or
    ``package.module:factory`` called with no args.
    """
    if spec == "demo":
        return SqlInventory(database)
    if backends and spec in backends:
        found = backends[spec](database)
        if not isinstance(found, Inventory):
            raise ConfigError(f"OPSLOOP_INVENTORY: backend {spec!r} did not make an Inventory")
        return found
    if ":" not in spec:
        known = ", ".join(sorted({"demo", *(backends or {})}))
        raise ConfigError(
            f"OPSLOOP_INVENTORY: no inventory backend {spec!r}; known: {known}, "
            "or package.module:factory"
        )
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
        inventory = factory()
    except (ImportError, AttributeError, TypeError) as exc:
        raise ConfigError(f"OPSLOOP_INVENTORY: cannot load {spec!r}: {exc}") from None
    if not isinstance(inventory, Inventory):
        raise ConfigError(f"OPSLOOP_INVENTORY: {spec!r} did not return an Inventory")
    return inventory
