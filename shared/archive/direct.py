"""Samples written straight into the live table, inside the import's one transaction.

A confirmed archive import (`confirm=true`) into an account that holds no samples yet
need not stage its samples: every sample that passes validation is COPYed into
`samples` inside the transaction that later applies the places and items and commits
the `applied` checkpoint. Nothing is visible before that commit, and a failure, a
cancel, or a report with errors rolls it all back, so the import stays all-or-nothing;
what it saves is writing a million rows twice (staging, then INSERT … SELECT) and the
validation's Python no longer waits for the server: the decoder and the server's
inserts run on two cores at once.

The staged path's checks on samples are made here as the rows go by, with the same
outcome and report:
- repeated ids, and ids the account has already: the account has no samples (checked
  under the per-account lock), so either one is a unique violation of the COPY. The
  importer then rolls back and stages the samples as before, which reports them. App
  backups updated incrementally repeat items, rarely samples.
- a sample whose item is in neither the archive nor the account, or is deleted (the
  archive's copy decides, else the account's, whose items are read once under the
  lock): counted, the first LISTED in archive order kept for the report, and the
  reference nulled after the COPY with one UPDATE (the account had no other samples,
  so every row it touches is this import's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from shared.archive.records import FastBlock
from shared.archive.staging import COLUMNS, Staging
from shared.findings import LISTED
from shared.store.live_samples import unlink_items

# Where a sample's item id sits among its columns.
ITEM = COLUMNS["samples"].index("timeline_item_id")
OK, MISSING, DELETED = 0, 1, 2


def archive_items(conn: psycopg.Connection, staging: Staging) -> dict[str, bool]:
    """The archive's items: id -> deleted, of the copy the stage checks will keep (the
    newest lastSaved, ties to the first in archive order, as `remove_repeats`)."""
    rows = conn.execute(
        sql.SQL(
            "SELECT DISTINCT ON (id) id::text, deleted FROM {t}"
            " ORDER BY id, last_saved DESC NULLS LAST, file_no, idx"
        ).format(t=staging.table("items"))
    )
    return {item_id: bool(deleted) for item_id, deleted in rows}


@dataclass(slots=True)
class Found:
    """Samples whose item reference goes: how many, the first LISTED (archive order)."""

    total: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)

    def add(self, file_no: int, index: int, item_id: str) -> None:
        self.total += 1
        self.ids.add(item_id)
        if len(self.rows) < LISTED:
            self.rows.append({"file_no": file_no, "index": index, "value": item_id})


@dataclass(slots=True)
class SampleItems:
    """Judges each written sample's item reference as the staged check would."""

    archive: dict[str, bool]  # the archive's items: id -> deleted (lower case)
    account: dict[str, bool]  # the account's, before the import
    known: dict[str, int] = field(default_factory=dict)
    missing: Found = field(default_factory=Found)
    deleted: Found = field(default_factory=Found)
    written: int = 0  # samples written into `samples`

    def _judge(self, ids: Iterable[str]) -> None:
        for item_id in ids:
            key = item_id.lower()
            deleted = self.archive.get(key, self.account.get(key))
            self.known[item_id] = MISSING if deleted is None else DELETED if deleted else OK

    def block(self, block: FastBlock) -> None:
        """Judge the samples of a block."""
        column = block.columns[ITEM]
        ids = set(column)
        ids.discard(None)
        known = self.known
        if new := [i for i in ids if i not in known]:
            self._judge(new)
        if all(known[i] == OK for i in ids):
            return
        for index, item_id in enumerate(column, block.start):
            if item_id is not None:
                self._note(block.file_no, index, item_id)

    def row(self, file_no: int, index: int, item_id: str | None) -> None:
        """Judge one sample (the record-by-record path)."""
        if item_id is None:
            return
        if item_id not in self.known:
            self._judge([item_id])
        self._note(file_no, index, item_id)

    def _note(self, file_no: int, index: int, item_id: str) -> None:
        verdict = self.known[item_id]
        if verdict == MISSING:
            self.missing.add(file_no, index, item_id.lower())
        elif verdict == DELETED:
            self.deleted.add(file_no, index, item_id.lower())

    def null_references(self, conn: psycopg.Connection, account_id: str) -> None:
        """Null the references judged missing or deleted, in the rows just written."""
        unlink_items(conn, account_id, self.missing.ids | self.deleted.ids)

    def found(self) -> dict[str, tuple[int, list[dict[str, Any]]]]:
        """What `Staging.null_sample_items` returns: per kind, (total, first rows)."""
        return {
            "missing": (self.missing.total, self.missing.rows),
            "deleted": (self.deleted.total, self.deleted.rows),
        }


class LiveSamples:
    """Where validated samples go in a direct import: `samples`, through a binary COPY."""

    def __init__(self, copy: psycopg.Copy, account_id: str, items: SampleItems) -> None:
        self._write = copy.write_row
        self.account_id = account_id
        self.items = items

    def block(self, block: FastBlock) -> None:
        """Write a block decoded whole."""
        if not block.count:  # an empty array: no columns to read
            return
        self.items.block(block)
        write = self._write
        for row in block.live_rows(self.account_id):
            write(row)
        self.items.written += len(block)

    def row(self, file_no: int, index: int, row: tuple[Any, ...]) -> None:
        """Write one record decoded on its own."""
        self.items.row(file_no, index, row[ITEM])
        self._write((self.account_id, *row))
        self.items.written += 1


class StagedRows:
    """Where validated records go otherwise: the job's staging table of their kind."""

    def __init__(self, copy: psycopg.Copy) -> None:
        self._write = copy.write_row

    def block(self, block: FastBlock) -> None:
        """Write a block decoded whole."""
        write = self._write
        for row in block.rows:
            write(row)

    def row(self, file_no: int, index: int, row: tuple[Any, ...]) -> None:
        """Write one record decoded on its own."""
        self._write((file_no, index, *row))
