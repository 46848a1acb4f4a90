"""import undo: which transaction created each record, before-images, batch states

An import's rollback (SPEC 13) deletes the rows the import created and puts back the rows
it replaced:

- `created_xid` on places, timeline_items and samples: the transaction that inserted the
  row. Added nullable with no default first (no table rewrite: existing rows stay NULL,
  "created before undo existed"), then given the default `pg_current_xact_id()` for new
  rows. No index: a rollback finds an import's rows through the (account_id,
  written_xid) index of migration 0005 (docs/design.md, "Undo").
- `import_undo_rows`: the before-image (`to_jsonb` of the live row) of every row an
  import replaced, written in the import's own apply transaction.
- `import_batches`: what happened to an import batch after it succeeded: rolled back
  (when, by which job; the primary key makes that happen at most once) or its undo data
  purged by the sweeper after `rollback_until`. A batch with no row here is undoable.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("places", "timeline_items", "samples")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN created_xid xid8")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN created_xid SET DEFAULT pg_current_xact_id()")
    op.execute(
        """
        CREATE TABLE import_undo_rows (
            job_id uuid NOT NULL,
            kind text NOT NULL,
            id uuid NOT NULL,
            account_id uuid NOT NULL,
            before jsonb NOT NULL,
            CONSTRAINT import_undo_rows_pkey PRIMARY KEY (job_id, kind, id),
            CONSTRAINT import_undo_rows_kind_check CHECK (kind IN ('places', 'items', 'samples'))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE import_batches (
            job_id uuid NOT NULL,
            account_id uuid NOT NULL,
            rolled_back_at timestamptz,
            rollback_job_id uuid,
            undo_purged_at timestamptz,
            CONSTRAINT import_batches_pkey PRIMARY KEY (job_id),
            CONSTRAINT import_batches_job_id_fkey FOREIGN KEY (job_id)
                REFERENCES jobs (id) ON DELETE CASCADE
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE import_batches")
    op.execute("DROP TABLE import_undo_rows")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN created_xid")
