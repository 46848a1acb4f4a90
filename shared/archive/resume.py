"""Which files an interrupted export may keep (SPEC 4: a resumed export gives the archive
an uninterrupted export would give at the resumed attempt's snapshot).

Every finished file is checkpointed with the snapshot it was read under. A later attempt,
reading under its own snapshot, keeps a file only when its bucket is provably the same:

1. no row in the bucket's key range (as the rows are now) was written by a transaction
   the file's snapshot did not see, and no record deleted since then had its key in the
   bucket (`deleted_records` keeps the key a record had when it was deleted);
2. the bucket holds as many selected rows now as the file does.

Together these prove the contents equal: every row in the bucket now was unchanged since
the file was written, so it was in the file, exactly as it is; and as many rows as the
file holds means none left. A row an update moved to another bucket is "written since"
in its new bucket, and missing from the count of its old one. A range export's places
are selected through the items that reference them, so its place files also need that
no item changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import psycopg

from shared.store.changes import deleted_after, written_after

# The bucket name of a row as SQL, per kind: of a live row (alias t) and of a deleted one
# (alias d, keyed by its id or `bucket_at`). ISO week names come straight from to_char.
_LIVE_BUCKET = {
    "places": ("places", "upper(left(t.id::text, 1))"),
    "items": ("timeline_items", "to_char(t.start_date AT TIME ZONE 'UTC', 'YYYY-MM')"),
    "samples": ("samples", "to_char(t.date AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')"),
}
_DELETED_BUCKET = {
    "places": "upper(left(d.id::text, 1))",
    "items": "to_char(d.bucket_at AT TIME ZONE 'UTC', 'YYYY-MM')",
    "samples": "to_char(d.bucket_at AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')",
}


def changed_buckets(
    conn: psycopg.Connection, *, kind: str, account_id: str, snapshot: str
) -> set[str]:
    """Buckets of `kind` that a write or a deletion after `snapshot` touched."""
    table, live = _LIVE_BUCKET[kind]
    rows = conn.execute(
        f"SELECT {live} FROM {table} t WHERE t.account_id = %(a)s"
        f" AND {written_after('t', 'snap')}"
        f" UNION SELECT {_DELETED_BUCKET[kind]} FROM deleted_records d"
        f" WHERE d.account_id = %(a)s AND d.kind = %(k)s AND {deleted_after('d', 'snap')}",
        {"a": account_id, "k": kind, "snap": snapshot},
    ).fetchall()
    return {str(name) for (name,) in rows}


def stale_files(
    conn: psycopg.Connection,
    *,
    account_id: str,
    kept: Mapping[str, Mapping[str, Any]],
    counts: Mapping[str, int],
    places_follow_items: bool,
) -> dict[str, str]:
    """The kept files that must be written again, each with the reason.

    `kept` maps a file's path (`samples/2024-W01.json.gz`) to its checkpoint entry;
    `counts` maps a bucket's path without extension (`samples/2024-W01`) to the rows it
    selects now (absent: none). Must run in the new attempt's own snapshot.
    """
    stale: dict[str, str] = {}
    by_snapshot: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for path, entry in kept.items():
        kind, file_name = path.split("/", 1)
        bucket = file_name.split(".", 1)[0]
        now = counts.get(f"{kind}/{bucket}", 0)
        if not entry.get("snapshot"):
            stale[path] = "written before change tracking"
        elif entry["records"] != now:
            stale[path] = f"holds {entry['records']} records, the bucket now {now}"
        else:
            by_snapshot[(kind, entry["snapshot"])].append((path, bucket))
    changed: dict[tuple[str, str], set[str]] = {}
    for (kind, snapshot), files in by_snapshot.items():
        touched = changed_buckets(conn, kind=kind, account_id=account_id, snapshot=snapshot)
        changed[(kind, snapshot)] = touched
        for path, bucket in files:
            if bucket in touched:
                stale[path] = "records in its bucket were written or deleted since"
    if places_follow_items:
        for (kind, snapshot), files in by_snapshot.items():
            if kind != "places":
                continue
            items = changed.get(("items", snapshot))
            if items is None:
                items = changed_buckets(
                    conn, kind="items", account_id=account_id, snapshot=snapshot
                )
            if items:
                for path, _ in files:
                    stale.setdefault(path, "items changed since, and they select the places")
    return stale
