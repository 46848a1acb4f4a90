"""Writing an import's samples straight into `samples` (the archive's and the table's
direct paths, shared/archive/direct.py and shared/tables/direct.py).

Both write only into an account that holds no samples, checked under the per-account
lock in the transaction that writes them, so every row an UPDATE here touches is the
import's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

from shared.fields import SAMPLE_FIELDS
from shared.store.staging import STAGED_TYPE, binary_copy

_KIND = {f.column: f.kind for f in SAMPLE_FIELDS}


def account_has_samples(conn: psycopg.Connection, account_id: str) -> bool:
    """Whether the account holds any sample (one index probe)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM samples WHERE account_id = %s)", (account_id,)
    ).fetchone()
    return bool(row and row[0])


def account_items(conn: psycopg.Connection, account_id: str) -> dict[str, bool]:
    """The account's items: id (lower case) -> deleted."""
    rows = conn.execute(
        "SELECT id::text, deleted FROM timeline_items WHERE account_id = %s", (account_id,)
    )
    return {item_id: bool(deleted) for item_id, deleted in rows}


def copy_samples(
    conn: psycopg.Connection, columns: Sequence[str]
) -> AbstractContextManager[psycopg.Copy]:
    """A binary COPY into `samples` of rows (account_id, *values in `columns` order)."""
    types = ["uuid", *(STAGED_TYPE[_KIND[c]] for c in columns)]
    return binary_copy(conn, sql.Identifier("samples"), ("account_id", *columns), types)


def unlink_items(conn: psycopg.Connection, account_id: str, item_ids: Iterable[str]) -> None:
    """Null the account's sample references to these items (the rows just written)."""
    gone = sorted(item_ids)
    if gone:
        conn.execute(
            "UPDATE samples SET timeline_item_id = NULL WHERE account_id = %s"
            " AND timeline_item_id = ANY(%s::uuid[])",
            (account_id, gone),
        )
