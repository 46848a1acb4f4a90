"""The `import.table` pipeline (SPEC 13 "Import"): one table file, previewed, then applied
all-or-nothing.

Phases:
- read: the upload is read once, as a stream (`reading`): format, encoding, delimiter,
  header, the mapping (`mapping`); every row's cells are checked (`rows`) and the valid
  rows COPYed into the job's staging table as they pass; a refused cell is listed with
  its spreadsheet row number.
- validate: the checks across rows, in staging (`staged`): duplicate ids, ids that exist
  (mode insert), new rows without a required column, references to rows in neither the
  file nor the account (nulled, with a warning); then the preview's counts and sample.
  The preview waits for the user (`awaiting_confirmation`) unless `confirm` was set.
- apply: one transaction under the per-account lock: the rows about to be replaced are
  handed to the undo's recorder, then one INSERT … SELECT (upsert by id, or insert);
  the `applied` checkpoint commits with it.
- finalize: staging and the upload go.

`POST /jobs/{id}/remap` stores a new mapping and queues the job again from `read`.

The direct path (direct.py): a confirmed import of samples whose file maps every column,
into an account without samples, takes the per-account lock before it reads and writes
each valid row straight into `samples`; the checks, the preview, the decision on it and
the commit happen in that one transaction. An id twice in the file rolls it back and the
file is read again into staging. Interrupted before its commit, it starts over.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from shared.errors import BadRequest
from shared.findings import LISTED, Findings
from shared.jobs.attempt import JobContext
from shared.jobs.pipeline import AwaitConfirmation, Outcome, Succeeded, hold_for_confirmation
from shared.jobs.states import PHASES, JobType
from shared.jobs.store import Job
from shared.settings import Settings
from shared.store.changes import anything_written_after, current_snapshot
from shared.store.db import SHORT, raw_connection
from shared.store.live_samples import account_has_samples
from shared.store.locks import lock_account_data
from shared.store.staging import drop_job_tables
from shared.tables.direct import LiveRows, StageInstead, eligible
from shared.tables.mapping import match
from shared.tables.params import TableImportParams
from shared.tables.reading import RowProblem, TableFile, open_table
from shared.tables.rows import FIELDS, RowReader, cell_error
from shared.tables.staged import REFERENCES, TableStaging
from shared.undo.recorder import apply_marks, forget_unwritten, record_replaced

log = logging.getLogger(__name__)

# Rows read between progress reports and cancel checks.
BATCH = 2_000
_KIND = {"samples": "samples", "items": "items", "places": "places"}


class ImportTable:
    """The `import.table` pipeline."""

    phases = PHASES[JobType.IMPORT_TABLE]

    def run(self, ctx: JobContext) -> Outcome:
        """Read and check the file (or pick up staging), then wait for the user or apply."""
        params = TableImportParams.from_json(ctx.job.params)
        stage = ctx.checkpoint.get("stage")
        if stage == "applied":
            return self._finalize(ctx)
        preview: dict[str, Any] | None = None
        if stage == "staged" and self._staging_intact(ctx):
            preview = ctx.checkpoint["preview"]
        if preview is None:
            preview = self._prepare(ctx, params)
            if preview is None:  # read and applied in one transaction (direct.py)
                return self._finalize(ctx)
        waiting = self._decide(ctx, params, preview)
        if waiting is not None:
            return waiting
        self._apply(ctx, params, preview)
        return self._finalize(ctx)

    def discard(self, job: Job, settings: Settings) -> None:
        """Drop the job's staging tables (the upload stays for a restart)."""
        with raw_connection(settings.database_url, limits=SHORT) as conn:
            drop_job_tables(conn, job.id)
            conn.commit()

    # --- read, validate ---------------------------------------------------------------

    def _staging(self, ctx: JobContext, params: TableImportParams) -> TableStaging:
        columns = tuple(ctx.checkpoint.get("columns") or ())
        return TableStaging(ctx.job.id, params.table, columns)

    def _staging_intact(self, ctx: JobContext) -> bool:
        """Whether staging still holds what the checkpoint says (UNLOGGED tables vanish
        after a database crash)."""
        params = TableImportParams.from_json(ctx.job.params)
        staging = self._staging(ctx, params)
        with ctx.connect() as conn:
            return staging.exists(conn) and staging.count(conn) == ctx.checkpoint.get("staged")

    def _prepare(self, ctx: JobContext, params: TableImportParams) -> dict[str, Any] | None:
        ctx.start_phase("read")
        upload = ctx.storage.upload_path(ctx.job.id)
        if not upload.is_file():
            raise BadRequest("the uploaded file is no longer stored; upload the file again")
        size = upload.stat().st_size
        ctx.tracker.set_total("read", max(1, size // 100))
        direct = params.confirm
        while True:
            source = open_table(
                upload,
                name=params.filename,
                sheet=params.sheet,
                max_expanded_bytes=ctx.settings.max_expanded_bytes,
                max_ratio=ctx.settings.max_compression_ratio,
            )
            try:
                return self._read(ctx, params, source, size, direct=direct)
            except StageInstead as why:
                # An id twice in the file: read it again into staging, which reports it.
                log.info("job %s: rows staged after all (%s)", ctx.job.id, why)
                direct = False
                ctx.tracker.phase.done = 0
            finally:
                source.close()

    def _read(
        self,
        ctx: JobContext,
        params: TableImportParams,
        source: TableFile,
        size: int,
        *,
        direct: bool,
    ) -> dict[str, Any] | None:
        """Read, check and stage the file; its preview. With `direct` (and where direct.py
        allows it) the rows go straight into `samples` and the import is applied here:
        None."""
        table = params.definition
        matched = match(source.header, table, params.mapping or {})
        mapped = matched.columns(source.header)
        fed = {column for _, column in mapped}
        generate = "id" not in fed
        now = ctx.job.created_at
        reader = RowReader(
            table=params.table,
            header=source.header,
            mapped=mapped,
            zone=ZoneInfo(params.timezone),
            escaped=source.escaped,
            now=now,
            generate_ids=generate,
            text_cells=source.text_cells,
            date_epoch=source.date_epoch,
        )
        staging = TableStaging(ctx.job.id, params.table, reader.columns)
        errors, warnings = Findings(), Findings()
        for name in matched.absent:
            warnings.note(
                cell_error(1, name, None, "the mapping names this column; the file has none")
            )
        rows = invalid = 0
        with ctx.connect() as conn:
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                live = None
                if direct and eligible(params.table, reader.columns, confirm=params.confirm):
                    # The apply's transaction starts here, with the per-account lock.
                    lock_account_data(conn, ctx.job.account_id)
                    if not account_has_samples(conn, ctx.job.account_id):
                        live = LiveRows.open(conn, ctx.job.account_id, reader.columns)
                    else:
                        conn.rollback()
                staging.create(conn)
                item = reader.columns.index("timeline_item_id") if live is not None else -1
                try:
                    with staging.writer(conn) if live is None else live.copy(conn) as copy:
                        write = copy.write_row
                        account = ctx.job.account_id
                        for number, cells in source.rows:
                            rows += 1
                            if isinstance(cells, RowProblem):
                                errors.note(cell_error(number, None, None, cells.reason))
                                invalid += 1
                            else:
                                values, found, notes = reader.read(number, cells)
                                for note in notes:
                                    warnings.note(note)
                                if values is None:
                                    invalid += 1
                                    for problem in found:
                                        errors.note(problem)
                                elif live is None:
                                    write((number, *values))
                                else:
                                    live.judge(number, values, item)
                                    write((account, *values))
                            if rows % BATCH == 0:
                                self._progress(ctx, rows, size, source)
                except psycopg.errors.UniqueViolation as error:
                    if live is None:
                        raise
                    conn.rollback()
                    raise StageInstead(str(error)) from None
                ctx.advance(rows % BATCH)
                if live is None:
                    conn.commit()
                ctx.finish_phase()
                staged = staging.count(conn) if live is None else live.written
                ctx.tracker.set_total("validate", staged)
                ctx.start_phase("validate")
                if live is None:
                    checked = self._validate(
                        ctx,
                        conn,
                        params=params,
                        staging=staging,
                        reader=reader,
                        errors=errors,
                        warnings=warnings,
                        generate=generate,
                    )
                    conn.commit()
                else:
                    checked = self._validate_live(
                        ctx,
                        conn,
                        params=params,
                        live=live,
                        reader=reader,
                        errors=errors,
                        warnings=warnings,
                    )
                preview, snapshot = self._finish_preview(
                    checked, source=source, matched=matched, rows=rows, invalid=invalid
                )
                if live is not None:
                    # Saved only with the commit: a crash before it starts over.
                    ctx.checkpoint = {
                        "staged": staged,
                        "columns": list(reader.columns),
                        "snapshot": snapshot,
                        "preview": preview,
                        "direct": True,
                    }
                    self._decide(ctx, params, preview)
                    self._apply_live(ctx, conn, params, preview, live.written)
                    return None
            finally:
                unregister()
        ctx.checkpoint = {
            "stage": "staged",
            "staged": staged,
            "columns": list(reader.columns),
            "snapshot": snapshot,
            "preview": preview,
        }
        ctx.save_checkpoint()
        return preview

    @staticmethod
    def _finish_preview(
        checked: dict[str, Any],
        *,
        source: TableFile,
        matched: Any,
        rows: int,
        invalid: int,
    ) -> tuple[dict[str, Any], str]:
        """The preview from the checks' findings and the file's facts; the snapshot the
        counts saw."""
        preview = dict(checked)
        counts = preview.pop("_counts")
        snapshot = preview.pop("_snapshot")
        preview.update(
            {
                "format": source.format,
                "encoding": source.encoding,
                "delimiter": source.delimiter,
                "header": source.header,
                "mapping": matched.used,
                "unmapped": matched.unmapped,
                "counts": {
                    "rows": rows,
                    "valid": rows - invalid - counts["invalid_staged"],
                    "invalid": invalid + counts["invalid_staged"],
                    "would_create": counts["would_create"],
                    "would_update": counts["would_update"],
                    "unchanged": counts["unchanged"],
                },
            }
        )
        return preview, snapshot

    @staticmethod
    def _decide(
        ctx: JobContext, params: TableImportParams, preview: dict[str, Any]
    ) -> AwaitConfirmation | None:
        """Wait for the user, fail (errors with confirm), or go on (None)."""
        return hold_for_confirmation(
            ctx,
            preview,
            errors=preview["error_total"],
            confirm=params.confirm,
            skip_invalid=params.skip_invalid,
            refused=f"{preview['error_total']} cell error(s) in the file; nothing was imported"
            " (see the job's preview, or import with skip_invalid=true)",
        )

    def _validate_live(
        self,
        ctx: JobContext,
        conn: psycopg.Connection,
        *,
        params: TableImportParams,
        live: LiveRows,
        reader: RowReader,
        errors: Findings,
        warnings: Findings,
    ) -> dict[str, Any]:
        """What `_validate` finds, for rows written into `samples` (direct.py): the
        references judged as they went by, nulled now; nothing else can be found."""
        live.null_references(conn)
        named = reader.file_column.get("timeline_item_id", "timeline_item_id")
        reason = "no such item in the file or the account; set to null"
        warnings.extend(
            [{**r, "column": named, "reason": reason} for r in live.missing], live.missing_total
        )
        snapshot = current_snapshot(conn)
        ctx.advance(live.written, paced=False)
        return {
            "table": params.table,
            "mode": params.mode,
            "skip_invalid": params.skip_invalid,
            "errors": sorted(errors.listed, key=lambda e: e["row"])[:LISTED],
            "error_total": errors.total,
            "warnings": sorted(warnings.listed, key=lambda w: w["row"]),
            "warning_total": warnings.total,
            "sample": live.sample(conn),
            "_counts": {
                "would_create": live.written,
                "would_update": 0,
                "unchanged": 0,
                "invalid_staged": 0,
            },
            "_snapshot": snapshot,
        }

    def _apply_live(
        self,
        ctx: JobContext,
        conn: psycopg.Connection,
        params: TableImportParams,
        preview: dict[str, Any],
        written: int,
    ) -> None:
        """Commit a direct import: its rows are in `samples` already (`_apply`'s result)."""
        counts = preview["counts"]
        ctx.tracker.set_total("apply", counts["valid"])
        ctx.start_phase("apply")
        ctx.advance(counts["valid"], paced=False)  # paced while they were written
        result = {
            "counts": {
                "created": written,
                "updated": 0,
                "skipped": counts["valid"] - written,
                "invalid": counts["invalid"],
            },
            "table": params.table,
            "warnings": preview.get("warning_total", 0),
            "recorded_for_undo": 0,
            **apply_marks(conn),
        }
        ctx.commit_applied(conn, {**ctx.checkpoint, "stage": "applied", "result": result})
        log.info("job %s: table %s applied %s", ctx.job.id, params.table, result["counts"])

    @staticmethod
    def _progress(ctx: JobContext, rows: int, size: int, source: TableFile) -> None:
        """Count a batch; the total is estimated from the bytes read so far."""
        done = source.bytes_read()
        if done:
            estimate = int(rows * size / done)
            ctx.tracker.set_total("read", max(estimate, rows + 1))
        ctx.advance(BATCH)

    def _validate(
        self,
        ctx: JobContext,
        conn: psycopg.Connection,
        *,
        params: TableImportParams,
        staging: TableStaging,
        reader: RowReader,
        errors: Findings,
        warnings: Findings,
        generate: bool,
    ) -> dict[str, Any]:
        account = ctx.job.account_id
        staging.index(conn)
        found: list[tuple[int, list[dict[str, Any]]]] = []
        id_column = reader.file_column.get("id")
        if not generate:
            found.append(staging.duplicate_ids(conn, id_column or "id"))
            if params.mode == "insert":
                found.append(staging.existing_ids(conn, account, id_column or "id"))
        missing = [
            f.column
            for f in FIELDS[params.table].values()
            if f.required and f.column not in reader.columns
        ]
        if missing:
            found.append(staging.new_without(conn, account, missing))
        ctx.check()
        # The first LISTED errors of the file: those the rows showed and those the checks
        # across rows found, in row order.
        listed = sorted(
            errors.listed + [e for _, rows in found for e in rows], key=lambda e: e["row"]
        )[:LISTED]
        total = errors.total + sum(n for n, _ in found)
        for column, target in REFERENCES[params.table]:
            if column not in staging.columns:
                continue
            count, rows = staging.null_references(conn, account, column, target)
            what = "item" if target == "timeline_items" else "place"
            reason = f"no such {what} in the file or the account; set to null"
            if column == "place_id":
                reason += ", and so the visit is not confirmed and is uncertain"
            named = reader.file_column.get(column, column)
            warnings.extend([{**r, "column": named, "reason": reason} for r in rows], count)
            ctx.check()
        # Taken before the counts: a row they missed was written by a transaction this
        # snapshot did not see (what the apply checks under the lock).
        snapshot = current_snapshot(conn)
        counts = staging.counts(conn, account)
        ctx.advance(staging.count(conn))
        return {
            "table": params.table,
            "mode": params.mode,
            "skip_invalid": params.skip_invalid,
            "errors": listed,
            "error_total": total,
            "warnings": sorted(warnings.listed, key=lambda w: w["row"]),
            "warning_total": warnings.total,
            "sample": staging.sample(conn, account, ctx.job.created_at),
            "_counts": counts,
            "_snapshot": snapshot,
        }

    # --- apply, finalize ----------------------------------------------------------------

    def _apply(self, ctx: JobContext, params: TableImportParams, preview: dict[str, Any]) -> None:
        staging = self._staging(ctx, params)
        counts = preview["counts"]
        ctx.tracker.set_total("read", counts["rows"])
        ctx.tracker.set_total("validate", ctx.checkpoint.get("staged", 0))
        ctx.tracker.set_total("apply", counts["valid"])
        ctx.start_phase("apply")
        account = ctx.job.account_id
        now: datetime = ctx.job.created_at
        with ctx.connect() as conn:
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                lock_account_data(conn, account)
                replaced = 0
                if params.mode == "upsert" and "id" in staging.columns:
                    ids = staging.save_replaced(conn, account)
                    replaced = record_replaced(
                        conn,
                        job_id=ctx.job.id,
                        account_id=account,
                        kind=_KIND[params.table],
                        staging=ids,
                    )
                created, updated = staging.apply(
                    conn,
                    account_id=account,
                    mode=params.mode,
                    now=now,
                    conflicts=self._needs_conflict_check(ctx, conn, params, counts),
                )
                if replaced:
                    forget_unwritten(conn, job_id=ctx.job.id)
                ctx.advance(counts["valid"])
                ctx.check()
                result = {
                    "counts": {
                        "created": created,
                        "updated": updated,
                        "skipped": counts["valid"] - created - updated,
                        "invalid": counts["invalid"],
                    },
                    "table": params.table,
                    "warnings": preview.get("warning_total", 0),
                    "recorded_for_undo": replaced,
                    # The apply's transaction: the rows it created carry it as created_xid,
                    # every row it wrote as written_xid (what an undo needs, shared/undo).
                    **apply_marks(conn),
                }
                ctx.commit_applied(conn, {**ctx.checkpoint, "stage": "applied", "result": result})
            finally:
                unregister()
        log.info("job %s: table %s applied %s", ctx.job.id, params.table, result["counts"])

    @staticmethod
    def _needs_conflict_check(
        ctx: JobContext,
        conn: psycopg.Connection,
        params: TableImportParams,
        counts: dict[str, int],
    ) -> bool:
        """Whether the rows must go in with ON CONFLICT; decided under the lock.

        Not when the preview found none of the file's ids in the account and no row of
        the table was written in the account since its snapshot (one range scan over
        recent writes), as the archive import decides: then none can exist.
        """
        if counts["would_update"] or counts["unchanged"] or params.mode == "insert":
            return True
        snapshot = ctx.checkpoint.get("snapshot")
        if not snapshot:
            return True
        return anything_written_after(
            conn, kind=params.table, account_id=ctx.job.account_id, snapshot=snapshot
        )

    def _finalize(self, ctx: JobContext) -> Succeeded:
        ctx.committed = True
        ctx.start_phase("finalize")
        with ctx.connect() as conn:
            drop_job_tables(conn, ctx.job.id)
            conn.commit()
        ctx.storage.remove_upload(ctx.job.id)
        ctx.storage.remove_work(ctx.job.id, older_than=ctx.attempt + 1)
        ctx.finish_phase()
        return Succeeded(dict(ctx.checkpoint.get("result") or {}))
