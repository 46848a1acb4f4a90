"""Indexes for the job listings and the operators' overview (SPEC 14)

Every list of jobs is newest first with keyset paging (`(created_at, id) < cursor`), so
each index ends in `created_at DESC, id DESC`, after the filter columns an operator can
give: none (every job), status alone (the failed-jobs page, running jobs, the oldest
queued job), status and type, status and error code, account and status. The overview's
counts by status and type read the (status, type, …) index; failures of the last day are
a range of a small partial index on `finished_at`. `jobs_status_idx` (status alone) is
covered by `jobs_status_created_idx` and goes.

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = {
    "jobs_created_idx": "(created_at DESC, id DESC)",
    "jobs_status_created_idx": "(status, created_at DESC, id DESC)",
    "jobs_status_type_created_idx": "(status, type, created_at DESC, id DESC)",
    "jobs_status_code_created_idx": "(status, (error->>'code'), created_at DESC, id DESC)",
    "jobs_account_status_created_idx": "(account_id, status, created_at DESC, id DESC)",
    "jobs_failed_finished_idx": "(finished_at) WHERE status = 'failed'",
}


def upgrade() -> None:
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON jobs {definition}")
    op.drop_index("jobs_status_idx", table_name="jobs")


def downgrade() -> None:
    op.create_index("jobs_status_idx", "jobs", ["status"], unique=False)
    for name in reversed(list(INDEXES)):
        op.execute(f"DROP INDEX {name}")
