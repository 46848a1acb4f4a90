"""Indexes on the columns that reference timeline items and places

`timeline_items` references itself (previous_item_id, next_item_id) and `places`
(place_id) by foreign keys. Deleting an item or a place makes PostgreSQL look for rows
still pointing at it, once per deleted row and key; without an index on the referencing
columns each look is a scan of every account's items. An import's rollback deletes
thousands of items at once: 2.6 s for 4,602 items next to 1 M samples
(bench/rollback.py, log_min_duration_statement). Partial (non-null only): most items have
no place, and the checks ask for one value, never null.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = {
    "timeline_items_account_previous_idx": "previous_item_id",
    "timeline_items_account_next_idx": "next_item_id",
    "timeline_items_account_place_idx": "place_id",
}


def upgrade() -> None:
    for name, column in INDEXES.items():
        op.execute(
            f"CREATE INDEX {name} ON timeline_items (account_id, {column})"
            f" WHERE {column} IS NOT NULL"
        )


def downgrade() -> None:
    for name in reversed(list(INDEXES)):
        op.execute(f"DROP INDEX {name}")
