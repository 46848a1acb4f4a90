"""An import's staging tables and the SQL that checks and applies them (SPEC 11).

Each import job owns three UNLOGGED tables in the `ferry_staging` schema, one per record
kind, shaped like the live table plus the record's place in the archive (`file_no`,
`idx`). Validation COPYs every valid record into them; the set-based checks (duplicate
ids, references, conflicts) run there; the apply is a few INSERT … SELECT statements in
one transaction. UNLOGGED tables skip the WAL (they vanish after a database crash, which
a resumed import detects by counting rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from shared.archive.report import LISTED
from shared.fields import (
    ITEM_BASE_FIELDS,
    PLACE_FIELDS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Field,
)
from shared.store.locks import lock_account_data
from shared.store.staging import SCHEMA, STAGED_TYPE, binary_copy, table_name
from shared.store.staging import table as staging_table

KINDS = ("places", "items", "samples")
LIVE_TABLE = {"places": "places", "items": "timeline_items", "samples": "samples"}
FIELDS: dict[str, tuple[Field, ...]] = {
    "places": PLACE_FIELDS,
    "items": ITEM_BASE_FIELDS + VISIT_FIELDS + TRIP_FIELDS,
    "samples": SAMPLE_FIELDS,
}
COLUMNS = {kind: tuple(f.column for f in fields) for kind, fields in FIELDS.items()}
EDGES = ("previous_item_id", "next_item_id")
# What a visit that loses its place becomes (TimelineItemVisit.clearPlace).
PLACE_FLAGS = sql.SQL("confirmed_place = false, uncertain_place = true")
# Hashing a million ids stays in memory with this much (the default 4 MB spills to
# disk); it is set for the staging checks' own transaction only.
STAGING_WORK_MEM = "256MB"


def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def _cols(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(_ident(c) for c in columns)


@dataclass(frozen=True, slots=True)
class Staging:
    """The staging tables of one job."""

    job_id: str

    def name(self, kind: str) -> str:
        """The unqualified name of a kind's staging table."""
        return table_name(self.job_id, kind)

    def table(self, kind: str) -> sql.Identifier:
        """The staging table of a record kind."""
        return staging_table(self.job_id, kind)

    # --- life of the tables -----------------------------------------------------------

    def create(self, conn: psycopg.Connection) -> None:
        """Create empty staging tables (dropping any left by an earlier attempt)."""
        self.drop(conn)
        for kind in KINDS:
            columns = sql.SQL(", ").join(
                sql.SQL("{c} {t}").format(c=_ident(f.column), t=sql.SQL(STAGED_TYPE[f.kind]))
                for f in FIELDS[kind]
            )
            conn.execute(
                sql.SQL("CREATE UNLOGGED TABLE {t} (file_no int4, idx int4, {cols})").format(
                    t=self.table(kind), cols=columns
                )
            )

    def drop(self, conn: psycopg.Connection) -> None:
        """Drop the staging tables if they exist."""
        for kind in KINDS:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=self.table(kind)))

    def exists(self, conn: psycopg.Connection) -> bool:
        """Whether all three tables exist."""
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            (SCHEMA, [self.name(kind) for kind in KINDS]),
        ).fetchone()
        return bool(row and row[0] == len(KINDS))

    def counts(self, conn: psycopg.Connection) -> dict[str, int]:
        """Rows in each staging table."""
        found = {}
        for kind in KINDS:
            query = sql.SQL("SELECT count(*) FROM {t}").format(t=self.table(kind))
            row = conn.execute(query).fetchone()
            found[kind] = int(row[0]) if row else 0
        return found

    @contextmanager
    def writer(self, conn: psycopg.Connection, kind: str) -> Iterator[psycopg.Copy]:
        """A binary COPY into a staging table; rows are (file_no, idx, *columns)."""
        types = ["int4", "int4", *(STAGED_TYPE[f.kind] for f in FIELDS[kind])]
        columns = ("file_no", "idx", *COLUMNS[kind])
        with binary_copy(conn, self.table(kind), columns, types) as copy:
            yield copy

    def index(self, conn: psycopg.Connection) -> None:
        """Indexes for the checks and the apply.

        Places and items get an index on id (references point at them); every kind gets a
        BRIN index on the archive position, for the apply's file-by-file batches. Samples
        need no id index: their checks are hash joins.
        """
        conn.execute(sql.SQL("SET LOCAL work_mem = {m}").format(m=sql.Literal(STAGING_WORK_MEM)))
        for kind in KINDS:
            table = self.table(kind)
            if kind != "samples":
                conn.execute(sql.SQL("CREATE INDEX ON {t} (id)").format(t=table))
            conn.execute(sql.SQL("CREATE INDEX ON {t} USING brin (file_no)").format(t=table))
            conn.execute(sql.SQL("ANALYZE {t}").format(t=table))

    # --- checks -------------------------------------------------------------------------

    def null_missing(
        self, conn: psycopg.Connection, *, kind: str, column: str, target: str, account_id: str
    ) -> tuple[int, list[dict[str, Any]]]:
        """Null references to records in neither the archive nor the account; report them.

        A visit that loses its place also loses what depends on it: it can no longer be
        confirmed, and it is uncertain (the Arc apps' rules, `app_rules`).
        """
        condition = sql.SQL(
            "s.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {stg} x WHERE x.id = s.{c})"
            " AND NOT EXISTS (SELECT 1 FROM {live} l WHERE l.account_id = %(a)s"
            " AND l.id = s.{c})"
        ).format(c=_ident(column), stg=self.table(target), live=_ident(LIVE_TABLE[target]))
        also = PLACE_FLAGS if column == "place_id" else None
        return self._null_where(conn, kind, (column,), condition, {"a": account_id}, also=also)

    def null_sample_items(
        self, conn: psycopg.Connection, account_id: str
    ) -> dict[str, tuple[int, list[dict[str, Any]]]]:
        """Null a sample's item when it is in neither the archive nor the account
        ("missing"), or when it is deleted ("deleted"); report each kind.

        The Arc apps refuse to store a sample on a deleted item, and abort the rest of
        its file's batch when they meet one (LocoKit2's sample guard trigger). The
        archive's copy of an item decides; the account's when the archive has none.
        Both checks share one pass over the staged samples.
        """
        items = self.table("items")
        found = conn.execute(
            sql.SQL(
                "SELECT missing, total, file_no, idx, value FROM (SELECT s.file_no, s.idx,"
                " s.timeline_item_id::text AS value, x.id IS NULL AND l.id IS NULL AS missing,"
                " row_number() OVER (PARTITION BY x.id IS NULL AND l.id IS NULL"
                " ORDER BY s.file_no, s.idx) AS k,"
                " count(*) OVER (PARTITION BY x.id IS NULL AND l.id IS NULL) AS total"
                " FROM {samples} s LEFT JOIN {items} x ON x.id = s.timeline_item_id"
                " LEFT JOIN timeline_items l ON x.id IS NULL AND l.account_id = %(a)s"
                " AND l.id = s.timeline_item_id WHERE s.timeline_item_id IS NOT NULL"
                " AND coalesce(x.deleted, l.deleted, true)) n WHERE k <= {limit}"
                " ORDER BY file_no, idx"
            ).format(samples=self.table("samples"), items=items, limit=sql.Literal(LISTED)),
            {"a": account_id},
        ).fetchall()
        out: dict[str, tuple[int, list[dict[str, Any]]]] = {"missing": (0, []), "deleted": (0, [])}
        for missing, total, file_no, idx, value in found:
            key = "missing" if missing else "deleted"
            rows = out[key][1]
            rows.append({"file_no": file_no, "index": idx, "value": value})
            out[key] = (total, rows)
        if found:
            # The items a sample may keep, as one hashed set (a lookup per sample would
            # cost seconds on a million).
            conn.execute(
                sql.SQL(
                    "UPDATE {samples} s SET timeline_item_id = NULL"
                    " WHERE s.timeline_item_id IS NOT NULL AND s.timeline_item_id NOT IN"
                    " (SELECT x.id FROM {items} x WHERE NOT x.deleted UNION ALL"
                    " SELECT l.id FROM timeline_items l WHERE l.account_id = %(a)s"
                    " AND NOT l.deleted AND NOT EXISTS (SELECT 1 FROM {items} y"
                    " WHERE y.id = l.id))"
                ).format(samples=self.table("samples"), items=items),
                {"a": account_id},
            )
        return out

    def null_self_edges(self, conn: psycopg.Connection) -> tuple[int, list[dict[str, Any]]]:
        """Edges of an item to itself, and previous == next: both become null."""
        found, examples = 0, []
        for column in EDGES:
            count, rows = self._null_where(
                conn, "items", (column,), sql.SQL("s.{c} = s.id").format(c=_ident(column)), {}
            )
            found += count
            examples += rows
        count, rows = self._null_where(
            conn, "items", EDGES, sql.SQL("s.previous_item_id = s.next_item_id"), {}
        )
        return found + count, examples + rows

    def _null_where(
        self,
        conn: psycopg.Connection,
        kind: str,
        columns: tuple[str, ...],
        condition: sql.Composable,
        params: dict[str, Any],
        *,
        also: sql.Composable | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        table = self.table(kind)
        first = _ident(columns[0])
        examples = conn.execute(
            sql.SQL(
                "SELECT count(*) OVER (), s.file_no, s.idx, s.{c}::text FROM {t} s WHERE {cond}"
                " ORDER BY s.file_no, s.idx LIMIT 100"
            ).format(c=first, t=table, cond=condition),
            params,
        ).fetchall()
        if not examples:
            return 0, []
        assignments = sql.SQL(", ").join(sql.SQL("{c} = NULL").format(c=_ident(c)) for c in columns)
        if also is not None:
            assignments = sql.SQL("{a}, {b}").format(a=assignments, b=also)
        conn.execute(
            sql.SQL("UPDATE {t} s SET {set} WHERE {cond}").format(
                t=table, set=assignments, cond=condition
            ),
            params,
        )
        return examples[0][0], [{"file_no": r[1], "index": r[2], "value": r[3]} for r in examples]

    def conflicts(self, conn: psycopg.Connection, kind: str, account_id: str) -> tuple[int, int]:
        """How many staged ids the account has already, and how many of those are older."""
        row = conn.execute(
            sql.SQL(
                "SELECT count(*),"
                " count(*) FILTER (WHERE s.last_saved > l.last_saved)"
                " FROM {t} s JOIN {live} l ON l.account_id = %(a)s AND l.id = s.id"
            ).format(t=self.table(kind), live=_ident(LIVE_TABLE[kind])),
            {"a": account_id},
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def file_numbers(self, conn: psycopg.Connection, kind: str) -> list[tuple[int, int]]:
        """(file_no, rows) of a kind, in order: the apply goes file by file."""
        return [
            (int(r[0]), int(r[1]))
            for r in conn.execute(
                sql.SQL("SELECT file_no, count(*) FROM {t} GROUP BY 1 ORDER BY 1").format(
                    t=self.table(kind)
                )
            )
        ]

    # --- apply --------------------------------------------------------------------------

    def apply_file(
        self,
        conn: psycopg.Connection,
        *,
        kind: str,
        file_no: int,
        account_id: str,
        on_conflict: str,
        conflicts: bool = True,
    ) -> tuple[int, int]:
        """Insert one file's staged records into the live table; (inserted, replaced).

        Items go in with their edges null (`restore_edges` sets them once every item of
        the archive exists). `skip` keeps the account's record when the id exists;
        `newer` replaces it when the archive's lastSaved is newer. When the caller knows,
        under the per-account lock, that no id of this kind can exist in the account
        (`conflicts` false: see `ImportArchive._needs_conflict_check`), a plain INSERT
        does: it saves the conflict probe per row. A writer outside Ferry's lock that
        added such an id meanwhile would fail the whole transaction, so nothing
        half-applies.
        """
        columns = COLUMNS[kind]
        live = _ident(LIVE_TABLE[kind])
        selected = sql.SQL(", ").join(
            sql.SQL("NULL") if kind == "items" and c in EDGES else _ident("s", c) for c in columns
        )
        if not conflicts and kind != "items":
            cursor = conn.execute(
                sql.SQL(
                    "INSERT INTO {live} (account_id, {cols}) SELECT %(a)s, {sel}"
                    " FROM {t} s WHERE s.file_no = %(f)s"
                ).format(live=live, cols=_cols(columns), sel=selected, t=self.table(kind)),
                {"a": account_id, "f": file_no},
            )
            return cursor.rowcount, 0
        conflict: sql.Composable = sql.SQL("ON CONFLICT (account_id, id) DO NOTHING")
        if on_conflict == "newer":
            updates = sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=_ident(c)) for c in columns if c != "id"
            )
            conflict = sql.SQL(
                "ON CONFLICT (account_id, id) DO UPDATE SET {u}"
                " WHERE EXCLUDED.last_saved > {live}.last_saved"
            ).format(u=updates, live=live)
        returning = sql.SQL(
            "RETURNING id, (xmax = 0) AS inserted"
            if kind == "items"
            else "RETURNING (xmax = 0) AS inserted"
        )
        query = sql.SQL(
            "WITH written AS (INSERT INTO {live} (account_id, {cols})"
            " SELECT %(a)s, {sel} FROM {t} s WHERE s.file_no = %(f)s {conflict} {ret}){keep}"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
            " FROM written"
        ).format(
            live=live,
            cols=_cols(columns),
            sel=selected,
            t=self.table(kind),
            conflict=conflict,
            ret=returning,
            keep=sql.SQL(", kept AS (INSERT INTO pg_temp.applied_items SELECT id FROM written)")
            if kind == "items"
            else sql.SQL(""),
        )
        row = conn.execute(query, {"a": account_id, "f": file_no}).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def prepare_apply(self, conn: psycopg.Connection, account_id: str) -> None:
        """Serialise imports into one account, and track the items this import writes."""
        lock_account_data(conn, account_id)
        conn.execute("CREATE TEMP TABLE applied_items (id uuid PRIMARY KEY) ON COMMIT DROP")

    def restore_edges(self, conn: psycopg.Connection, account_id: str) -> int:
        """Set previous/next of every item this import wrote, now that all items exist."""
        cursor = conn.execute(
            sql.SQL(
                "UPDATE timeline_items t SET previous_item_id = s.previous_item_id,"
                " next_item_id = s.next_item_id FROM {t} s JOIN pg_temp.applied_items a"
                " ON a.id = s.id WHERE t.account_id = %(a)s AND t.id = s.id"
                " AND (s.previous_item_id IS NOT NULL OR s.next_item_id IS NOT NULL)"
            ).format(t=self.table("items")),
            {"a": account_id},
        )
        return cursor.rowcount
