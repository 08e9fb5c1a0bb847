"""human requests: every requester person, the approved call's change key; locks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("human_requests") as batch:
        batch.add_column(sa.Column("requesters", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("change_key", sa.String(length=255), nullable=True))
    op.create_table(
        "locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_locks")),
    )


def downgrade() -> None:
    op.drop_table("locks")
    with op.batch_alter_table("human_requests") as batch:
        batch.drop_column("change_key")
        batch.drop_column("requesters")
