"""change tracking: which transaction last wrote each record, and what was deleted

Incremental exports, resumed exports and (later) import undo need to know what Ferry
wrote and when, whatever the archive's `lastSaved` says (SPEC 4):

- `written_xid` on places, timeline_items and samples: the 64-bit id of the transaction
  that last wrote the row. Inserts take it from the column default (evaluated per row, no
  trigger: a row trigger on INSERT would cost more than the COPY of a sample itself); a
  BEFORE UPDATE row trigger refreshes it on every update. Existing rows get 0, which
  every snapshot sees as old.
- `deleted_records`: one row per deleted record, written by a statement-level AFTER
  DELETE trigger from its transition table, so deleting a million samples is one
  INSERT … SELECT. It keeps the record's bucket key (`bucket_at`: an item's start date, a
  sample's date) so a resumed export can tell which file lost a record.
- indexes on (account_id, written_xid) and (account_id, kind, deleted_xid): "what did
  this account change after snapshot S" is a range scan from S's xmin.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("places", "timeline_items", "samples")
# table -> (kind in deleted_records, the column that places a record in its bucket)
DELETIONS = {
    "places": ("places", "NULL::timestamptz"),
    "timeline_items": ("items", "start_date"),
    "samples": ("samples", "date"),
}


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION ferry_mark_written() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.written_xid := pg_current_xact_id();
            RETURN NEW;
        END $$
        """
    )
    for table in TABLES:
        # A constant default first: existing rows get 0 without a table rewrite.
        op.execute(f"ALTER TABLE {table} ADD COLUMN written_xid xid8 NOT NULL DEFAULT '0'")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN written_xid SET DEFAULT pg_current_xact_id()")
        op.execute(
            f"CREATE TRIGGER {table}_mark_written BEFORE UPDATE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION ferry_mark_written()"
        )
        op.create_index(f"{table}_account_written_idx", table, ["account_id", "written_xid"])
    op.execute(
        """
        CREATE TABLE deleted_records (
            account_id uuid NOT NULL,
            kind text NOT NULL,
            id uuid NOT NULL,
            bucket_at timestamptz,
            deleted_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            deleted_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT deleted_records_kind_check CHECK (kind IN ('places', 'items', 'samples'))
        )
        """
    )
    op.create_index(
        "deleted_records_account_kind_xid_idx",
        "deleted_records",
        ["account_id", "kind", "deleted_xid"],
    )
    for table, (kind, bucket) in DELETIONS.items():
        op.execute(
            f"""
            CREATE FUNCTION ferry_{table}_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO deleted_records (account_id, kind, id, bucket_at)
                SELECT account_id, '{kind}', id, {bucket} FROM gone;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {table}_record_deletions AFTER DELETE ON {table}"
            " REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"
            f" EXECUTE FUNCTION ferry_{table}_deleted()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_record_deletions ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS ferry_{table}_deleted()")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_mark_written ON {table}")
        op.drop_index(f"{table}_account_written_idx", table_name=table)
        op.drop_column(table, "written_xid")
    op.drop_index("deleted_records_account_kind_xid_idx", table_name="deleted_records")
    op.drop_table("deleted_records")
    op.execute("DROP FUNCTION IF EXISTS ferry_mark_written()")
