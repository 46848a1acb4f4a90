"""What users and operators can ask of Ferry, whichever door they come through.

The web API and the CLI parse input, call these, and turn the answers (or the
FerryErrors raised here) into responses. Each call writes the job row first, then
touches Redis and the queue, so a job never exists only in Redis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from shared.errors import Conflict, Gone, NotFound, ValidationFailed
from shared.jobs.live import LiveStore, announce_status
from shared.jobs.pipeline import Pipelines, discard_job
from shared.jobs.publisher import Publisher
from shared.jobs.requests import UPLOAD_EXPIRED
from shared.jobs.states import OWNED, RESTARTABLE, UPLOAD_TYPES, JobType, Status
from shared.jobs.store import Job, JobEvent, JobFilter, JobStore, Overview
from shared.params import ImportArchiveParams, parse_export_request
from shared.settings import Settings
from shared.store.storage import LocalStorage, UploadTooLarge
from shared.tables.columns import TABLES
from shared.tables.inline import InlineExport, delivery_inline, inline_export
from shared.tables.mapping import parse_mapping
from shared.tables.params import TableImportParams, parse_table_export
from shared.timefmt import format_iso, parse_iso, utcnow
from shared.undo.batches import Batches
from shared.undo.rollback import MODIFIED_CHOICES

log = logging.getLogger(__name__)

# Fields of `result` that are Ferry's own bookkeeping, not part of the API.
_PRIVATE_RESULT = frozenset({"key", "session_start", "snapshot", "base", "apply_xid", "apply_xmin"})


# Content types of downloads, by the file name's extension (older results name none).
_CONTENT_TYPES = {
    ".zip": "application/zip",
    ".csv": "text/csv; charset=utf-8",
    ".tsv": "text/tab-separated-values; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True, slots=True)
class Download:
    """A finished export's file."""

    path: Path
    name: str
    size: int
    content_type: str = "application/zip"


@dataclass(frozen=True, slots=True)
class QueuedExport:
    """An export request answered with a job (202)."""

    job: Job
    created: bool


ExportAnswer = QueuedExport | InlineExport


def parse_export(body: Any) -> tuple[str, dict[str, Any]]:
    """Validate any `POST /exports` body; returns the job type and its stored params."""
    if isinstance(body, dict) and body.get("type") == "table":
        return JobType.EXPORT_TABLE, parse_table_export(body).to_json()
    return parse_export_request(body)


class JobService:
    """Submitting, watching, cancelling and restarting jobs."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        live: LiveStore,
        storage: LocalStorage,
        publisher: Publisher,
        pipelines: Pipelines,
    ) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.store = JobStore(engine)
        self.batches = Batches(engine)
        self.live = live
        self.storage = storage
        self.publisher = publisher

    # --- submitting -------------------------------------------------------------------

    def request_export(
        self, account_id: str, body: Any, *, idempotency_key: str | None = None
    ) -> ExportAnswer:
        """`POST /exports`: a small table export answered inline, anything else queued.

        The inline answer's chunks are the response body; they read the database only
        while they are iterated. An inline answer creates no job, so an Idempotency-Key
        has nothing to return again and is not kept.
        """
        if isinstance(body, dict) and body.get("type") == "table":
            params = parse_table_export(body)
            rows = delivery_inline(
                self.settings.database_url,
                account_id,
                params,
                max_rows=self.settings.sync_export_max_rows,
            )
            if rows is not None:
                return inline_export(self.settings.database_url, account_id, params, rows=rows)
        job, created = self.submit_export(account_id, body, idempotency_key=idempotency_key)
        return QueuedExport(job=job, created=created)

    def submit_export(
        self, account_id: str, body: Any, *, idempotency_key: str | None = None
    ) -> tuple[Job, bool]:
        """Validate an export request (archive or table), record the job, then publish it.

        A table export is queued whatever its `delivery` says: deciding to answer inline
        is `request_export`'s.
        """
        job_type, params = parse_export(body)
        job, created = self.store.create(
            account_id=account_id, type=job_type, params=params, idempotency_key=idempotency_key
        )
        if not created and job.params != params:
            raise Conflict(
                "this Idempotency-Key was used for a different request",
                details={"field": "Idempotency-Key", "job_id": job.id},
            )
        if created:
            self._publish(job.id)
        return job, created

    def submit_import(
        self,
        account_id: str,
        *,
        received: Path,
        filename: str,
        params: ImportArchiveParams | TableImportParams,
    ) -> Job:
        """Record a new import job, keep the received upload under its id, then publish it.

        The row is committed before the upload is moved under its id, so the sweeper,
        which removes uploads that belong to no job, never sees this one without its job.
        """
        size = received.stat().st_size
        if size > self.settings.max_upload_bytes:
            raise UploadTooLarge(
                f"the upload is larger than {self.settings.max_upload_bytes} bytes"
            )
        stored = replace(params, filename=filename[:255], bytes=size)
        job, _ = self.store.create(
            account_id=account_id, type=params.job_type, params=stored.to_json()
        )
        try:
            self.storage.adopt_upload(job.id, received)
        except BaseException:
            # Nobody has seen the job (it was never published): it goes with its upload.
            self.store.remove_unpublished(job.id)
            self.storage.remove_upload(job.id)
            raise
        self._publish(job.id)
        return job

    def confirm(
        self,
        job_id: str,
        *,
        account_id: str | None = None,
        skip_invalid: bool = False,
        modified: str | None = None,
    ) -> Job:
        """Let an awaiting import go on to apply (Conflict while its report has errors),
        or an awaiting rollback go on with what to do with the rows changed since the
        import (`modified`: keep or revert; required for a rollback, refused otherwise)."""
        job = self.store.get(job_id, account_id=account_id)
        choices = {}
        if job.type == JobType.IMPORT_ROLLBACK:
            if job.status == Status.AWAITING_CONFIRMATION and modified not in MODIFIED_CHOICES:
                raise ValidationFailed(
                    "modified: say what to do with the rows changed since the import:"
                    " keep or revert",
                    details={"field": "modified"},
                )
            choices = {"modified": modified}
        elif modified is not None:
            raise ValidationFailed(
                "modified: only a rollback takes it", details={"field": "modified"}
            )
        job = self.store.confirm(
            job_id, account_id=account_id, skip_invalid=skip_invalid, choices=choices
        )
        self._publish(job.id)
        announce_status(self.live, job.id, job.status, job.attempt)
        return job

    # --- import history and undo (SPEC 13) ----------------------------------------------

    def imports_page(
        self, account_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the account's import history, newest first, as the API shows it."""
        batches, next_cursor = self.batches.page(account_id, limit=limit, cursor=cursor)
        return [b.view(self.settings.rollback_hours) for b in batches], next_cursor

    def import_record(self, import_id: str, *, account_id: str | None = None) -> dict[str, Any]:
        """One import of the history (NotFound for any other job)."""
        batch = self.batches.get(import_id, account_id=account_id)
        return batch.view(self.settings.rollback_hours)

    def request_rollback(self, import_id: str, *, account_id: str) -> Job:
        """Queue the rollback of a succeeded import (Conflict when it was rolled back or
        one is under way, RollbackExpired past its rollback_until)."""
        job = self.batches.request_rollback(
            import_id, account_id=account_id, hours=self.settings.rollback_hours
        )
        self._publish(job.id)
        announce_status(self.live, job.id, job.status, job.attempt)
        return job

    def remap(self, job_id: str, *, account_id: str | None = None, mapping: Any) -> Job:
        """Read an awaiting table import's stored file again with another mapping
        (422 for an unknown column or two file columns mapped to one)."""
        job = self.store.get(job_id, account_id=account_id)
        if job.type != JobType.IMPORT_TABLE:
            raise Conflict("only a table import can be remapped")
        checked = parse_mapping(mapping, TABLES[job.params["table"]])
        job = self.store.remap(job_id, account_id=account_id, mapping=checked)
        self._publish(job.id)
        announce_status(self.live, job.id, job.status, job.attempt)
        return job

    # --- reading ----------------------------------------------------------------------

    def get(self, job_id: str, *, account_id: str | None = None) -> Job:
        """One job (of `account_id` when given)."""
        return self.store.get(job_id, account_id=account_id)

    def page(
        self, where: JobFilter, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """A page of jobs, newest first."""
        return self.store.page(where, limit=limit, cursor=cursor)

    def overview(self, *, running_limit: int = 20) -> Overview:
        """The operators' overview: counts, running jobs, queue age, recent failures."""
        return self.store.overview(running_limit=running_limit)

    def count_restartable(self, where: JobFilter) -> int:
        """How many jobs `retry_matching(where)` would restart now."""
        return self.store.count_restartable(
            where, upload_hours=self.settings.upload_retention_hours
        )

    def history(self, job_id: str) -> list[JobEvent]:
        """The job's history, oldest first."""
        return self.store.history(job_id)

    def progress(self, job: Job) -> dict[str, Any] | None:
        """The freshest progress: live from Redis while running, else the stored snapshot."""
        stored = job.progress
        if job.status not in OWNED:
            # Only a running attempt writes live progress; what Redis holds for a queued,
            # waiting or finished job belongs to an earlier attempt.
            return stored
        try:
            live = self.live.get_progress(job.id)
        except Exception:
            return stored
        if live is None:
            return stored
        if stored is None or parse_iso(live["updated_at"]) >= parse_iso(stored["updated_at"]):
            return live
        return stored

    def view(self, job: Job) -> dict[str, Any]:
        """The API's Job object (SPEC 9)."""
        result = None
        if job.result is not None:
            result = {k: v for k, v in job.result.items() if k not in _PRIVATE_RESULT}
        return {
            "id": job.id,
            "type": job.type,
            "status": job.status,
            "params": job.params,
            "attempt": job.attempt,
            "created_at": format_iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "progress": self.progress(job),
            "error": job.error,
            "result": result,
            "preview": job.preview,
        }

    def download(self, job_id: str, *, account_id: str | None = None) -> Download:
        """The file of a succeeded export: Conflict while not ready, Gone after retention."""
        job = self.store.get(job_id, account_id=account_id)
        if not job.type.startswith("export."):
            raise NotFound("this job has nothing to download")
        if job.status != Status.SUCCEEDED or not job.result:
            raise Conflict(f"job is {job.status}; the download is ready when it succeeds")
        if job.result.get("expired_at") or parse_iso(job.result["expires_at"]) <= utcnow():
            raise Gone("the download has expired; run the export again")
        path = self.storage.path(job.result["key"])
        if not path.is_file():
            raise Gone("the download is no longer stored; run the export again")
        name = job.result["name"]
        content_type = job.result.get("content_type") or _CONTENT_TYPES.get(
            Path(name).suffix, "application/octet-stream"
        )
        return Download(path=path, name=name, size=path.stat().st_size, content_type=content_type)

    # --- changing -----------------------------------------------------------------------

    def cancel(self, job_id: str, *, account_id: str | None = None) -> Job:
        """Cancel a job (SPEC 7); Conflict when it already ended."""
        # Nothing was running if it is cancelled at once: what it left (staging data, a
        # work folder) goes in the same transaction; a running job's worker cleans up.
        job = self.store.request_cancel(job_id, account_id=account_id, cleanup=self._discard)
        if job.status != Status.CANCELLED:
            try:
                self.live.request_cancel(job.id)
            except Exception:
                # The worker reads the jobs row at every heartbeat, so the cancel still lands.
                log.warning("job %s: cancel flag not set in Redis; the row carries it", job.id)
        announce_status(self.live, job.id, job.status, job.attempt)
        return job

    def retry(self, job_id: str, *, account_id: str | None = None, by: str = "user") -> Job:
        """Restart a failed or cancelled job: same id, attempt + 1, queued.

        An import needs its upload: Conflict ("upload expired") once the sweeper removed
        it, FERRY_UPLOAD_RETENTION_HOURS after the import ended (SPEC 8).
        """
        job = self.store.get(job_id, account_id=account_id)
        stored = self.storage.upload_path(job.id).is_file()
        if job.type in UPLOAD_TYPES and job.status in RESTARTABLE and not stored:
            raise Conflict(UPLOAD_EXPIRED)
        job = self.store.restart(
            job_id,
            account_id=account_id,
            upload_hours=self.settings.upload_retention_hours,
            by=by,
        )
        self._after_restart(job)
        return job

    def retry_matching(self, where: JobFilter, *, by: str = "ops") -> list[Job]:
        """Restart every failed or cancelled job matching `where` (imports whose upload
        has expired are left as they are)."""
        jobs = self.store.restart_matching(
            where, upload_hours=self.settings.upload_retention_hours, by=by
        )
        for job in jobs:
            self._after_restart(job)
        return jobs

    def _discard(self, job: Job) -> None:
        try:
            discard_job(job, settings=self.settings, storage=self.storage, pipelines=self.pipelines)
        except Exception:
            # What is left is found by the sweeper (`_leftovers`) on its next pass.
            log.exception("job %s: could not remove what it left", job.id)

    def _after_restart(self, job: Job) -> None:
        # A restarted job starts clean: no flag from its cancel, no files from before.
        try:
            self.live.clear_cancel(job.id)
        except Exception:
            log.warning("job %s: old cancel flag not cleared in Redis", job.id)
        self._publish(job.id)
        announce_status(self.live, job.id, job.status, job.attempt)

    def _publish(self, job_id: str) -> None:
        try:
            self.publisher.publish(job_id)
        except Exception:
            # The job is committed as queued; the sweeper re-publishes it.
            log.warning("job %s: not published now; the sweeper will publish it", job_id)


def _iso(value: Any) -> str | None:
    return None if value is None else format_iso(value)
