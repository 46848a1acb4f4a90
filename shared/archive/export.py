"""The archive export (SPEC 4): PostgreSQL → bucketed LocoKit2 folder → one zip.

All reads of an attempt share one REPEATABLE READ snapshot. Each bucket file is one COPY
whose lines go straight into the file; Python never parses a record, so memory stays
flat whatever the account's size. Every finished file is recorded in the checkpoint
(path, records, bytes, sha256); a resumed attempt keeps the files whose checksum still
matches and writes only the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg

from shared import __version__
from shared.archive.buckets import PLACE_BUCKETS, month_range, week_of_monday, week_range
from shared.archive.files import BucketWriter, FileEntry, file_digest, write_zip
from shared.archive.sql import COPY_OPTIONS, item_json, place_json, sample_json
from shared.jobs.attempt import JobContext
from shared.jobs.pipeline import Succeeded
from shared.jobs.states import PHASES, JobType
from shared.jobs.store import Job
from shared.params import ExportArchiveParams
from shared.settings import Settings
from shared.store.db import raw_connection
from shared.store.storage import storage_errors
from shared.timefmt import format_iso, parse_iso, utcnow

SCHEMA_VERSION = "2.4.0"
ARCHIVE_FOLDER = "export-%Y-%m-%d-%H%M%S"


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


def select_rows(account_id: str, params: ExportArchiveParams, since: datetime | None) -> Selection:
    """The rows a full, range or incremental export holds (SPEC 4)."""
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
    elif params.incremental and since is not None:
        values["since"] = since
        items += " AND i.last_saved > %(since)s"
        samples += " AND s.last_saved > %(since)s"
        places += " AND p.last_saved > %(since)s"
    return Selection(places=places, items=items, samples=samples, values=values)


class ExportArchive:
    """The `export.archive` pipeline."""

    phases = PHASES[JobType.EXPORT_ARCHIVE]

    def run(self, ctx: JobContext) -> Succeeded:
        """Prepare, write places, items and samples, then zip and publish."""
        params = ExportArchiveParams.from_json(ctx.job.params)
        ctx.start_phase("prepare")
        state = self._begin(ctx, params)
        work = ctx.work_dir / state["name"]
        with raw_connection(ctx.settings.database_url) as conn:
            # Every read of this attempt sees one consistent snapshot of the account.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                selection = select_rows(ctx.job.account_id, params, _since(state))
                plan = self._plan(conn, selection)
                for kind in ("places", "items", "samples"):
                    ctx.tracker.set_total(kind, sum(b.records for b in plan[kind]))
                ctx.finish_phase()
                for kind in ("places", "items", "samples"):
                    ctx.start_phase(kind)
                    for bucket in plan[kind]:
                        self._write_bucket(
                            ctx,
                            conn=conn,
                            work=work,
                            bucket=bucket,
                            selection=selection,
                            params=params,
                        )
                    ctx.finish_phase()
            finally:
                unregister()
        ctx.start_phase("finalize")
        result = self._finalize(ctx, params, state, work)
        ctx.finish_phase()
        return Succeeded(result)

    def discard(self, job: Job, settings: Settings) -> None:
        """Nothing outside storage to remove: work folders and output go with storage."""

    # --- prepare ----------------------------------------------------------------------

    def _begin(self, ctx: JobContext, params: ExportArchiveParams) -> dict[str, Any]:
        """Start or resume: fix the folder name and start time, keep verified files."""
        state = ctx.checkpoint
        if not state.get("name"):
            started = utcnow()
            since = None
            if params.incremental:
                previous = ctx.store.last_succeeded(ctx.job.account_id, JobType.EXPORT_ARCHIVE)
                if previous is not None and previous.result:
                    since = previous.result.get("session_start")
            state.update(
                name=started.strftime(ARCHIVE_FOLDER),
                session_start=format_iso(started),
                since=since,
                files={},
            )
            ctx.save_checkpoint()
            return state
        kept = self._keep_verified_files(ctx, state)
        ctx.store.record(
            ctx.job.id, ctx.attempt, "resumed", {"kept_files": len(kept), "kept": sorted(kept)}
        )
        return state

    def _keep_verified_files(self, ctx: JobContext, state: dict[str, Any]) -> list[str]:
        """Move checkpointed files whose size and sha256 still match into this attempt."""
        target = ctx.work_dir / state["name"]
        kept: dict[str, Any] = {}
        earlier = {a: p for a, p in ctx.storage.work_dirs(ctx.job.id).items() if a != ctx.attempt}
        for relative, entry in state.get("files", {}).items():
            for attempt in sorted(earlier, reverse=True):
                candidate = earlier[attempt] / state["name"] / relative
                if not candidate.is_file():
                    continue
                size, sha = file_digest(candidate)
                if size == entry["bytes"] and sha == entry["sha256"]:
                    destination = target / relative
                    with storage_errors("keeping a finished file"):
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(candidate, destination)
                    kept[relative] = entry
                    break
        ctx.storage.remove_work(ctx.job.id, except_attempt=ctx.attempt)
        state["files"] = kept
        ctx.save_checkpoint()
        return list(kept)

    def _plan(self, conn: psycopg.Connection, selection: Selection) -> dict[str, list[Bucket]]:
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

    # --- the data phases ------------------------------------------------------------------

    def _write_bucket(
        self,
        ctx: JobContext,
        *,
        conn: psycopg.Connection,
        work: Any,
        bucket: Bucket,
        selection: Selection,
        params: ExportArchiveParams,
    ) -> None:
        gzip = params.gzip(bucket.kind)
        relative = bucket.path + (".json.gz" if gzip else ".json")
        files: dict[str, Any] = ctx.checkpoint["files"]
        if relative in files:
            ctx.advance(bucket.records)  # kept from an earlier attempt
            return
        query, values = self._bucket_query(bucket, selection)
        with storage_errors(f"writing {relative}"), BucketWriter(work, relative, gzip=gzip) as out:
            with conn.cursor() as cursor, cursor.copy(query, values) as copy:
                for line in copy:
                    written = out.write_lines(bytes(line))
                    if written:
                        ctx.advance(written)
            ctx.advance(out.flush())
            entry = out.close()
        files[relative] = {"records": entry.records, "bytes": entry.bytes, "sha256": entry.sha256}
        ctx.save_checkpoint()

    @staticmethod
    def _bucket_query(bucket: Bucket, selection: Selection) -> tuple[str, dict[str, Any]]:
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

    # --- finalize ---------------------------------------------------------------------

    def _finalize(
        self, ctx: JobContext, params: ExportArchiveParams, state: dict[str, Any], work: Any
    ) -> dict[str, Any]:
        entries = [
            FileEntry(path, f["records"], f["bytes"], f["sha256"])
            for path, f in sorted(state["files"].items())
        ]
        stats = {
            "placeCount": sum(e.records for e in entries if e.path.startswith("places/")),
            "itemCount": sum(e.records for e in entries if e.path.startswith("items/")),
            "sampleCount": sum(e.records for e in entries if e.path.startswith("samples/")),
        }
        ctx.check()
        finished = utcnow()
        metadata: dict[str, Any] = {
            "schemaVersion": SCHEMA_VERSION,
            "exportId": ctx.job.id.upper(),
            "exportMode": "bucketed",
            "exportType": "incremental" if params.incremental else "full",
            "sessionStartDate": state["session_start"],
            "sessionFinishDate": format_iso(finished),
            "placesCompleted": True,
            "itemsCompleted": True,
            "samplesCompleted": True,
            "stats": stats,
            "appMetadata": {"app": "Ferry", "version": __version__},
        }
        if params.start is not None or params.end is not None:
            bounds = {"start": params.start, "end": params.end}
            metadata["exportRange"] = {k: format_iso(v) for k, v in bounds.items() if v}
        if params.incremental and state.get("since"):
            metadata["appMetadata"]["incrementalSince"] = state["since"]
        manifest = {"files": [e.as_dict() for e in entries]}
        name = state["name"]
        zip_path = ctx.work_dir / f"{name}.zip"
        with storage_errors("writing metadata and the zip"):
            for kind in ("places", "items", "samples"):
                (work / kind).mkdir(parents=True, exist_ok=True)
            (work / "metadata.json").write_bytes(orjson.dumps(metadata, option=orjson.OPT_INDENT_2))
            (work / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            size = write_zip(work, name, zip_path, check=ctx.check)
        ctx.check()
        key = ctx.storage.publish(ctx.job.id, zip_path, f"{name}.zip")
        ctx.storage.remove_work(ctx.job.id)
        expires = finished + timedelta(hours=ctx.settings.export_retention_hours)
        return {
            "download_url": f"/api/v1/jobs/{ctx.job.id}/download",
            "key": key,
            "name": f"{name}.zip",
            "bytes": size,
            "files": len(entries) + 2,
            "stats": stats,
            "expires_at": format_iso(expires),
            "session_start": state["session_start"],
        }


def _since(state: dict[str, Any]) -> datetime | None:
    raw = state.get("since")
    return parse_iso(raw) if raw else None
