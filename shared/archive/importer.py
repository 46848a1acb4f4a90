"""The archive import (SPEC 4, 11): validated first, applied all-or-nothing, resumable.

Phases:
- unpack: the upload is checked and extracted into this attempt's work folder (unpack.py).
- validate: metadata.json, manifest.json checksums, then every record of every file,
  streamed: a record that passes its checks is COPYed into the job's staging tables, a
  record that fails is listed in the report (file, index, field, reason). A key the
  Arc apps require but the record lacks takes the apps' default, with a warning.
- stage: set-based checks in staging (`checks.py`): repeated ids (the newest copy
  stays), references that resolve neither in the archive nor in the account (nulled,
  with a warning), conflicts with the account.
  The report then waits for the user (`awaiting_confirmation`) unless `confirm` was set.
- apply, edges: one transaction, under a per-account lock, inserts places, items (edges
  null), samples, then restores the edges, and writes the `applied` checkpoint in the
  same transaction. Conflicts with the account are decided there, not by the preview:
  another import may have written the same ids since (`_needs_conflict_check`).
- finalize: staging tables, upload and work folder go.

The direct path (direct.py): a confirmed import (`confirm=true`) into an account without
samples opens the apply's transaction before it validates the samples, and COPYs each
valid sample straight into `samples`; places and items are staged and checked as
above, then applied in that same transaction. The report, the decision on it and the
result are those of the staged path; a repeated sample id rolls the transaction back and
the samples are staged after all.

A resumed attempt starts over from the upload, unless staging is complete (after a
confirmation, or a crash during a staged apply) or the apply already committed. A direct
import interrupted before its commit left nothing, and starts over from the upload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from datetime import datetime
from functools import partial
from typing import Any

import psycopg

from shared.archive.checks import stage_checks
from shared.archive.direct import LiveSamples, SampleItems, StagedRows, archive_items
from shared.archive.reader import (
    DataFile,
    check_metadata,
    data_files,
    record_blocks,
    verify_manifest,
)
from shared.archive.records import (
    Decoded,
    FastBlock,
    FastRows,
    fast_sample_rows,
    item_row,
    place_row,
    sample_row,
    unknown_keys,
)
from shared.archive.report import Report
from shared.archive.staging import COLUMNS, KINDS, Staging
from shared.archive.unpack import Limits, archive_root, clear, unpack
from shared.errors import BadRequest
from shared.fields import Problem
from shared.jobs.attempt import JobContext
from shared.jobs.pipeline import AwaitConfirmation, Outcome, Succeeded, hold_for_confirmation
from shared.jobs.states import PHASES, JobType
from shared.jobs.store import Job
from shared.params import ImportArchiveParams
from shared.settings import Settings
from shared.store.changes import anything_written_after
from shared.store.db import SHORT, raw_connection
from shared.store.live_samples import account_has_samples, account_items, copy_samples
from shared.timefmt import format_iso
from shared.undo.recorder import apply_marks, record_replaced

log = logging.getLogger(__name__)

DECODERS: dict[str, Callable[[Any, datetime | None], Decoded]] = {
    "places": place_row,
    "items": item_row,
    "samples": sample_row,
}
# Kinds whose blocks are first decoded whole in C (records.py, "the fast path").
FAST_ROWS: dict[str, FastRows] = {"samples": fast_sample_rows}
# Records of a kind whose unknown keys are named in the report (all of them are counted).
NAMED_UNKNOWN = 1_000
_STATS_KEYS = {"places": "placeCount", "items": "itemCount", "samples": "sampleCount"}


class ImportArchive:
    """The `import.archive` pipeline."""

    phases = PHASES[JobType.IMPORT_ARCHIVE]

    def run(self, ctx: JobContext) -> Outcome:
        """Prepare (or pick up) staging, then stop for confirmation or apply."""
        params = ImportArchiveParams.from_json(ctx.job.params)
        staging = Staging(ctx.job.id)
        stage = ctx.checkpoint.get("stage")
        if stage == "applied":
            return self._finalize(ctx, staging)
        report = None
        if stage == "staged" and self._staging_intact(ctx, staging):
            report = Report.from_dict(ctx.checkpoint["preview"])
        if report is None:
            prepared = self._prepare(ctx, params, staging)
            if prepared is None:  # validated and applied in one transaction (direct.py)
                return self._finalize(ctx, staging)
            report = prepared
        waiting = self._decide(ctx, params, report)
        if waiting is not None:
            return waiting
        with ctx.connect() as conn:
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                staging.prepare_apply(conn, ctx.job.account_id)
                self._apply(ctx, conn, params, staging, report)
            finally:
                unregister()
        return self._finalize(ctx, staging)

    @staticmethod
    def _decide(
        ctx: JobContext, params: ImportArchiveParams, report: Report
    ) -> AwaitConfirmation | None:
        """Wait for the user, fail (errors with confirm), or go on (None)."""
        return hold_for_confirmation(
            ctx,
            report.as_dict(on_conflict=params.on_conflict, skip_invalid=params.skip_invalid),
            errors=report.errors.total,
            confirm=params.confirm,
            skip_invalid=params.skip_invalid,
            refused=f"{report.errors.total} problem(s) found in the archive; nothing was"
            " imported (see the job's preview, or import with skip_invalid=true)",
        )

    def discard(self, job: Job, settings: Settings) -> None:
        """Drop the job's staging tables (files go with storage)."""
        # Short limits: this runs while the job row is locked, and must not wait long for a
        # lock on staging (the sweeper removes what is left otherwise).
        with raw_connection(settings.database_url, limits=SHORT) as conn:
            Staging(job.id).drop(conn)
            conn.commit()

    # --- unpack, validate, stage ----------------------------------------------------------

    def _staging_intact(self, ctx: JobContext, staging: Staging) -> bool:
        """Whether staging still holds what the checkpoint says (UNLOGGED tables vanish
        after a database crash)."""
        with ctx.connect() as conn:
            return staging.exists(conn) and staging.counts(conn) == ctx.checkpoint.get("staged")

    def _prepare(
        self, ctx: JobContext, params: ImportArchiveParams, staging: Staging
    ) -> Report | None:
        """Unpack, validate and stage; the report. None when the import was applied too:
        a confirmed import whose samples went straight into the live table (direct.py)."""
        ctx.start_phase("unpack")
        ctx.storage.remove_work(ctx.job.id, older_than=ctx.attempt)
        upload = ctx.storage.upload_path(ctx.job.id)
        if not upload.is_file():
            raise BadRequest("the uploaded file is no longer stored; upload the archive again")
        folder = ctx.work_dir / "archive"
        clear(folder)
        limits = Limits(
            max_expanded_bytes=ctx.settings.max_expanded_bytes,
            max_ratio=ctx.settings.max_compression_ratio,
        )
        unpack(upload, folder, limits=limits)
        root = archive_root(folder)
        ctx.finish_phase()

        ctx.start_phase("validate")
        report = Report()
        metadata = check_metadata(root)
        files, ignored = data_files(root)
        per_file = verify_manifest(root, files)
        report.archive = {
            "schemaVersion": metadata.get("schemaVersion"),
            "exportType": metadata.get("exportType"),
            "exportId": metadata.get("exportId"),
            "manifest": per_file is not None,
            "files": len(files),
            "ignored": ignored[:100],
        }
        for name in ignored[:100]:
            report.warnings.add(name, None, "", "not a data file of the archive format; ignored")
        expected = self._expected(metadata, files, per_file)
        for phase in ("validate", "stage", "apply"):
            ctx.tracker.set_total(phase, sum(expected.values()))
        ctx.tracker.set_total("edges", expected["items"])
        ctx.report(force=True)
        with ctx.connect() as conn:
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                staging.create(conn)
                # What a missing lastSaved becomes (the Arc apps' default is "now"): the
                # moment the import was asked for, so a retried or resumed attempt stores
                # the same values as the first.
                now = ctx.job.created_at
                report.archive["imported_at"] = format_iso(now)
                validate = partial(
                    self._validate_kind,
                    ctx,
                    conn=conn,
                    staging=staging,
                    files=files,
                    report=report,
                    now=now,
                )
                for kind in KINDS[:-1]:
                    validate(kind=kind)
                conn.commit()
                # Samples last: straight into `samples` when they can be (the apply's
                # transaction then stays open to the end), else into staging.
                live = self._validate_live(
                    ctx, conn, params=params, staging=staging, report=report, validate=validate
                )
                if live is None:
                    validate(kind="samples")
                    conn.commit()
                ctx.finish_phase()
                # Every record validation did not refuse went into staging once (a count
                # of the staging tables would scan them again).
                written = sum(
                    c.get("records", 0) - c.get("invalid", 0) for c in report.counts.values()
                )
                ctx.tracker.set_total("stage", written)
                ctx.start_phase("stage")
                # What staging holds after its checks (repeated ids are gone by then): the
                # apply's totals, and what a later delivery checks staging against.
                staged, snapshot = stage_checks(ctx, conn, staging, files, report, live=live)
                if live is not None:
                    self._apply_direct(
                        ctx,
                        conn,
                        params=params,
                        staging=staging,
                        report=report,
                        staged=staged,
                        snapshot=snapshot,
                    )
                    return None
                conn.commit()
            finally:
                unregister()
        clear(folder)
        ctx.tracker.set_total("apply", sum(staged.values()))
        ctx.tracker.set_total("edges", staged["items"])
        ctx.checkpoint = {
            "stage": "staged",
            "staged": staged,
            # What the preview's conflict counts were judged against (see `_apply`).
            "snapshot": snapshot,
            "preview": report.as_dict(
                on_conflict=params.on_conflict, skip_invalid=params.skip_invalid
            ),
        }
        ctx.save_checkpoint()
        return report

    def _validate_live(
        self,
        ctx: JobContext,
        conn: psycopg.Connection,
        *,
        params: ImportArchiveParams,
        staging: Staging,
        report: Report,
        validate: Callable[..., None],
    ) -> SampleItems | None:
        """Validate the samples straight into `samples`, in the transaction that will apply
        the import (direct.py), when the import is confirmed and the account has no
        samples; their item references judged on the way. None when they are to be staged
        instead (then nothing of this was written: the transaction was rolled back)."""
        if not params.confirm:
            return None
        account = ctx.job.account_id
        # The apply's transaction starts here, with the per-account lock.
        staging.prepare_apply(conn, account)
        if account_has_samples(conn, account):
            conn.rollback()
            return None
        before = deepcopy(report)
        done = ctx.tracker.phase.done
        live = SampleItems(archive_items(conn, staging), account_items(conn, account))
        try:
            validate(kind="samples", live=live)
        except psycopg.errors.UniqueViolation as error:
            # A sample id twice in the archive: stage the samples, which reports it.
            log.info("job %s: samples staged after all (%s)", ctx.job.id, error)
            conn.rollback()
            report.errors, report.warnings = before.errors, before.warnings
            report.counts, report.archive = before.counts, before.archive
            ctx.tracker.phase.done = done
            return None
        live.null_references(conn, account)
        return live

    def _apply_direct(
        self,
        ctx: JobContext,
        conn: psycopg.Connection,
        *,
        params: ImportArchiveParams,
        staging: Staging,
        report: Report,
        staged: dict[str, int],
        snapshot: str,
    ) -> None:
        """Decide on the report, then apply places, items and edges in the transaction
        that holds the samples already, and commit it with the `applied` checkpoint.

        The report is the job's preview as in a staged import; with errors (and no
        skip_invalid) the decision raises, and the transaction rolls back.
        """
        waiting = self._decide(ctx, params, report)
        assert waiting is None  # a direct import is a confirmed one: it goes on or fails
        preview = report.as_dict(on_conflict=params.on_conflict, skip_invalid=params.skip_invalid)
        # What a staged import keeps in its checkpoint, for the apply; it is saved only
        # with the commit (a crash before it starts over from the upload).
        ctx.checkpoint = {
            **ctx.checkpoint,
            "staged": staged,
            "snapshot": snapshot,
            "preview": preview,
            "direct": True,
        }
        self._apply(ctx, conn, params, staging, report, direct=True)

    @staticmethod
    def _expected(
        metadata: dict[str, Any], files: list[DataFile], per_file: dict[str, int] | None
    ) -> dict[str, int]:
        """Records to expect per kind: from the manifest, else metadata stats, else 0."""
        expected = dict.fromkeys(KINDS, 0)
        if per_file is not None:
            for data in files:
                expected[data.kind] += per_file.get(data.relative, 0)
            return expected
        stats = metadata.get("stats") if isinstance(metadata.get("stats"), dict) else {}
        for kind, key in _STATS_KEYS.items():
            value = stats.get(key) if stats else None
            expected[kind] = value if isinstance(value, int) and value >= 0 else 0
        return expected

    def _validate_kind(
        self,
        ctx: JobContext,
        *,
        conn: psycopg.Connection,
        staging: Staging,
        kind: str,
        files: list[DataFile],
        report: Report,
        now: datetime,
        live: SampleItems | None = None,
    ) -> None:
        """Validate every record of a kind; the valid ones go to staging, or with `live`
        (samples of a direct import) into `samples`."""
        decode = DECODERS[kind]
        fast = FAST_ROWS.get(kind)
        max_ratio = ctx.settings.max_compression_ratio
        unknown_total = named = 0
        names: set[str] = set()
        sink: LiveSamples | StagedRows
        with self._copy(conn, staging, kind, live) as copy:
            sink = StagedRows(copy) if live is None else LiveSamples(copy, ctx.job.account_id, live)
            for file_no, data in enumerate(files):
                if data.kind != kind:
                    continue

                def typed(block: bytes, start: int, file_no: int = file_no) -> FastBlock | None:
                    return fast(block, file_no, start) if fast is not None else None

                seen = invalid = 0
                for start, block, values in record_blocks(data, max_ratio=max_ratio, typed=typed):
                    if block is not None:
                        # Every record of the block passed: nothing to report but the
                        # keys Ferry has no column for, counted and named as below.
                        sink.block(block)
                        if unknown := block.unknown:
                            unknown_total += unknown
                            for keys in block.unknown_keys():
                                if named >= NAMED_UNKNOWN:
                                    break
                                named += 1
                                names.update(keys)
                        seen += len(block)
                        ctx.advance(len(block))
                        continue
                    assert values is not None
                    for index, value in enumerate(values, start):
                        row, problems, unknown = decode(value, now)
                        if unknown:
                            unknown_total += unknown
                            if named < NAMED_UNKNOWN:
                                named += 1
                                names.update(unknown_keys(kind, value))
                        if problems and self._refused(report, data.relative, index, problems):
                            invalid += 1
                        else:
                            sink.row(file_no, index, row)
                    seen += len(values)
                    ctx.advance(len(values))
                report.count(kind, "records", seen)
                report.count(kind, "invalid", invalid)
        # Keys Ferry has no column for (newer app versions, derived values like a place's
        # `category`) are not imported; the report counts them and names what it saw.
        report.count(kind, "ignored_keys", unknown_total)
        if names:
            report.archive.setdefault("ignored_keys", {})[kind] = sorted(names)[:100]

    @staticmethod
    @contextmanager
    def _copy(
        conn: psycopg.Connection, staging: Staging, kind: str, live: SampleItems | None
    ) -> Iterator[psycopg.Copy]:
        if live is None:
            with staging.writer(conn, kind) as copy:
                yield copy
            return
        with copy_samples(conn, COLUMNS["samples"]) as copy:
            yield copy

    @staticmethod
    def _refused(report: Report, file: str, index: int, problems: list[Problem]) -> bool:
        """Report a record's problems; whether any refuses it (warnings alone do not)."""
        refused = any(not p.warning for p in problems)
        for problem in problems:
            if not problem.warning:
                report.errors.add(file, index, problem.field, problem.reason)
            elif not refused:
                report.warnings.add(file, index, problem.field, problem.reason)
        return refused

    # --- apply, edges, finalize --------------------------------------------------------------

    def _apply(
        self,
        ctx: JobContext,
        conn: psycopg.Connection,
        params: ImportArchiveParams,
        staging: Staging,
        report: Report,
        *,
        direct: bool = False,
    ) -> None:
        """Write the staged records (with `direct`, the samples are in `samples` already)
        and the edges, and commit with the `applied` checkpoint; `conn` holds the
        per-account lock (`Staging.prepare_apply`)."""
        staged = ctx.checkpoint.get("staged") or {}
        seen = sum(c.get("records", 0) for c in report.counts.values())
        # Totals of the phases before apply, for a delivery that starts here after the
        # confirmation: the weights stay those the report was shown with.
        ctx.tracker.set_total("validate", seen)
        ctx.tracker.set_total("stage", sum(staged.values()))
        ctx.tracker.set_total("apply", sum(staged.values()))
        ctx.tracker.set_total("edges", staged.get("items", 0))
        ctx.start_phase("apply")
        account = ctx.job.account_id
        written = dict.fromkeys(KINDS, 0)
        replaced = dict.fromkeys(KINDS, 0)
        for kind in KINDS:
            if direct and kind == "samples":
                written[kind] = staged.get(kind, 0)
                ctx.advance(written[kind], paced=False)  # paced while written
                continue
            conflicts = self._needs_conflict_check(ctx, conn, kind, report)
            if conflicts and params.on_conflict == "newer":
                # The undo's before-images of exactly the rows `newer` replaces.
                record_replaced(
                    conn,
                    job_id=ctx.job.id,
                    account_id=account,
                    kind=kind,
                    staging=staging.table(kind).as_string(conn),
                    newer_only=True,
                )
            for file_no, rows in staging.file_numbers(conn, kind):
                inserted, updated = staging.apply_file(
                    conn,
                    kind=kind,
                    file_no=file_no,
                    account_id=account,
                    on_conflict=params.on_conflict,
                    conflicts=conflicts,
                )
                written[kind] += inserted
                replaced[kind] += updated
                ctx.advance(rows)
        ctx.start_phase("edges")
        edges = staging.restore_edges(conn, account)
        ctx.advance(staged.get("items", 0))
        ctx.check()
        result = {
            "written": written,
            "replaced": replaced,
            "kept_existing": {k: staged.get(k, 0) - written[k] - replaced[k] for k in KINDS},
            "edges_restored": edges,
            "invalid_skipped": sum(c.get("invalid", 0) for c in report.counts.values()),
            "warnings": report.warnings.total,
            # The apply's transaction: every row it wrote carries it as written_xid
            # until something writes the row again, every row it created as
            # created_xid (what an undo needs to tell the import's rows from later
            # changes, shared/undo).
            **apply_marks(conn),
        }
        checkpoint = {**ctx.checkpoint, "stage": "applied", "result": result}
        ctx.commit_applied(conn, checkpoint)
        log.info("job %s: applied %s (replaced %s)", ctx.job.id, written, replaced)

    @staticmethod
    def _needs_conflict_check(
        ctx: JobContext, conn: psycopg.Connection, kind: str, report: Report
    ) -> bool:
        """Whether a kind's rows must go in with a per-row conflict check (ON CONFLICT).

        Decided under the per-account lock, whatever the preview saw: the preview found no
        record of this kind in the account, and no row of this kind was written in the
        account since its snapshot (another import that overlapped, say), so none can
        exist. That check is one range scan over recent writes (the (account_id,
        written_xid) index), so the common case, a new account or fresh records, keeps
        the plain INSERT and pays nothing per row; only when something was written since
        does every row take the conflict path.
        """
        if report.counts.get(kind, {}).get("existing", 0) > 0:
            return True
        snapshot = ctx.checkpoint.get("snapshot")
        if not snapshot:
            return True  # staged before change tracking: nothing to judge by
        return anything_written_after(
            conn, kind=kind, account_id=ctx.job.account_id, snapshot=snapshot
        )

    def _finalize(self, ctx: JobContext, staging: Staging) -> Succeeded:
        ctx.committed = True
        ctx.start_phase("finalize")
        with ctx.connect() as conn:
            staging.drop(conn)
            conn.commit()
        ctx.storage.remove_upload(ctx.job.id)
        ctx.storage.remove_work(ctx.job.id, attempt=ctx.attempt)
        ctx.storage.remove_work(ctx.job.id, older_than=ctx.attempt)
        ctx.finish_phase()
        return Succeeded(dict(ctx.checkpoint.get("result") or {}))
