"""Sample rows of a table import written straight into `samples`, in one transaction.

The table import stages every row, checks across rows in staging, then copies the rows
again with INSERT … SELECT. For the one table that runs to millions of rows, a
confirmed import (`confirm=true`) whose file maps every column of `samples`, into an
account without samples, writes each valid row into `samples` inside the transaction
that then commits the `applied` checkpoint (as the archive import does, see
shared/archive/direct.py); nothing is visible before the commit, and a report with
errors, a failure or a cancel rolls it back.

What the checks across rows find in staging is found here as the rows go by, with the
same report:
- duplicate ids, and ids the account has already: the account has none (checked under
  the per-account lock), so either one is a unique violation of the COPY; the importer
  then rolls back and reads the file again into staging (`StageInstead`), which reports
  them row by row.
- new rows without a required column: none, every column is mapped.
- a sample whose item the account does not have: counted, the first LISTED kept with
  their row numbers, and nulled after the COPY by one UPDATE (the account had no other
  samples). The account's item ids are read once, under the lock, before the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import sql

from shared.findings import LISTED
from shared.store.live_samples import account_items, copy_samples, unlink_items
from shared.tables.columns import TABLES

SAMPLE_ROWS = 20


class StageInstead(Exception):
    """The rows cannot go in directly (an id twice in the file): stage them instead."""


def eligible(table: str, columns: tuple[str, ...], *, confirm: bool) -> bool:
    """Whether a table import may write its rows directly (before the account is asked)."""
    return confirm and table == "samples" and set(columns) == set(TABLES["samples"].names)


@dataclass(slots=True)
class LiveRows:
    """The valid rows of a direct table import, as they are written."""

    account_id: str
    columns: tuple[str, ...]
    items: set[str]  # the account's item ids (lower case)
    written: int = 0
    missing_total: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    first_ids: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, conn: psycopg.Connection, account_id: str, columns: tuple[str, ...]) -> LiveRows:
        """Read the account's item ids (the references to judge) under the lock."""
        return cls(account_id, columns, set(account_items(conn, account_id)))

    def copy(self, conn: psycopg.Connection) -> AbstractContextManager[psycopg.Copy]:
        """The binary COPY into `samples` for rows (account_id, *values in `columns`)."""
        return copy_samples(conn, self.columns)

    def judge(self, number: int, values: Sequence[Any], item: int) -> None:
        """Note a written row: its id (for the preview's sample), its item reference."""
        self.written += 1
        if len(self.first_ids) < SAMPLE_ROWS:
            self.first_ids.append(values[self.columns.index("id")])
        item_id = values[item]
        if item_id is None:
            return
        key = item_id.lower()
        if key in self.items:
            return
        self.missing_total += 1
        self.gone.add(key)
        if len(self.missing) < LISTED:
            self.missing.append({"row": number, "column": "timeline_item_id", "value": key})

    def null_references(self, conn: psycopg.Connection) -> None:
        """Null the references to items the account does not have, in the rows written."""
        unlink_items(conn, self.account_id, self.gone)

    def sample(self, conn: psycopg.Connection) -> list[dict[str, Any]]:
        """The first SAMPLE_ROWS rows as stored (the staged preview's sample)."""
        names = TABLES["samples"].names
        exprs = sql.SQL(", ").join(
            sql.SQL("s.{c} AS {c}").format(c=sql.Identifier(c)) for c in names
        )
        rows = conn.execute(
            sql.SQL(
                "SELECT row_to_json(x)::text FROM (SELECT {e} FROM samples s"
                " WHERE s.account_id = %(a)s AND s.id = ANY(%(ids)s::uuid[])"
                " ORDER BY array_position(%(ids)s::uuid[], s.id)) x"
            ).format(e=exprs),
            {"a": self.account_id, "ids": self.first_ids},
        ).fetchall()
        return [orjson.loads(r[0]) for r in rows]
