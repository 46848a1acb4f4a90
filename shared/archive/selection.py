"""What an archive export holds (SPEC 4): the rows of a full, range or incremental export,
the bucket files they fall into, and the COPY that writes each file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from shared.archive.buckets import PLACE_BUCKETS, month_range, week_of_monday, week_range
from shared.archive.sql import COPY_OPTIONS, item_json, place_json, sample_json
from shared.params import ExportArchiveParams
from shared.store.changes import written_after


@dataclass(frozen=True, slots=True)
class Bucket:
    """One file to write: its path, the rows it holds, and how to select them."""

    kind: str  # places | items | samples
    name: str  # "A", "2024-01", "2024-W01"
    path: str
    records: int
    lower: Any
    upper: Any


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows of each table an export holds, as SQL conditions and their values."""

    places: str
    items: str
    samples: str
    values: dict[str, Any]


def select_rows(
    account_id: str, params: ExportArchiveParams, base_snapshot: str | None
) -> Selection:
    """The rows a full, range or incremental export holds (SPEC 4).

    Incremental: the rows written after the base export's snapshot (all, with no base).
    """
    values: dict[str, Any] = {"account": account_id}
    items = "i.account_id = %(account)s"
    samples = "s.account_id = %(account)s"
    places = "p.account_id = %(account)s"
    if params.start is not None or params.end is not None:
        if params.end is not None:
            values["end"] = params.end
            items += " AND i.start_date < %(end)s"
            samples += " AND s.date < %(end)s"
        if params.start is not None:
            values["start"] = params.start
            # Overlapping the range: not over before it starts (an instant item exactly
            # at the start counts).
            items += " AND (i.end_date > %(start)s OR i.start_date >= %(start)s)"
            samples += " AND s.date >= %(start)s"
        places += (
            " AND p.id IN (SELECT i.place_id FROM timeline_items i WHERE "
            + items
            + " AND i.place_id IS NOT NULL)"
        )
    elif params.incremental and base_snapshot is not None:
        values["base"] = base_snapshot
        items += " AND " + written_after("i", "base")
        samples += " AND " + written_after("s", "base")
        places += " AND " + written_after("p", "base")
    return Selection(places=places, items=items, samples=samples, values=values)


def plan_buckets(conn: psycopg.Connection, selection: Selection) -> dict[str, list[Bucket]]:
    """Count the rows of every non-empty bucket, in file order."""
    plan: dict[str, list[Bucket]] = {"places": [], "items": [], "samples": []}
    rows = conn.execute(
        f"SELECT upper(left(p.id::text, 1)), count(*) FROM places p"
        f" WHERE {selection.places} GROUP BY 1",
        selection.values,
    ).fetchall()
    counts: dict[str, int] = dict(rows)
    for index, digit in enumerate(PLACE_BUCKETS):
        if counts.get(digit):
            lower = f"{digit.lower()}0000000-0000-0000-0000-000000000000"
            upper = (
                f"{PLACE_BUCKETS[index + 1].lower()}0000000-0000-0000-0000-000000000000"
                if index + 1 < len(PLACE_BUCKETS)
                else None
            )
            plan["places"].append(
                Bucket("places", digit, f"places/{digit}", counts[digit], lower, upper)
            )
    for month, count in conn.execute(
        f"SELECT to_char(i.start_date AT TIME ZONE 'UTC', 'YYYY-MM'), count(*)"
        f" FROM timeline_items i WHERE {selection.items} GROUP BY 1 ORDER BY 1",
        selection.values,
    ):
        start, end = month_range(month)
        plan["items"].append(Bucket("items", month, f"items/{month}", count, start, end))
    for monday, count in conn.execute(
        f"SELECT date_trunc('week', s.date AT TIME ZONE 'UTC')::date, count(*)"
        f" FROM samples s WHERE {selection.samples} GROUP BY 1 ORDER BY 1",
        selection.values,
    ):
        week = week_of_monday(monday)
        start, end = week_range(week)
        plan["samples"].append(Bucket("samples", week, f"samples/{week}", count, start, end))
    return plan


def bucket_query(bucket: Bucket, selection: Selection) -> tuple[str, dict[str, Any]]:
    """The COPY that writes one bucket file's objects, one per line, in file order."""
    values = {**selection.values, "lower": bucket.lower, "upper": bucket.upper}
    if bucket.kind == "places":
        upper = " AND p.id < %(upper)s" if bucket.upper is not None else ""
        select = (
            f"SELECT {place_json('p')} FROM places p WHERE {selection.places}"
            f" AND p.id >= %(lower)s{upper} ORDER BY p.id"
        )
    elif bucket.kind == "items":
        select = (
            f"SELECT {item_json('i')} FROM timeline_items i WHERE {selection.items}"
            " AND i.start_date >= %(lower)s AND i.start_date < %(upper)s"
            " ORDER BY i.start_date, i.id"
        )
    else:
        select = (
            f"SELECT {sample_json('s')} FROM samples s WHERE {selection.samples}"
            " AND s.date >= %(lower)s AND s.date < %(upper)s ORDER BY s.date, s.id"
        )
    return f"COPY ({select}) TO STDOUT {COPY_OPTIONS}", values
