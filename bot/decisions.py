"""The model's decisions and the small parts every event is built of.

Re-exported by :mod:`bot.events`, which is where the rest of the code imports them from.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, TypeAdapter

__all__ = [
    "CallTool",
    "Decision",
    "Frozen",
    "Reply",
    "Usage",
    "change_key",
    "decision_adapter",
    "new_id",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A short, unique, prefixed identifier such as ``hr_5f1c0e9a2b7d``."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Frozen(BaseModel):
    """An immutable model that refuses unknown fields: every event and decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- decisions


class CallTool(Frozen):
    """The model chose to call one tool."""

    kind: Literal["call_tool"] = "call_tool"
    tool: str
    """The tool's name."""
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    """The arguments as the model gave them; validated by the tool's own model."""


class Reply(Frozen):
    """The model chose to answer the person; the run ends here."""

    kind: Literal["reply"] = "reply"
    text: str
    """The answer."""


Decision: TypeAlias = Annotated[CallTool | Reply, Discriminator("kind")]
"""One model turn's single, structured decision."""

decision_adapter: TypeAdapter[CallTool | Reply] = TypeAdapter(Decision)


class Usage(Frozen):
    """Tokens one model call used."""

    input_tokens: int = 0
    """Input tokens billed at the full rate."""
    output_tokens: int = 0
    """Output tokens."""
    cached_tokens: int = 0
    """Input tokens read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache."""


def change_key(thread_id: str, tool: str, arguments: Mapping[str, Any], turn: int) -> str:
    """The idempotency key of an approved change: the call itself and the turn that asked.

    Asking again for the same change in the same turn gives the same key, so however many
    approvals it collects, the backend makes the change once.
    """
    call = json.dumps({"tool": tool, "arguments": arguments}, sort_keys=True, ensure_ascii=True)
    digest = hashlib.sha256(call.encode()).hexdigest()[:24]
    return f"{thread_id}:change:{turn}:{digest}"
