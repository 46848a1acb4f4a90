"""What an import records, inside its own apply transaction, so that it can be undone.

Rows an import *creates* need nothing per row: they carry the apply transaction's id in
`created_xid` (the column default, migration 0007). Rows it *replaces* (an archive's
`on_conflict=newer`, a table's `upsert`) need their before-image: `record_replaced`
copies each such row, as it is just before the write, into `import_undo_rows`.

The import's result keeps `apply_marks`: the apply transaction's id, and a lower bound
of every transaction id that can write the import's rows after it commits (so that a
rollback reads only recent writes through the (account_id, written_xid) index).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from shared.store.changes import TABLES

KINDS = tuple(TABLES)


def record_replaced(
    conn: psycopg.Connection,
    *,
    job_id: str,
    account_id: str,
    kind: str,
    staging: str,
    newer_only: bool = False,
) -> int:
    """Save the before-image of every row of `kind` in the account whose id is in
    `staging` (the rows about to be upserted); returns how many.

    `staging` is a qualified, already quoted table name with an `id uuid` column. Call
    it in the apply transaction, after taking the per-account lock and before the
    write. With `newer_only`, only rows older than the staged copy (`staging` has
    `last_saved` then) are saved: the rows an archive's `on_conflict=newer` replaces. A
    row recorded twice for one job keeps its first (oldest) before-image.
    """
    if kind not in TABLES:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    live = sql.Identifier(TABLES[kind])
    source = sql.SQL(staging)
    if newer_only:
        rows = sql.SQL(
            "FROM {staging} s JOIN {live} l ON l.account_id = %(a)s AND l.id = s.id"
            " WHERE s.last_saved > l.last_saved"
        )
    else:
        rows = sql.SQL(
            "FROM {live} l WHERE l.account_id = %(a)s AND l.id IN (SELECT id FROM {staging})"
        )
    query = (
        sql.SQL(
            "INSERT INTO import_undo_rows (job_id, kind, id, account_id, before)"
            " SELECT %(j)s, %(k)s, l.id, l.account_id, to_jsonb(l) - 'account_id' "
        )
        + rows.format(staging=source, live=live)
        + sql.SQL(" ON CONFLICT (job_id, kind, id) DO NOTHING")
    )
    cursor = conn.execute(query, {"j": job_id, "k": kind, "a": account_id})
    return cursor.rowcount


def forget_unwritten(conn: psycopg.Connection, *, job_id: str) -> int:
    """Drop the before-images of rows the current transaction did not write after all
    (an upsert that left an unchanged row alone); returns how many.

    Optional: a rollback also tells such rows apart (their `written_xid` is still the
    one the before-image holds), but a later change to one of them would otherwise be
    reported as modified since the import.
    """
    dropped = 0
    for kind, table in TABLES.items():
        cursor = conn.execute(
            sql.SQL(
                "DELETE FROM import_undo_rows u USING {live} l WHERE u.job_id = %(j)s"
                " AND u.kind = %(k)s AND l.account_id = u.account_id AND l.id = u.id"
                " AND l.written_xid <> pg_current_xact_id()"
            ).format(live=sql.Identifier(table)),
            {"j": job_id, "k": kind},
        )
        dropped += cursor.rowcount
    return dropped


def apply_marks(conn: psycopg.Connection) -> dict[str, str]:
    """What the import's result must keep for its undo: `apply_xid`, the current
    transaction's id (its rows' `created_xid` / `written_xid`), and `apply_xmin`, the
    oldest transaction id still running now (every later write of its rows carries an
    id no lower: anything that commits after this transaction was either running now or
    starts later)."""
    row = conn.execute(
        "SELECT pg_current_xact_id()::text, pg_snapshot_xmin(pg_current_snapshot())::text"
    ).fetchone()
    assert row is not None
    return {"apply_xid": str(row[0]), "apply_xmin": str(row[1])}
