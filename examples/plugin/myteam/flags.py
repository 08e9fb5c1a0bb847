"""Feature flags: the service's client, as a typed resource, and the tools that use it."""

from __future__ import annotations

from bot.tools import Resource, ToolContext, tool
from pydantic import BaseModel, ConfigDict, Field, JsonValue


class Flags:
    """The feature-flag service's client (this one keeps the flags in memory)."""

    def __init__(self) -> None:
        self.flags = {("new-checkout", "staging"): True, ("new-checkout", "production"): False}

    def get(self, flag: str, environment: str) -> bool:
        """Whether ``flag`` is on in ``environment`` (an unknown flag is off)."""
        return self.flags.get((flag, environment), False)

    def set(self, flag: str, environment: str, enabled: bool) -> bool:
        """Turn ``flag`` on or off in ``environment``; returns whether it was on."""
        was = self.get(flag, environment)
        self.flags[(flag, environment)] = enabled
        return was


FLAGS: Resource[Flags] = Resource("flags")
"""The key tools get the client by: ``ctx.get(FLAGS)`` is a ``Flags``."""


class FlagArgs(BaseModel):
    """Which flag, where."""

    model_config = ConfigDict(extra="forbid")

    flag: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="The flag's name.")
    environment: str = Field(pattern=r"^[a-z0-9-]{1,32}$", description="e.g. staging.")


class SetFlagArgs(FlagArgs):
    """Which flag, where, and on or off."""

    enabled: bool = Field(description="true turns the flag on, false off.")


@tool()
async def flag_status(ctx: ToolContext, args: FlagArgs) -> dict[str, JsonValue]:
    """Tell whether a feature flag is on in an environment."""
    enabled = ctx.get(FLAGS).get(args.flag, args.environment)
    return {"flag": args.flag, "environment": args.environment, "enabled": enabled}


@tool(tier="write", touches=("environment", "flag"))
async def set_flag(ctx: ToolContext, args: SetFlagArgs) -> dict[str, JsonValue]:
    """Turn a feature flag on or off in one environment."""
    was = ctx.get(FLAGS).set(args.flag, args.environment, args.enabled)
    return {
        "flag": args.flag,
        "environment": args.environment,
        "enabled": args.enabled,
        "was_enabled": was,
    }
