"""escalation chains and request cards posted outside the thread

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("human_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("escalate_after", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("escalate_to", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("escalated_to", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("next_escalation_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_human_requests_next_escalation_at"),
            ["next_escalation_at"],
            unique=False,
        )
    op.create_table(
        "request_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("place", sa.String(length=320), nullable=False),
        sa.Column("ref", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["human_requests.id"],
            name=op.f("fk_request_messages_request_id_human_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_messages")),
        sa.UniqueConstraint("request_id", "place", name="uq_request_messages_place"),
    )
    with op.batch_alter_table("request_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_messages_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("request_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_messages_request_id"))
    op.drop_table("request_messages")
    with op.batch_alter_table("human_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_human_requests_next_escalation_at"))
        batch_op.drop_column("next_escalation_at")
        batch_op.drop_column("escalated_to")
        batch_op.drop_column("escalation_level")
        batch_op.drop_column("escalate_to")
        batch_op.drop_column("escalate_after")
        batch_op.drop_column("notify")
