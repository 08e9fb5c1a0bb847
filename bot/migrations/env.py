"""Alembic environment: runs on the connection :meth:`bot.store.Database.migrate` hands over."""

from typing import Any, Literal

from alembic import context

from bot.plugins import load_plugins
from bot.store._tables import Base

config = context.config


def render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    # Our UTC type is stored as a plain timezone-aware DateTime; migrations say so.
    if kind == "type" and type(item).__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `opsloop migrate`")

context.configure(
    connection=connection,
    # The core's tables and those plugins keep in the same database (Slack installations…).
    target_metadata=[Base.metadata, *(p.tables for p in load_plugins() if p.tables is not None)],
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
