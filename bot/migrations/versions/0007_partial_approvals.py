"""several approvers: the rule's mode and count, and the approvals given so far

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Requests recorded before this had one approver: "any" of them, once.
    with op.batch_alter_table("human_requests") as batch:
        batch.add_column(
            sa.Column("mode", sa.String(length=8), nullable=False, server_default="any")
        )
        batch.add_column(
            sa.Column("min_approvals", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("approvals", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("human_requests") as batch:
        batch.drop_column("approvals")
        batch.drop_column("min_approvals")
        batch.drop_column("mode")
