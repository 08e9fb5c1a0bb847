"""email channel state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 20:49:38.596256
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_link_uses",
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("used_by", sa.String(length=320), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_email_link_uses")),
    )
    op.create_table(
        "email_mailboxes",
        sa.Column("mailbox", sa.String(length=255), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox", name=op.f("pk_email_mailboxes")),
    )
    op.create_table(
        "email_messages",
        sa.Column("message_id", sa.String(length=512), nullable=False),
        sa.Column("room", sa.String(length=255), nullable=False),
        sa.Column("thread_key", sa.String(length=512), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("correspondent", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("subject_key", sa.String(length=200), nullable=False),
        sa.Column("refs", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_email_messages")),
    )
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_email_messages_subject", ["room", "subject_key", "correspondent"], unique=False
        )
        batch_op.create_index(
            "ix_email_messages_thread", ["room", "thread_key", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_email_messages_thread")
        batch_op.drop_index("ix_email_messages_subject")

    op.drop_table("email_messages")
    op.drop_table("email_mailboxes")
    op.drop_table("email_link_uses")
