"""A table import's staging table and the SQL that checks and applies it (SPEC 11, 13).

One UNLOGGED table per job in the staging schema (`j_<job>_rows`): the spreadsheet row
number, an `invalid` flag, and the mapped columns with the live columns' types, filled by
binary COPY as the file is read. The checks across rows (duplicate ids, ids that exist in
`insert` mode, new rows missing a required column, references) are statements over it;
so are the preview's counts and sample; the apply is one INSERT … SELECT.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from shared.fields import Field, Now
from shared.store.staging import STAGED_TYPE, binary_copy, table
from shared.tables.columns import TABLES
from shared.tables.rows import FIELDS, TRIP_ONLY, VISIT_ONLY, cell_error

LISTED = 100
SAMPLE_ROWS = 20
# Rows of each table that reference another, and what the reference points at.
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "samples": (("timeline_item_id", "timeline_items"),),
    "items": (
        ("place_id", "places"),
        ("previous_item_id", "timeline_items"),
        ("next_item_id", "timeline_items"),
    ),
    "places": (),
}


def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


@dataclass(frozen=True, slots=True)
class TableStaging:
    """The staging table of one table import, for its mapped columns."""

    job_id: str
    table: str
    columns: tuple[str, ...]  # the staged Ferry columns, in the order rows give them

    @property
    def name(self) -> sql.Identifier:
        """The schema-qualified staging table."""
        return table(self.job_id, "rows")

    @property
    def live(self) -> sql.Identifier:
        """The live table the rows go to."""
        return _ident(TABLES[self.table].sql_table)

    def _fields(self) -> list[Field]:
        return [FIELDS[self.table][c] for c in self.columns]

    # --- life of the table ------------------------------------------------------------

    def create(self, conn: psycopg.Connection) -> None:
        """An empty staging table (any left by an earlier attempt or mapping goes)."""
        self.drop(conn)
        columns = sql.SQL(", ").join(
            sql.SQL("{c} {t}").format(c=_ident(f.column), t=sql.SQL(STAGED_TYPE[f.kind]))
            for f in self._fields()
        )
        conn.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {t} (row int4 NOT NULL,"
                " invalid bool NOT NULL DEFAULT false, {cols})"
            ).format(t=self.name, cols=columns)
        )

    def drop(self, conn: psycopg.Connection) -> None:
        """Drop the staging table (and the apply's list of replaced ids) if there."""
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=self.name))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=table(self.job_id, "replaced")))

    def exists(self, conn: psycopg.Connection) -> bool:
        """Whether the staging table is there (UNLOGGED: gone after a database crash)."""
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self.name.as_string(conn),))
        found = row.fetchone()
        return bool(found and found[0])

    def count(self, conn: psycopg.Connection) -> int:
        """Rows staged."""
        row = conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=self.name)).fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def writer(self, conn: psycopg.Connection) -> Iterator[psycopg.Copy]:
        """A binary COPY of rows: (row number, *values in `columns` order)."""
        types = ["int4", *(STAGED_TYPE[f.kind] for f in self._fields())]
        with binary_copy(conn, self.name, ("row", *self.columns), types) as copy:
            yield copy

    # --- checks across rows -----------------------------------------------------------

    def index(self, conn: psycopg.Connection) -> None:
        """An index on id for the checks and the apply; fresh statistics."""
        if "id" in self.columns:
            conn.execute(sql.SQL("CREATE INDEX ON {t} (id)").format(t=self.name))
        conn.execute(sql.SQL("ANALYZE {t}").format(t=self.name))

    def refuse_where(
        self,
        conn: psycopg.Connection,
        condition: sql.Composable,
        params: dict[str, Any],
        *,
        column: str | None,
        value: sql.Composable,
        reason: sql.Composable,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Mark the rows matching `condition` invalid; (how many, the first LISTED errors)."""
        found = conn.execute(
            sql.SQL(
                "WITH hit AS (UPDATE {t} s SET invalid = true WHERE {cond}"
                " RETURNING s.row, ({value})::text AS value, ({reason}) AS reason)"
                " SELECT count(*) OVER (), row, value, reason FROM hit ORDER BY row LIMIT {n}"
            ).format(
                t=self.name, cond=condition, value=value, reason=reason, n=sql.Literal(LISTED)
            ),
            params,
        ).fetchall()
        if not found:
            return 0, []
        return int(found[0][0]), [cell_error(r[1], column, r[2], r[3]) for r in found]

    def duplicate_ids(self, conn: psycopg.Connection, column: str) -> tuple[int, list[dict]]:
        """Rows whose id an earlier row of the file has (the first one stays)."""
        return self.refuse_where(
            conn,
            sql.SQL("EXISTS (SELECT 1 FROM {t} e WHERE e.id = s.id AND e.row < s.row)").format(
                t=self.name
            ),
            {},
            column=column,
            value=sql.SQL("s.id"),
            reason=sql.SQL(
                "'duplicate id: row ' || (SELECT min(e.row) FROM {t} e WHERE e.id = s.id)"
                " || ' has it too'"
            ).format(t=self.name),
        )

    def existing_ids(
        self, conn: psycopg.Connection, account_id: str, column: str
    ) -> tuple[int, list[dict]]:
        """Rows whose id the account has (mode `insert`: rows must be new)."""
        return self.refuse_where(
            conn,
            sql.SQL(
                "NOT s.invalid AND EXISTS (SELECT 1 FROM {live} l WHERE l.account_id = %(a)s"
                " AND l.id = s.id)"
            ).format(live=self.live),
            {"a": account_id},
            column=column,
            value=sql.SQL("s.id"),
            reason=sql.SQL("'the account has this id already (mode insert: rows must be new)'"),
        )

    def new_without(
        self, conn: psycopg.Connection, account_id: str, missing: Sequence[str]
    ) -> tuple[int, list[dict]]:
        """New rows when the file has no column for a required value (an update needs none)."""
        condition: sql.Composable = sql.SQL("NOT s.invalid")
        if "id" in self.columns:
            condition = sql.SQL(
                "NOT s.invalid AND NOT EXISTS (SELECT 1 FROM {live} l"
                " WHERE l.account_id = %(a)s AND l.id = s.id)"
            ).format(live=self.live)
        return self.refuse_where(
            conn,
            condition,
            {"a": account_id},
            column=None,
            value=sql.SQL("NULL"),
            reason=sql.Literal(
                "a new row needs " + ", ".join(missing) + "; the file has no column for it"
            ),
        )

    def null_references(
        self, conn: psycopg.Connection, account_id: str, column: str, target: str
    ) -> tuple[int, list[dict[str, Any]]]:
        """Null references to rows in neither this file (items' edges) nor the account."""
        in_file: sql.Composable = sql.SQL("")
        if target == TABLES[self.table].sql_table and "id" in self.columns:
            in_file = sql.SQL(" AND NOT EXISTS (SELECT 1 FROM {t} x WHERE x.id = s.{c})").format(
                t=self.name, c=_ident(column)
            )
        condition = sql.SQL(
            "s.{c} IS NOT NULL AND NOT s.invalid AND NOT EXISTS (SELECT 1 FROM {target} l"
            " WHERE l.account_id = %(a)s AND l.id = s.{c}){in_file}"
        ).format(c=_ident(column), target=_ident(target), in_file=in_file)
        also: sql.Composable = sql.SQL("")
        flags = [
            sql.SQL(", {c} = {v}").format(c=_ident(c), v=sql.Literal(v))
            for c, v in (("confirmed_place", False), ("uncertain_place", True))
            if c in self.columns
        ]
        if column == "place_id" and flags:
            # A visit that loses its place is not confirmed and is uncertain (the apps' rules).
            also = sql.Composed(flags)
        found = conn.execute(
            sql.SQL(
                "WITH hit AS (UPDATE {t} s SET {c} = NULL{also} FROM (SELECT row, {c} AS old"
                " FROM {t} s WHERE {cond}) o WHERE o.row = s.row RETURNING s.row, o.old::text)"
                " SELECT count(*) OVER (), * FROM hit ORDER BY row LIMIT {n}"
            ).format(
                t=self.name, c=_ident(column), also=also, cond=condition, n=sql.Literal(LISTED)
            ),
            {"a": account_id},
        ).fetchall()
        if not found:
            return 0, []
        return int(found[0][0]), [
            {"row": r[1], "column": column, "value": r[2], "reason": ""} for r in found
        ]

    # --- what the preview shows ----------------------------------------------------------

    def _changed(self) -> sql.Composable:
        """Whether a staged row differs from the account's row of its id (`l`)."""
        compared = [c for c in self.columns if c != "id"]
        if not compared:
            return sql.SQL("false")
        return sql.SQL("({l}) IS DISTINCT FROM ({s})").format(
            l=sql.SQL(", ").join(_ident("l", c) for c in compared),
            s=sql.SQL(", ").join(_ident("s", c) for c in compared),
        )

    def counts(self, conn: psycopg.Connection, account_id: str) -> dict[str, int]:
        """Valid staged rows that would be created, updated, or are unchanged; invalid."""
        if "id" not in self.columns:
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE NOT invalid), 0, 0,"
                    " count(*) FILTER (WHERE invalid) FROM {t}"
                ).format(t=self.name)
            ).fetchone()
        else:
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE NOT s.invalid AND l.id IS NULL),"
                    " count(*) FILTER (WHERE NOT s.invalid AND l.id IS NOT NULL AND {changed}),"
                    " count(*) FILTER (WHERE NOT s.invalid AND l.id IS NOT NULL"
                    " AND NOT ({changed})), count(*) FILTER (WHERE s.invalid)"
                    " FROM {t} s LEFT JOIN {live} l ON l.account_id = %(a)s AND l.id = s.id"
                ).format(t=self.name, live=self.live, changed=self._changed()),
                {"a": account_id},
            ).fetchone()
        assert row is not None
        return {
            "would_create": int(row[0]),
            "would_update": int(row[1]),
            "unchanged": int(row[2]),
            "invalid_staged": int(row[3]),
        }

    def _stored(self, column: str, now: datetime) -> sql.Composable:
        """What a table column holds after the apply: the file's value when mapped, else
        the account's (an update), else the default (a new row)."""
        if column in self.columns:
            return _ident("s", column)
        default = self._default(column, now)
        if "id" in self.columns:
            return sql.SQL("CASE WHEN l.id IS NOT NULL THEN l.{c} ELSE {d} END").format(
                c=_ident(column), d=default
            )
        return default

    def _default(self, column: str, now: datetime) -> sql.Composable:
        """A new row's value of a column the file has no column for."""
        f = FIELDS[self.table][column]
        if f.default is None:
            return sql.SQL("NULL")
        if isinstance(f.default, Now):
            value: sql.Composable = sql.Literal(now)
            if column in ("visit_last_saved", "trip_last_saved") and "last_saved" in self.columns:
                value = _ident("s", "last_saved")
        else:
            value = sql.Literal(f.default)
        if self.table == "items" and (column in VISIT_ONLY or column in TRIP_ONLY):
            kind = _ident("s", "is_visit") if "is_visit" in self.columns else sql.SQL("NULL")
            visit = sql.SQL("" if column in VISIT_ONLY else "NOT ")
            return sql.SQL("CASE WHEN {v}{k} THEN {d} END").format(v=visit, k=kind, d=value)
        return value

    def _join(self) -> sql.Composable:
        """The account's row of each staged id, as `l` (none without an id column)."""
        if "id" not in self.columns:
            return sql.SQL("")
        return sql.SQL(" LEFT JOIN {live} l ON l.account_id = %(a)s AND l.id = s.id").format(
            live=self.live
        )

    def sample(self, conn: psycopg.Connection, account_id: str, now: datetime) -> list[dict]:
        """The first SAMPLE_ROWS valid rows as they would be stored."""
        names = TABLES[self.table].names
        exprs = sql.SQL(", ").join(
            sql.SQL("{e} AS {c}").format(e=self._stored(c, now), c=_ident(c)) for c in names
        )
        join = self._join()
        rows = conn.execute(
            sql.SQL(
                "SELECT row_to_json(x)::text FROM (SELECT {e} FROM {t} s{j}"
                " WHERE NOT s.invalid ORDER BY s.row LIMIT {n}) x"
            ).format(e=exprs, t=self.name, j=join, n=sql.Literal(SAMPLE_ROWS)),
            {"a": account_id},
        ).fetchall()
        import orjson

        return [orjson.loads(r[0]) for r in rows]

    # --- apply ----------------------------------------------------------------------------

    def save_replaced(self, conn: psycopg.Connection, account_id: str) -> str:
        """The ids of the account's rows this apply will replace, as a staging table (for
        the undo's record); its qualified, quoted name."""
        target = table(self.job_id, "replaced")
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {r}").format(r=target))
        conn.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {r} AS SELECT s.id FROM {t} s JOIN {live} l"
                " ON l.account_id = %(a)s AND l.id = s.id WHERE NOT s.invalid AND {changed}"
            ).format(r=target, t=self.name, live=self.live, changed=self._changed()),
            {"a": account_id},
        )
        return target.as_string(conn)

    def apply(
        self,
        conn: psycopg.Connection,
        *,
        account_id: str,
        mode: str,
        now: datetime,
        conflicts: bool = True,
    ) -> tuple[int, int]:
        """Write the valid rows into the live table; (created, updated).

        Columns the file has no column for take their defaults in new rows and stay as
        they are in updated ones. An upsert leaves a row whose mapped values are all the
        same untouched (no write, so it does not count as changed since). Insert mode
        skips an id that another import added under the lock meanwhile. Without
        `conflicts` (the caller knows under the lock that no staged id exists in the
        account) a plain INSERT does, with no conflict probe per row.
        """
        # Every column gets a value, the account's for an update: PostgreSQL checks NOT NULL
        # on the proposed row before it looks for a conflict.
        targets = TABLES[self.table].names
        selected = sql.SQL(", ").join(self._stored(c, now) for c in targets)
        updates = [c for c in self.columns if c != "id"]
        conflict: sql.Composable
        if not conflicts:
            conflict = sql.SQL("")
        elif mode == "insert" or not updates:
            conflict = sql.SQL("ON CONFLICT (account_id, id) DO NOTHING")
        else:
            conflict = sql.SQL(
                "ON CONFLICT (account_id, id) DO UPDATE SET {u} WHERE ({l}) IS DISTINCT FROM ({e})"
            ).format(
                u=sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=_ident(c)) for c in updates
                ),
                l=sql.SQL(", ").join(_ident(TABLES[self.table].sql_table, c) for c in updates),
                e=sql.SQL(", ").join(_ident("excluded", c) for c in updates),
            )
        row = conn.execute(
            sql.SQL(
                "WITH written AS (INSERT INTO {live} (account_id, {cols}) SELECT %(a)s, {sel}"
                " FROM {t} s{j} WHERE NOT s.invalid ORDER BY s.row {conflict}"
                " RETURNING (xmax = 0) AS inserted)"
                " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
                " FROM written"
            ).format(
                live=self.live,
                cols=sql.SQL(", ").join(_ident(c) for c in targets),
                sel=selected,
                t=self.name,
                j=self._join() if set(self.columns) < set(targets) else sql.SQL(""),
                conflict=conflict,
            ),
            {"a": account_id},
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])
