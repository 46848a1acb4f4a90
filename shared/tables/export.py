"""The `export.table` pipeline (SPEC 13): one table as one file, published like an archive.

`prepare` opens one read-only REPEATABLE READ snapshot and counts the rows (the total of
the progress); `rows` streams them through the format's writer into the attempt's work
folder, reporting each batch (progress, ETA, cancel and lease checks); `finalize` syncs
the file, publishes it with one rename and removes the work folder. A table export is one
file: a retried attempt writes it again from the start, in a new snapshot.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import psycopg

from shared.errors import ValidationFailed
from shared.jobs.attempt import JobContext
from shared.jobs.pipeline import Succeeded
from shared.jobs.states import PHASES, JobType
from shared.jobs.store import Job
from shared.settings import Settings
from shared.store.storage import storage_errors
from shared.tables.params import TableExportParams
from shared.tables.sql import Selection, begin_snapshot, select_rows
from shared.tables.writers import writer_for
from shared.timefmt import format_iso, utcnow

# `{table}-YYYY-MM-DD-HHmmss.{ext}`, in UTC like the archives' names.
NAME_FORMAT = "%Y-%m-%d-%H%M%S"


def file_name(params: TableExportParams, moment: datetime) -> str:
    """The export's file name for a request made at `moment`."""
    extension = writer_for(params).extension
    return f"{params.table}-{moment.astimezone(UTC).strftime(NAME_FORMAT)}.{extension}"


def selection_for(params: TableExportParams, account_id: str) -> Selection:
    """The rows and columns the export holds."""
    return select_rows(
        params.definition,
        account_id=account_id,
        start=params.start,
        end=params.end,
        columns=params.picked(),
        zone=params.timezone,
    )


def open_snapshot(conn: psycopg.Connection, params: TableExportParams) -> None:
    """Begin the export's snapshot; a zone PostgreSQL does not know is the request's fault."""
    try:
        begin_snapshot(conn, params.timezone)
    except psycopg.errors.InvalidParameterValue:
        raise ValidationFailed(
            f"timezone: PostgreSQL does not know the zone {params.timezone!r}",
            details={"field": "timezone"},
        ) from None


def count_rows(conn: psycopg.Connection, selection: Selection, limit: int | None = None) -> int:
    """How many rows the selection holds (at most `limit`, counting stops there)."""
    row = conn.execute(selection.count(limit), selection.values).fetchone()
    return int(row[0]) if row else 0


class ExportTable:
    """The `export.table` pipeline."""

    phases = PHASES[JobType.EXPORT_TABLE]

    def run(self, ctx: JobContext) -> Succeeded:
        """Prepare (snapshot and count), write the rows, then publish the file."""
        params = TableExportParams.from_json(ctx.job.params)
        writer = writer_for(params)
        ctx.start_phase("prepare")
        # Whatever an earlier attempt left is of no use: the file is written again whole.
        ctx.storage.remove_work(ctx.job.id, older_than=ctx.attempt)
        work = ctx.work_dir
        name = file_name(params, ctx.job.created_at)
        partial = work / f"{name}.partial"
        with ctx.connect() as conn:
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                open_snapshot(conn, params)
                selection = selection_for(params, ctx.job.account_id)
                ctx.tracker.set_total("rows", count_rows(conn, selection))
                ctx.finish_phase()
                ctx.start_phase("rows")
                with storage_errors(f"writing {name}"), partial.open("wb") as out:
                    stats = writer.write(conn, selection, out, ctx.advance, scratch=work)
                    out.flush()
                    os.fsync(out.fileno())
                ctx.finish_phase()
            finally:
                unregister()
        ctx.start_phase("finalize")
        ctx.check()
        with storage_errors(f"finishing {name}"):
            final = work / name
            os.replace(partial, final)
            size = final.stat().st_size
        # Only the attempt that owns the job publishes (as the archive export does).
        ctx.confirm_lease()
        key = ctx.storage.publish(ctx.job.id, ctx.attempt, final, name)
        ctx.storage.remove_work(ctx.job.id, attempt=ctx.attempt)
        ctx.finish_phase()
        expires = utcnow() + timedelta(hours=ctx.settings.export_retention_hours)
        return Succeeded(
            {
                "download_url": f"/api/v1/jobs/{ctx.job.id}/download",
                "key": key,
                "name": name,
                "content_type": writer.content_type,
                "bytes": size,
                "files": 1,
                "stats": stats,
                "expires_at": format_iso(expires),
            }
        )

    def discard(self, job: Job, settings: Settings) -> None:
        """Nothing outside storage to remove: the work folder and output go with storage."""
