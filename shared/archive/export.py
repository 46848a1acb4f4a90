"""The archive export (SPEC 4): PostgreSQL → bucketed LocoKit2 folder → one zip.

All reads of an attempt share one REPEATABLE READ snapshot, recorded on the job's result
(`snapshot`). Each bucket file is one COPY whose lines go straight into the file; Python
never parses a record, so memory stays flat whatever the account's size. Every finished
file is recorded in the checkpoint (path, records, bytes, sha256, and the snapshot it was
read under); a resumed attempt keeps a file only if its checksum still matches and its
bucket is unchanged since (`resume.py`), and writes the rest, so the archive is the one
an uninterrupted export would give at the resumed attempt's snapshot.

An incremental export holds the rows written after its base's snapshot (the account's
latest succeeded full or incremental export), whatever their `lastSaved`, and lists the
records deleted since in `metadata.json` `deletedIds` (`shared/store/changes.py`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from shared import __version__
from shared.archive.files import BucketWriter, FileEntry, file_digest, write_zip
from shared.archive.resume import stale_files
from shared.archive.selection import Bucket, Selection, bucket_query, plan_buckets, select_rows
from shared.archive.sql import COPY_OPTIONS
from shared.errors import StorageError
from shared.jobs.attempt import JobContext
from shared.jobs.pipeline import Succeeded
from shared.jobs.states import PHASES, JobType
from shared.jobs.store import Job
from shared.params import ExportArchiveParams
from shared.settings import Settings
from shared.store.changes import TABLES, current_snapshot, deleted_after
from shared.store.storage import storage_errors
from shared.timefmt import format_iso, utcnow

SCHEMA_VERSION = "2.4.0"
ARCHIVE_FOLDER = "export-%Y-%m-%d-%H%M%S"


class ExportArchive:
    """The `export.archive` pipeline."""

    phases = PHASES[JobType.EXPORT_ARCHIVE]

    def run(self, ctx: JobContext) -> Succeeded:
        """Prepare, write places, items and samples, then zip and publish."""
        params = ExportArchiveParams.from_json(ctx.job.params)
        ctx.start_phase("prepare")
        resuming = bool(ctx.checkpoint.get("name"))
        state = self._begin(ctx, params)
        work = ctx.work_dir / state["name"]
        base = state.get("base")
        with ctx.connect() as conn:
            # Every read of this attempt sees one consistent snapshot of the account.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                # The first statement fixes the transaction's snapshot: this is it.
                snapshot = current_snapshot(conn)
                selection = select_rows(
                    ctx.job.account_id, params, base["snapshot"] if base else None
                )
                plan = plan_buckets(conn, selection)
                if resuming:
                    self._drop_stale(
                        ctx, conn=conn, state=state, plan=plan, work=work, params=params
                    )
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
                            snapshot=snapshot,
                        )
                    ctx.finish_phase()
                deleted = None
                if params.incremental:
                    deleted = self._write_deleted(ctx, conn, base)
            finally:
                unregister()
        ctx.start_phase("finalize")
        result = self._finalize(ctx, params, state, work, snapshot=snapshot, deleted=deleted)
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
            base = None
            if params.incremental:
                # Fixed at the first attempt, so a resumed one selects the same changes.
                found = ctx.store.incremental_base(ctx.job.account_id)
                if found is not None and found.result:
                    base = {
                        "job_id": found.id,
                        "snapshot": found.result["snapshot"],
                        "session_start": found.result.get("session_start"),
                    }
            state.update(
                name=started.strftime(ARCHIVE_FOLDER),
                session_start=format_iso(started),
                base=base,
                files={},
            )
            ctx.save_checkpoint()
            return state
        self._keep_verified_files(ctx, state)
        return state

    def _keep_verified_files(self, ctx: JobContext, state: dict[str, Any]) -> list[str]:
        """Move checkpointed files whose size and sha256 still match into this attempt.

        Whether their buckets are still current is decided later, in this attempt's
        snapshot (`_drop_stale`). Only earlier attempts' folders are read and removed.
        """
        target = ctx.work_dir / state["name"]
        kept: dict[str, Any] = {}
        earlier = {a: p for a, p in ctx.storage.work_dirs(ctx.job.id).items() if a < ctx.attempt}
        for relative, entry in state.get("files", {}).items():
            for attempt in sorted(earlier, reverse=True):
                candidate = earlier[attempt] / state["name"] / relative
                try:
                    size, sha = file_digest(candidate)
                    if size != entry["bytes"] or sha != entry["sha256"]:
                        continue
                    destination = target / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(candidate, destination)
                except FileNotFoundError:
                    continue  # not there (or removed meanwhile): written again
                except OSError as exc:
                    raise StorageError(f"storage failed while keeping {relative}: {exc}") from exc
                kept[relative] = entry
                break
        ctx.storage.remove_work(ctx.job.id, older_than=ctx.attempt)
        state["files"] = kept
        ctx.save_checkpoint()
        return list(kept)

    def _drop_stale(
        self,
        ctx: JobContext,
        *,
        conn: psycopg.Connection,
        state: dict[str, Any],
        plan: dict[str, list[Bucket]],
        work: Path,
        params: ExportArchiveParams,
    ) -> None:
        """Forget the kept files whose bucket changed since they were written (SPEC 4)."""
        files: dict[str, Any] = state["files"]
        counts = {b.path: b.records for buckets in plan.values() for b in buckets}
        ranged = params.start is not None or params.end is not None
        stale = stale_files(
            conn,
            account_id=ctx.job.account_id,
            kept=files,
            counts=counts,
            places_follow_items=ranged,
        )
        with storage_errors("dropping a stale file"):
            for relative in stale:
                (work / relative).unlink(missing_ok=True)
                del files[relative]
        ctx.save_checkpoint()
        ctx.store.record(
            ctx.job.id,
            ctx.attempt,
            "resumed",
            {"kept_files": len(files), "kept": sorted(files), "rewritten": stale},
        )

    # --- the data phases ------------------------------------------------------------------

    def _write_bucket(
        self,
        ctx: JobContext,
        *,
        conn: psycopg.Connection,
        work: Path,
        bucket: Bucket,
        selection: Selection,
        params: ExportArchiveParams,
        snapshot: str,
    ) -> None:
        gzip = params.gzip(bucket.kind)
        relative = bucket.path + (".json.gz" if gzip else ".json")
        files: dict[str, Any] = ctx.checkpoint["files"]
        if relative in files:
            ctx.advance(bucket.records)  # kept from an earlier attempt
            return
        query, values = bucket_query(bucket, selection)
        with storage_errors(f"writing {relative}"), BucketWriter(work, relative, gzip=gzip) as out:
            with conn.cursor() as cursor, cursor.copy(query, values) as copy:
                for line in copy:
                    written = out.write_lines(bytes(line))
                    if written:
                        ctx.advance(written)
            ctx.advance(out.flush())
            entry = out.close()
        files[relative] = {
            "records": entry.records,
            "bytes": entry.bytes,
            "sha256": entry.sha256,
            "snapshot": snapshot,
        }
        ctx.save_checkpoint()

    def _write_deleted(
        self, ctx: JobContext, conn: psycopg.Connection, base: dict[str, Any] | None
    ) -> dict[str, Path]:
        """The ids deleted since the base, per kind, one JSON string a line in a file of
        this attempt (a million-row delete never sits in memory). Ids that exist again
        are left out: the record is in the archive instead."""
        folder = ctx.work_dir / "deleted"
        out: dict[str, Path] = {}
        with storage_errors("writing the deleted ids"):
            folder.mkdir(parents=True, exist_ok=True)
            for kind, table in TABLES.items():
                path = out[kind] = folder / f"{kind}.jsonl"
                with path.open("wb") as handle:
                    if base is None:
                        continue  # no base: the archive holds everything, nothing is gone
                    query = (
                        "COPY (SELECT DISTINCT '\"' || upper(d.id::text) || '\"'"
                        " FROM deleted_records d WHERE d.account_id = %(a)s AND d.kind = %(k)s"
                        f" AND {deleted_after('d', 'base')} AND NOT EXISTS (SELECT 1 FROM"
                        f" {table} t WHERE t.account_id = d.account_id AND t.id = d.id)"
                        f" ORDER BY 1) TO STDOUT {COPY_OPTIONS}"
                    )
                    values = {"a": ctx.job.account_id, "k": kind, "base": base["snapshot"]}
                    with conn.cursor() as cursor, cursor.copy(query, values) as copy:
                        for block in copy:
                            handle.write(bytes(block))
                    ctx.check()
        return out

    # --- finalize ---------------------------------------------------------------------

    def _finalize(
        self,
        ctx: JobContext,
        params: ExportArchiveParams,
        state: dict[str, Any],
        work: Path,
        *,
        snapshot: str,
        deleted: dict[str, Path] | None,
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
        base = state.get("base")
        if base and base.get("session_start"):
            metadata["appMetadata"]["incrementalSince"] = base["session_start"]
        manifest = {"files": [e.as_dict() for e in entries]}
        name = state["name"]
        zip_path = ctx.work_dir / f"{name}.zip"
        with storage_errors("writing metadata and the zip"):
            work.mkdir(parents=True, exist_ok=True)
            for kind in ("places", "items", "samples"):
                (work / kind).mkdir(parents=True, exist_ok=True)
            write_metadata(work / "metadata.json", metadata, deleted)
            (work / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            size = write_zip(work, name, zip_path, check=ctx.check)
        # Only the attempt that owns the job publishes; what a stale one might still
        # publish lands in its own folder, which no result names (storage.py).
        ctx.confirm_lease()
        key = ctx.storage.publish(ctx.job.id, ctx.attempt, zip_path, f"{name}.zip")
        ctx.storage.remove_work(ctx.job.id, attempt=ctx.attempt)
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
            # The snapshot the archive is consistent at: the next incremental export's
            # base selects what was written after it.
            "snapshot": snapshot,
            "base": base["job_id"] if base else None,
        }


def write_metadata(path: Path, metadata: dict[str, Any], deleted: dict[str, Path] | None) -> None:
    """metadata.json, with `deletedIds` streamed in from the per-kind id files."""
    head = orjson.dumps(metadata, option=orjson.OPT_INDENT_2)
    with path.open("wb") as out:
        if deleted is None:
            out.write(head)
            return
        out.write(head[: head.rindex(b"}")].rstrip() + b',\n  "deletedIds": {')
        for index, (kind, ids) in enumerate(deleted.items()):
            out.write(b"," if index else b"")
            out.write(b'\n    "' + kind.encode() + b'": [')
            separator = b""
            with ids.open("rb") as lines:
                for line in lines:
                    out.write(separator + b"\n      " + line.rstrip(b"\n"))
                    separator = b","
            out.write(b"\n    ]" if separator else b"]")
        out.write(b"\n  }\n}")
