"""console sessions and login links name who they sign in

Revision ID: 0006_session_identity
Revises: 0006_api_tokens
Create Date: 2026-12-01 10:00:00.000000

Sessions from before this revision name nobody: a token session becomes the admin's; a
login-link session (which could act as anyone) is revoked, and unused login codes lapse.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from bot.store._tables import UTCDateTime

revision: str = "0006_session_identity"
down_revision: str | None = "0006_api_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("console_sessions") as batch:
        batch.add_column(sa.Column("principal", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("auth", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("groups", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("display_name", sa.String(length=255), nullable=True))
    with op.batch_alter_table("console_login_codes") as batch:
        batch.add_column(sa.Column("principal", sa.String(length=255), nullable=True))
    sessions = sa.table(
        "console_sessions",
        sa.column("method", sa.String),
        sa.column("principal", sa.String),
        sa.column("auth", sa.String),
        sa.column("display_name", sa.String),
        sa.column("revoked_at", UTCDateTime()),
    )
    op.execute(
        sessions.update()
        .where(sessions.c.method == "api-token")
        .values(principal="admin:admin", auth="admin", display_name="admin")
    )
    op.execute(
        sessions.update()
        .where(sessions.c.principal.is_(None), sessions.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    # Codes made before now name nobody; use_login_code refuses them (principal IS NULL).


def downgrade() -> None:
    with op.batch_alter_table("console_login_codes") as batch:
        batch.drop_column("principal")
    with op.batch_alter_table("console_sessions") as batch:
        batch.drop_column("display_name")
        batch.drop_column("groups")
        batch.drop_column("auth")
        batch.drop_column("principal")
