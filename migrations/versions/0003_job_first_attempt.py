"""jobs.first_attempt: where the current run's attempts began

An operator restart gives a failed job a fresh budget of FERRY_MAX_ATTEMPTS attempts;
attempts are counted from this column, which a restart sets to the new attempt.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("first_attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("jobs", "first_attempt")
