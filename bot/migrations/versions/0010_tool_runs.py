"""calls of tools that cannot tell a repeat, started at most once

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-15 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tool_runs",
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("thread_id", sa.String(length=40), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_tool_runs")),
    )


def downgrade() -> None:
    op.drop_table("tool_runs")
