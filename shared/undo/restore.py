"""The SQL of a rollback: what the import created and replaced, what changed since, and
putting the account back (SPEC 13).

An import's rows are told apart by transaction ids (migrations 0005 and 0007):

- created: `created_xid = apply_xid`. Unchanged since while `written_xid = apply_xid`.
- replaced: a before-image in `import_undo_rows`. Unchanged since while the live row's
  `written_xid = apply_xid`; a live row still carrying the before-image's own
  `written_xid` was not written by the import after all (nothing to undo).
- changed since ("modified"): any other `written_xid`, or a replaced row that is gone.
  A created row that is gone needs nothing: undoing it is deleting it either way.

Every later write of an import's rows carries a transaction id of at least the
import's `apply_xmin`, so the scans read the (account_id, written_xid) index from there
instead of the whole account. Everything here runs in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from shared.fields import ITEM_COLUMNS, PLACE_COLUMNS, SAMPLE_COLUMNS
from shared.store.changes import TABLES

KINDS = tuple(TABLES)
COLUMNS = {"places": PLACE_COLUMNS, "items": ITEM_COLUMNS, "samples": SAMPLE_COLUMNS}
# Modified rows listed in a rollback's preview (all are counted).
LISTED = 100
# What a visit that loses its place becomes (the Arc apps' rules, as an import does it).
_NO_PLACE = {"confirmed_place": "false", "uncertain_place": "true"}


@dataclass(frozen=True, slots=True)
class Marks:
    """The import batch a rollback undoes."""

    import_id: str
    account_id: str
    apply_xid: str
    apply_xmin: str

    def params(self, **more: Any) -> dict[str, Any]:
        """Query parameters every statement here uses."""
        return {
            "j": self.import_id,
            "a": self.account_id,
            "x": self.apply_xid,
            "lo": self.apply_xmin,
            **more,
        }


def _live(kind: str) -> sql.Identifier:
    return sql.Identifier(TABLES[kind])


# A live row of `l` the import created (read from the written_xid index).
_CREATED = "l.account_id = %(a)s AND l.written_xid >= %(lo)s::xid8 AND l.created_xid = %(x)s::xid8"
# A live row of `l` the import created and something wrote since: two ranges of the
# written_xid index that leave out the import's own rows (1 M of them, for a big import:
# reading them cost the check 5 s).
_CREATED_CHANGED = (
    "l.account_id = %(a)s AND ((l.written_xid >= %(lo)s::xid8 AND l.written_xid < %(x)s::xid8)"
    " OR l.written_xid > %(x)s::xid8) AND l.created_xid = %(x)s::xid8"
)
# A before-image `u` whose row `l` (LEFT JOINed) changed since the import, or is gone.
_REPLACED_CHANGED = (
    "(l.id IS NULL OR (l.written_xid <> %(x)s::xid8"
    " AND l.written_xid <> (u.before->>'written_xid')::xid8))"
)


def modified(conn: psycopg.Connection, marks: Marks) -> dict[str, Any]:
    """The rows changed since the import: `{"modified": n, "ids": [...]}`, the first
    LISTED with their kind, the change (`updated` or `deleted`), what `revert` does to
    them, and for a replaced row the fields `revert` would put back."""
    total = 0
    listed: list[dict[str, Any]] = []
    by_kind: dict[str, int] = {}
    for kind in KINDS:
        live = _live(kind)
        room = max(0, LISTED - len(listed))
        # Materialized first: with ORDER BY id LIMIT on the table itself the planner
        # walked the primary key through every row of the account (2.8 s at 1 M).
        created = conn.execute(
            sql.SQL(
                "WITH changed AS MATERIALIZED (SELECT l.id FROM {live} l"
                f" WHERE {_CREATED_CHANGED})"
                " SELECT count(*) OVER (), id::text FROM changed ORDER BY id LIMIT %(n)s"
            ).format(live=live),
            marks.params(n=max(room, 1)),
        ).fetchall()
        replaced = conn.execute(
            sql.SQL(
                "SELECT count(*) OVER (), u.id::text, l.id IS NULL,"
                " CASE WHEN l.id IS NOT NULL THEN ARRAY(SELECT e.key FROM jsonb_each(u.before) e"
                " WHERE e.key NOT IN ('written_xid', 'created_xid')"
                " AND e.value IS DISTINCT FROM to_jsonb(l) -> e.key ORDER BY e.key) END"
                " FROM import_undo_rows u LEFT JOIN {live} l"
                " ON l.account_id = u.account_id AND l.id = u.id"
                f" WHERE u.job_id = %(j)s AND u.kind = %(k)s AND {_REPLACED_CHANGED}"
                " ORDER BY u.id LIMIT %(n)s"
            ).format(live=live),
            marks.params(k=kind, n=max(room, 1)),
        ).fetchall()
        count = (created[0][0] if created else 0) + (replaced[0][0] if replaced else 0)
        by_kind[kind] = count
        total += count
        for _, row_id in created[:room]:
            listed.append(
                {
                    "kind": kind,
                    "id": row_id,
                    "change": "updated",
                    "revert": "delete",
                    "fields": None,
                }
            )
        for _, row_id, gone, fields in replaced[: max(0, LISTED - len(listed))]:
            listed.append(
                {
                    "kind": kind,
                    "id": row_id,
                    "change": "deleted" if gone else "updated",
                    "revert": "restore",
                    "fields": None if gone else list(fields),
                }
            )
    return {"modified": total, "by_kind": by_kind, "ids": listed}


def plan(conn: psycopg.Connection, marks: Marks, *, revert: bool) -> dict[str, dict[str, int]]:
    """Temp tables (dropped at commit) of the rows the rollback deletes and restores, per
    kind (the samples it deletes are only counted); returns their counts. With `revert`,
    rows changed since are undone too."""
    counts: dict[str, dict[str, int]] = {"delete": {}, "restore": {}}
    for kind in KINDS:
        live = _live(kind)
        gone = sql.Identifier(f"undo_gone_{kind}")
        back = sql.Identifier(f"undo_back_{kind}")
        created = sql.SQL(
            f"FROM {{live}} l WHERE {_CREATED} AND (l.written_xid = %(x)s::xid8 OR %(revert)s)"
        ).format(live=live)
        if kind == "samples":
            # Nothing points at a sample: its deletion needs no list of ids, only the
            # count (a table and an index of 1 M ids cost 1 s).
            row = conn.execute(
                sql.SQL("SELECT count(*) {c}").format(c=created), marks.params(revert=revert)
            ).fetchone()
            counts["delete"][kind] = int(row[0]) if row else 0
        else:
            cursor = conn.execute(
                sql.SQL("CREATE TEMP TABLE {gone} ON COMMIT DROP AS SELECT l.id {c}").format(
                    gone=gone, c=created
                ),
                marks.params(revert=revert),
            )
            counts["delete"][kind] = cursor.rowcount
            conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {t} (id)").format(t=gone))
            conn.execute(sql.SQL("ANALYZE {t}").format(t=gone))
        cursor = conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE {back} ON COMMIT DROP AS SELECT u.id, u.before"
                " FROM import_undo_rows u LEFT JOIN {live} l"
                " ON l.account_id = u.account_id AND l.id = u.id"
                " WHERE u.job_id = %(j)s AND u.kind = %(k)s AND CASE"
                " WHEN l.id IS NULL THEN %(revert)s"
                " WHEN l.written_xid = %(x)s::xid8 THEN true"
                " WHEN l.written_xid = (u.before->>'written_xid')::xid8 THEN false"
                " ELSE %(revert)s END"
            ).format(back=back, live=live),
            marks.params(k=kind, revert=revert),
        )
        counts["restore"][kind] = cursor.rowcount
        # Indexed and analyzed: the live tables' statistics know nothing yet of an account
        # that was just imported into (estimates of one row), and a nested loop over an
        # unindexed temp table was quadratic (200 s for 100 k samples, bench/rollback.py).
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {t} (id)").format(t=back))
        conn.execute(sql.SQL("ANALYZE {t}").format(t=back))
    return counts


def delete_created(conn: psycopg.Connection, marks: Marks, kind: str, *, revert: bool) -> int:
    """Delete the planned created rows of a kind, after detaching what stays from them.

    Rows that stay (changed since and kept, or written by someone else after the
    import) may point at a row that goes: that reference becomes null, as an import
    nulls a reference it cannot resolve (and a visit that loses its place is uncertain).
    Order: samples, then items, then places, so no reference is left dangling.
    """
    gone = sql.Identifier(f"undo_gone_{kind}")
    params = marks.params()
    if kind == "items":
        conn.execute(
            sql.SQL(
                "UPDATE samples s SET timeline_item_id = NULL WHERE s.account_id = %(a)s"
                " AND s.timeline_item_id IN (SELECT id FROM {gone})"
            ).format(gone=gone),
            params,
        )
        for edge in ("previous_item_id", "next_item_id"):
            conn.execute(
                sql.SQL(
                    "UPDATE timeline_items t SET {e} = NULL WHERE t.account_id = %(a)s"
                    " AND t.{e} IN (SELECT id FROM {gone})"
                    " AND t.id NOT IN (SELECT id FROM {gone})"
                ).format(e=sql.Identifier(edge), gone=gone),
                params,
            )
    if kind == "places":
        conn.execute(
            sql.SQL(
                "UPDATE timeline_items t SET place_id = NULL, confirmed_place = false,"
                " uncertain_place = true WHERE t.account_id = %(a)s"
                " AND t.place_id IN (SELECT id FROM {gone})"
            ).format(gone=gone),
            params,
        )
    # The plan's own predicate, not a join with its table: one range scan of the
    # (account_id, written_xid) index, whatever the statistics say.
    cursor = conn.execute(
        sql.SQL(
            f"DELETE FROM {{live}} l WHERE {_CREATED} AND (l.written_xid = %(x)s::xid8 OR %(r)s)"
        ).format(live=_live(kind)),
        marks.params(r=revert),
    )
    return cursor.rowcount


def _exists(table: str, column: str) -> str:
    return f"EXISTS (SELECT 1 FROM {table} x WHERE x.account_id = %(a)s AND x.id = r.{column})"


def restore_replaced(conn: psycopg.Connection, marks: Marks, kind: str) -> int:
    """Put the planned replaced rows of a kind back as their before-images, field for
    field (`created_xid` too; `written_xid` says the rollback wrote them). Places first,
    then items, then samples: a reference to a row that no longer exists becomes null.
    Items go back with their edges in a second statement, once all of them exist."""
    live = _live(kind)
    back = sql.Identifier(f"undo_back_{kind}")
    columns = [*COLUMNS[kind], "created_xid"]
    values: list[str] = []
    for column in columns:
        value = f"r.{column}"
        if kind == "items" and column in ("previous_item_id", "next_item_id"):
            value = "NULL"
        elif kind == "items" and column == "place_id":
            value = f"CASE WHEN {_exists('places', 'place_id')} THEN r.place_id END"
        elif kind == "items" and column in _NO_PLACE:
            lost = f"r.is_visit AND r.place_id IS NOT NULL AND NOT {_exists('places', 'place_id')}"
            value = f"CASE WHEN {lost} THEN {_NO_PLACE[column]} ELSE r.{column} END"
        elif kind == "samples" and column == "timeline_item_id":
            value = f"CASE WHEN {_exists('timeline_items', 'timeline_item_id')} THEN r.{column} END"
        values.append(value)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "id")
    cursor = conn.execute(
        sql.SQL(
            "INSERT INTO {live} (account_id, {cols}) SELECT %(a)s, {vals}"
            " FROM {back} b, jsonb_populate_record(NULL::{live}, b.before) r"
            " ON CONFLICT (account_id, id) DO UPDATE SET {updates}"
        ).format(
            live=live,
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            vals=sql.SQL(", ".join(values)),
            back=back,
            updates=sql.SQL(updates),
        ),
        marks.params(),
    )
    restored = cursor.rowcount
    if kind == "items":
        conn.execute(
            sql.SQL(
                "UPDATE timeline_items t SET"
                " previous_item_id = CASE WHEN {prev} THEN r.previous_item_id END,"
                " next_item_id = CASE WHEN {next} THEN r.next_item_id END"
                " FROM {back} b, jsonb_populate_record(NULL::timeline_items, b.before) r"
                " WHERE t.account_id = %(a)s AND t.id = r.id"
                " AND (r.previous_item_id IS NOT NULL OR r.next_item_id IS NOT NULL)"
            ).format(
                prev=sql.SQL(_exists("timeline_items", "previous_item_id")),
                next=sql.SQL(_exists("timeline_items", "next_item_id")),
                back=back,
            ),
            marks.params(),
        )
    return restored


def mark_rolled_back(conn: psycopg.Connection, marks: Marks, *, rollback_job_id: str) -> str | None:
    """Mark the batch rolled back by this job: None when done, else why not
    (`rolled_back`, `expired`). Done first in the restore's transaction: the row lock it
    takes orders this rollback against another one and against the sweeper's purge."""
    row = conn.execute(
        "INSERT INTO import_batches (job_id, account_id, rolled_back_at, rollback_job_id)"
        " VALUES (%(j)s, %(a)s, now(), %(r)s) ON CONFLICT (job_id) DO UPDATE"
        " SET rolled_back_at = now(), rollback_job_id = %(r)s"
        " WHERE import_batches.rolled_back_at IS NULL AND import_batches.undo_purged_at IS NULL"
        " RETURNING job_id",
        marks.params(r=rollback_job_id),
    ).fetchone()
    if row is None:
        state = conn.execute(
            "SELECT rolled_back_at IS NOT NULL FROM import_batches WHERE job_id = %(j)s",
            marks.params(),
        ).fetchone()
        return "rolled_back" if state and state[0] else "expired"
    return None


def forget_batch(conn: psycopg.Connection, marks: Marks) -> None:
    """Drop the batch's undo data (the rollback used it; nothing can use it again)."""
    conn.execute("DELETE FROM import_undo_rows WHERE job_id = %(j)s", marks.params())
