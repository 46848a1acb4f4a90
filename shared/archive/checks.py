"""The stage phase of an import: set-based checks in staging, and what the report says.

Repeated ids (older copies and identical ones are warnings, conflicting ones errors),
references that resolve neither in the archive nor in the account (nulled, with the
flags that depend on them), edges to the item itself, samples on deleted items, and the
conflicts with the account's records that `on_conflict` will decide.
"""

from __future__ import annotations

from typing import Any

import psycopg

from shared.archive.direct import SampleItems
from shared.archive.reader import DataFile
from shared.archive.repeats import Repeats, remove_repeats
from shared.archive.report import Report
from shared.archive.staging import KINDS, Staging
from shared.jobs.attempt import JobContext
from shared.store.changes import current_snapshot


def stage_checks(
    ctx: JobContext,
    conn: psycopg.Connection,
    staging: Staging,
    files: list[DataFile],
    report: Report,
    *,
    live: SampleItems | None = None,
) -> tuple[dict[str, int], str]:
    """Run the set-based checks and report them; returns the rows staging holds
    afterwards, per kind, and the snapshot the conflict counts saw at least.

    With `live` the samples were written into `samples` (a direct import, direct.py):
    their references were judged as they were written, and the account had none of
    their ids (nor did the archive twice), so only the count of them is taken here.
    """
    names = [f.relative for f in files]
    account = ctx.job.account_id
    staging.index(conn)
    for kind in KINDS:
        _report_repeats(report, names, kind, remove_repeats(conn, staging, kind))
    checks = (
        (
            "items",
            "place_id",
            "places",
            "visit.placeId",
            "no such place in the archive or the account; set to null, and so the visit"
            " is not confirmed and is uncertain (the Arc apps' rules)",
        ),
        (
            "items",
            "previous_item_id",
            "items",
            "base.previousItemId",
            "no such item in the archive or the account; set to null",
        ),
        (
            "items",
            "next_item_id",
            "items",
            "base.nextItemId",
            "no such item in the archive or the account; set to null",
        ),
    )
    _warn(
        report,
        names,
        "items",
        *staging.null_self_edges(conn),
        field="base.previousItemId/nextItemId",
        reason="an item's edge points at itself, or previous equals next; set to null",
    )
    for kind, column, target, field, reason in checks:
        found = staging.null_missing(
            conn, kind=kind, column=column, target=target, account_id=account
        )
        _warn(report, names, kind, *found, field=field, reason=reason)
        ctx.check()
    samples = staging.null_sample_items(conn, account) if live is None else live.found()
    _warn(
        report,
        names,
        "samples",
        *samples["missing"],
        field="timelineItemId",
        reason="no such item in the archive or the account; set to null",
    )
    _warn(
        report,
        names,
        "samples",
        *samples["deleted"],
        field="timelineItemId",
        reason="the item is deleted, and the Arc apps keep no samples on a deleted item;"
        " set to null",
    )
    staged = staging.counts(conn)
    if live is not None:
        staged["samples"] = live.written
    # Taken before the conflict queries (each statement has its own snapshot here):
    # every record they missed was written by a transaction this one did not see.
    snapshot = current_snapshot(conn)
    for kind in KINDS:
        existing, newer = staging.conflicts(conn, kind, account)
        report.count(kind, "valid", staged[kind])
        report.count(kind, "existing", existing)
        report.count(kind, "newer_in_archive", newer)
        # Direct samples were paced while written; a pause here would hold the lock idle.
        ctx.advance(staged[kind], paced=not (live is not None and kind == "samples"))
    return staged, snapshot


def _report_repeats(report: Report, names: list[str], kind: str, found: Repeats) -> None:
    """Copies of one id: older or identical ones are warnings, conflicting ones errors."""

    def where(r: dict[str, Any]) -> str:
        return f"{names[r['kept_file_no']]} at index {r['kept_index']}"

    report.warnings.extend(
        [
            {
                "file": names[r["file_no"]],
                "index": r["index"],
                "field": "id",
                "reason": f"the same record as in {where(r)}; one copy is kept"
                if r["same"]
                else f"an older copy (lastSaved {r['last_saved']}) of the record in"
                f" {where(r)} (lastSaved {r['kept_last_saved']}); the newer one is kept",
            }
            for r in found.older
        ],
        found.older_total,
    )
    report.errors.extend(
        [
            {
                "file": names[r["file_no"]],
                "index": r["index"],
                "field": "id",
                "reason": f"duplicate id: as new as the copy in {where(r)} (lastSaved"
                f" {r['last_saved']}) but different; which one is right cannot be told",
            }
            for r in found.conflicts
        ],
        found.conflict_total,
    )
    report.count(kind, "duplicates", found.older_total + found.conflict_total)
    report.count(kind, "older_copies", found.older_total)
    report.count(kind, "invalid", found.conflict_total)


def _warn(
    report: Report,
    names: list[str],
    kind: str,
    total: int,
    rows: list[dict[str, Any]],
    *,
    field: str,
    reason: str,
) -> None:
    report.warnings.extend(
        [
            {
                "file": names[r["file_no"]],
                "index": r["index"],
                "field": field,
                "reason": f"{reason} (was {r['value']})",
            }
            for r in rows
        ],
        total,
    )
    report.count(kind, "references_nulled", total)
