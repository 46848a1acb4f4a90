"""Change tracking: what Ferry wrote, and deleted, after a given snapshot (migration 0005).

Every row of places, timeline_items and samples carries `written_xid`, the 64-bit id of
the transaction that last wrote it: the column default on insert (no insert trigger, so
COPY stays fast), a BEFORE UPDATE trigger on update. Deleted records land in
`deleted_records` with their `deleted_xid` (a statement-level AFTER DELETE trigger).

A reader that wants "everything changed since then" stores the snapshot it read under
(`pg_current_snapshot()`, kept as text) and later selects the rows whose writing
transaction that snapshot did not see (`pg_visible_in_snapshot`). Unlike a timestamp or a
sequence, this is right under concurrency: a long import that commits after the snapshot
was taken is invisible to it, so its rows count as changed, whenever they were written.
The `>= pg_snapshot_xmin(...)` half of each predicate is implied by the other half and
lets PostgreSQL use the (account_id, written_xid) indexes: only recent writes are read.
"""

from __future__ import annotations

import psycopg

TABLES = {"places": "places", "items": "timeline_items", "samples": "samples"}
# The jobs an incremental export may take as its base (SPEC 4): succeeded full or
# incremental archive exports, never a range export, that recorded their snapshot (those
# finished before change tracking did not, and are no base: the next incremental then
# holds everything). The latest by finished_at is the base.
BASE_EXPORT_SQL = (
    "type = 'export.archive' AND status = 'succeeded' AND result ? 'snapshot'"
    " AND NOT params ? 'from' AND NOT params ? 'to'"
)


def current_snapshot(conn: psycopg.Connection) -> str:
    """The snapshot the connection's transaction reads under (in REPEATABLE READ, the
    first statement fixes it for the whole transaction), as text."""
    row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert row is not None
    return str(row[0])


def written_by(conn: psycopg.Connection) -> str:
    """The id of the connection's current transaction, which its writes carry as
    `written_xid` (assigning one if it has none yet), as text."""
    row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
    assert row is not None
    return str(row[0])


def written_after(alias: str, snapshot_param: str) -> str:
    """SQL: the row `alias` was written by a transaction the snapshot did not see.

    `snapshot_param` names a query parameter holding a snapshot's text.
    """
    snap = f"%({snapshot_param})s::pg_snapshot"
    return (
        f"({alias}.written_xid >= pg_snapshot_xmin({snap})"
        f" AND NOT pg_visible_in_snapshot({alias}.written_xid, {snap}))"
    )


def deleted_after(alias: str, snapshot_param: str) -> str:
    """SQL: the `deleted_records` row `alias` records a deletion the snapshot did not see."""
    snap = f"%({snapshot_param})s::pg_snapshot"
    return (
        f"({alias}.deleted_xid >= pg_snapshot_xmin({snap})"
        f" AND NOT pg_visible_in_snapshot({alias}.deleted_xid, {snap}))"
    )


def anything_written_after(
    conn: psycopg.Connection, *, kind: str, account_id: str, snapshot: str
) -> bool:
    """Whether any row of `kind` in the account was written after `snapshot` (and is
    visible to the caller's own snapshot)."""
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {TABLES[kind]} t WHERE t.account_id = %(a)s"
        f" AND {written_after('t', 'snap')})",
        {"a": account_id, "snap": snapshot},
    ).fetchone()
    return bool(row and row[0])


# Deletions no export can list any more: an incremental export lists the deletions its
# base's snapshot did not see, and its base is the account's latest succeeded full or
# incremental export; with no base it lists none. Nothing is pruned while an export of
# the account is under way (a resumed attempt lists deletions since its base again).
_PRUNE = f"""
WITH touched AS (
    SELECT DISTINCT account_id FROM deleted_records
), base AS (
    SELECT DISTINCT ON (account_id) account_id, (result->>'snapshot')::pg_snapshot AS snap
    FROM jobs JOIN touched USING (account_id)
    WHERE {BASE_EXPORT_SQL}
    ORDER BY account_id, finished_at DESC
), busy AS (
    SELECT DISTINCT j.account_id FROM jobs j JOIN touched USING (account_id)
    WHERE j.type = 'export.archive' AND j.status IN ('queued', 'running', 'cancelling')
)
DELETE FROM deleted_records d
WHERE NOT EXISTS (SELECT 1 FROM busy WHERE busy.account_id = d.account_id)
  AND NOT EXISTS (SELECT 1 FROM base WHERE base.account_id = d.account_id
                  AND NOT pg_visible_in_snapshot(d.deleted_xid, base.snap))
"""


def prune_deletions(conn: psycopg.Connection) -> int:
    """Remove the `deleted_records` no export needs any more; returns how many (the
    caller commits)."""
    return conn.execute(_PRUNE).rowcount
