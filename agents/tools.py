"""Chat-ops tools over the inventory: reads are safe, changes carry the ``write`` tier.

Whether a change needs approval is the policy file's decision (production changes do, by
default), not the tool's: a change declares what it touches (its environment and service),
and the policy's rules match on that.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from bot.inventory import INVENTORY, Inventory
from bot.tools import ToolContext, tool

__all__ = [
    "deploy",
    "list_services",
    "recent_deploys",
    "restart",
    "rollback",
    "service_status",
]

_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_VERSION = r"^v?[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$"


_TOUCHES = ("environment", "service")
"""What a change touches, for the policy's ``where`` rules."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ListServicesArgs(_Args):
    """Arguments of ``list_services``."""

    environment: str | None = Field(default=None, pattern=_NAME)
    """Only this environment (``staging``, ``production``); all when omitted."""


class ServiceArgs(_Args):
    """A service in an environment."""

    service: str = Field(pattern=_NAME)
    """The service's name, e.g. ``checkout``."""
    environment: str = Field(pattern=_NAME)
    """The environment, e.g. ``production``."""


class RecentDeploysArgs(_Args):
    """Arguments of ``recent_deploys``."""

    service: str | None = Field(default=None, pattern=_NAME)
    """Only this service; all when omitted."""
    environment: str | None = Field(default=None, pattern=_NAME)
    """Only this environment; all when omitted."""
    limit: int = Field(default=5, ge=1, le=50)
    """How many, newest first."""


class DeployArgs(ServiceArgs):
    """Arguments of ``deploy``."""

    version: str = Field(pattern=_VERSION)
    """The version to deploy, e.g. ``1.4.2``."""


def _inventory(ctx: ToolContext) -> Inventory:
    return ctx.get(INVENTORY)


@tool()
async def list_services(ctx: ToolContext, args: ListServicesArgs) -> JsonValue:
    """List services with their version and health, optionally in one environment."""
    return await _inventory(ctx).list_services(args.environment)  # type: ignore[return-value]


@tool()
async def service_status(ctx: ToolContext, args: ServiceArgs) -> JsonValue:
    """Show one service's version, health and replicas in one environment."""
    return await _inventory(ctx).service_status(args.service, args.environment)


@tool()
async def recent_deploys(ctx: ToolContext, args: RecentDeploysArgs) -> JsonValue:
    """Show recent deploys, restarts and roll-backs, newest first."""
    return await _inventory(ctx).recent_deploys(  # type: ignore[return-value]
        args.service, args.environment, args.limit
    )


async def _change(
    ctx: ToolContext,
    action: Literal["deploy", "restart", "rollback"],
    args: ServiceArgs,
    version: str | None,
) -> JsonValue:
    return await _inventory(ctx).change(
        action,
        args.service,
        args.environment,
        version=version,
        idempotency_key=ctx.idempotency_key,
        requested_by=ctx.requested_by.principal if ctx.requested_by else None,
        approved_by=ctx.approved_by,
    )


@tool(tier="write", touches=_TOUCHES)
async def deploy(ctx: ToolContext, args: DeployArgs) -> JsonValue:
    """Deploy a version of a service to an environment."""
    return await _change(ctx, "deploy", args, args.version)


@tool(tier="write", touches=_TOUCHES)
async def restart(ctx: ToolContext, args: ServiceArgs) -> JsonValue:
    """Restart a service in an environment (same version, fresh processes)."""
    return await _change(ctx, "restart", args, None)


@tool(tier="write", touches=_TOUCHES)
async def rollback(ctx: ToolContext, args: ServiceArgs) -> JsonValue:
    """Roll a service in an environment back to the version before its last deploy."""
    return await _change(ctx, "rollback", args, None)
