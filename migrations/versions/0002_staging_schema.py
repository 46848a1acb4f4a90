"""staging schema for imports

Each archive import loads its records into UNLOGGED tables of its own in this schema
before anything touches the account's data (SPEC 11: validated first, all or nothing).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS ferry_staging")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS ferry_staging CASCADE")
