"""The undo data of import batches, as the sweeper keeps it (migration 0007).

An import batch stays undoable for FERRY_ROLLBACK_HOURS after its import finished
(`rollback_until`). After that its before-images in `import_undo_rows` go, and
`import_batches.undo_purged_at` says so, so that no rollback can run on half its data
even if the setting is raised later.
"""

from __future__ import annotations

import psycopg

# Succeeded imports that recorded undo data (`apply_xmin`, shared/undo/recorder.py).
UNDOABLE_SQL = (
    "j.type IN ('import.archive', 'import.table') AND j.status = 'succeeded'"
    " AND j.result ? 'apply_xmin'"
)

_MARK_EXPIRED = f"""
INSERT INTO import_batches (job_id, account_id, undo_purged_at)
SELECT j.id, j.account_id, now() FROM jobs j
WHERE {UNDOABLE_SQL}
  AND j.finished_at + make_interval(secs => %(hours)s * 3600) < now()
  AND NOT EXISTS (SELECT 1 FROM import_batches b WHERE b.job_id = j.id)
ON CONFLICT (job_id) DO NOTHING
RETURNING job_id
"""
# A batch that has a row already (a rollback was asked for, and failed or was cancelled).
_MARK_EXPIRED_KNOWN = f"""
UPDATE import_batches b SET undo_purged_at = now() FROM jobs j
WHERE j.id = b.job_id AND {UNDOABLE_SQL}
  AND b.undo_purged_at IS NULL AND b.rolled_back_at IS NULL
  AND j.finished_at + make_interval(secs => %(hours)s * 3600) < now()
RETURNING b.job_id
"""
# A rolled-back batch's data went in the rollback's own transaction.
_PURGE = "DELETE FROM import_undo_rows WHERE job_id = ANY(%(ids)s::uuid[])"


def purge_expired_undo(conn: psycopg.Connection, *, hours: float) -> list[str]:
    """Mark the batches past rollback_until as expired and remove their undo data;
    returns the ids of the batches marked now (the caller commits)."""
    marked = [str(r[0]) for r in conn.execute(_MARK_EXPIRED, {"hours": hours})]
    marked += [str(r[0]) for r in conn.execute(_MARK_EXPIRED_KNOWN, {"hours": hours})]
    if marked:
        conn.execute(_PURGE, {"ids": marked})
    return marked
