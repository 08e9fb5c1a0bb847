"""indexes for per-thread requests, paginated lists and the sweep's queries

Every query that lists or sweeps now finds its rows by an index instead of reading the
whole table: a thread's pending requests by (thread_id, status) in their order; the
request list, the expiry and the escalation sweeps by status and then their order or
deadline; the thread
list by (updated_at, id) and by status; the stale inbox by (status, received_at). The
one-column indexes each of these begins with go, as the composite one serves them too.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-20 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW = [
    (
        "human_requests",
        "ix_human_requests_thread_status",
        ["thread_id", "status", "created_at", "id"],
    ),
    ("human_requests", "ix_human_requests_status_created", ["status", "created_at", "id"]),
    ("human_requests", "ix_human_requests_status_expiry", ["status", "expires_at"]),
    ("human_requests", "ix_human_requests_status_escalation", ["status", "next_escalation_at"]),
    ("threads", "ix_threads_updated", ["updated_at", "id"]),
    ("threads", "ix_threads_status_updated", ["status", "updated_at", "id"]),
    ("inbox", "ix_inbox_status_received", ["status", "received_at"]),
]
_OLD = [
    ("human_requests", "ix_human_requests_thread_id", ["thread_id"]),
    ("human_requests", "ix_human_requests_status", ["status"]),
    ("human_requests", "ix_human_requests_expires_at", ["expires_at"]),
    ("human_requests", "ix_human_requests_next_escalation_at", ["next_escalation_at"]),
    ("threads", "ix_threads_status", ["status"]),
    ("threads", "ix_threads_updated_at", ["updated_at"]),
    ("inbox", "ix_inbox_status", ["status"]),
]


def upgrade() -> None:
    for table, name, columns in _NEW:
        op.create_index(name, table, columns, unique=False)
    for table, name, _columns in _OLD:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for table, name, columns in _OLD:
        op.create_index(name, table, columns, unique=False)
    for table, name, _columns in _NEW:
        op.drop_index(name, table_name=table)
