"""The sweeper (SPEC 8): recovers interrupted attempts and lost messages, removes leftovers.

`ferry scheduler` runs it every FERRY_SWEEP_SECONDS. Every change it makes is a
conditional statement, so two sweepers (or a sweeper racing a worker) cannot both act
on one job; running it twice in a row does nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from shared.errors import Interrupted
from shared.jobs.live import LiveStore, announce_status
from shared.jobs.pipeline import Pipelines, discard_job
from shared.jobs.publisher import Publisher
from shared.jobs.states import Status
from shared.jobs.store import Job, JobStore
from shared.jobs.sweeps import LIVE
from shared.settings import Settings
from shared.store.changes import prune_deletions
from shared.store.db import SHORT, end_attempt_sessions, raw_connection
from shared.store.staging import drop_job_tables, leftover_job_ids
from shared.store.storage import LocalStorage
from shared.store.undo_log import purge_expired_undo
from shared.timefmt import format_iso, utcnow

log = logging.getLogger(__name__)

# While messages wait in the jobs queue (workers are busy), a queued job is re-published
# only after this many sweep intervals: its message is most likely waiting in line.
BUSY_FACTOR = 20
# A received upload no request adopted within this long is from a request that died.
INCOMING_MAX_AGE_SECONDS = 3600


@dataclass(slots=True)
class SweepReport:
    """What one sweep did (job ids per action)."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    removed_work: list[str] = field(default_factory=list)
    removed_outputs: list[str] = field(default_factory=list)
    removed_uploads: list[str] = field(default_factory=list)
    removed_staging: list[str] = field(default_factory=list)
    expired_downloads: list[str] = field(default_factory=list)
    expired_unconfirmed: list[str] = field(default_factory=list)
    pruned_deletions: int = 0
    expired_undo: list[str] = field(default_factory=list)

    def any(self) -> bool:
        """Whether the sweep changed anything."""
        return any(getattr(self, name) for name in self.__slots__)


class Sweeper:
    """One sweep over jobs and storage."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        live: LiveStore,
        storage: LocalStorage,
        publisher: Publisher,
        pipelines: Pipelines,
        backlog: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings
        self.store = JobStore(engine)
        self.live = live
        self.storage = storage
        self.publisher = publisher
        self.pipelines = pipelines
        self.backlog = backlog

    def sweep(self) -> SweepReport:
        """Run every duty once."""
        report = SweepReport()
        self._expired_leases(report)
        self._lost_messages(report)
        self._expired_downloads(report)
        self._unconfirmed_imports(report)
        self._leftovers(report)
        self._prune_deletions(report)
        self._expired_undo(report)
        if report.any():
            log.info("sweep: %s", report)
        return report

    def _expired_leases(self, report: SweepReport) -> None:
        """Running attempts that stopped heartbeating: queue again, or fail, or cancel."""
        for job in self.store.expired_leases(self.settings.lease_seconds):
            if job.status == Status.CANCELLING:
                if self.store.cancel_expired(job, cleanup=self._take_and_discard) is not None:
                    announce_status(self.live, job.id, Status.CANCELLED, job.attempt)
                    report.cancelled.append(job.id)
            elif job.attempts_used < self.settings.max_attempts:
                again = self.store.requeue_interrupted(job)
                if again is not None:
                    # End the lost attempt's sessions before the next one is published: a
                    # frozen worker's open transaction would hold its locks (an import's).
                    self._end_sessions(job)
                    self._publish(again.id)
                    announce_status(self.live, again.id, Status.QUEUED, again.attempt)
                    report.requeued.append(job.id)
            else:
                error = Interrupted(
                    f"attempt {job.attempt} stopped heartbeating (worker {job.worker or '?'}"
                    f" lost); {job.attempts_used} attempt(s) used"
                )
                closed = self.store.fail_interrupted(
                    job, error=error.as_dict(), cleanup=self._take_and_discard
                )
                if closed is not None:
                    announce_status(self.live, job.id, Status.FAILED, job.attempt)
                    report.failed.append(job.id)

    def _lost_messages(self, report: SweepReport) -> None:
        """Queued jobs nobody claimed for a sweep interval: their message may be gone.

        An empty jobs queue (Redis restarted empty) means the message is gone: re-publish
        after one interval. While messages wait in the queue, the job's is most likely
        among them: wait BUSY_FACTOR intervals, so busy workers do not pile up duplicates.
        """
        age = self.settings.sweep_seconds
        try:
            if self.backlog is not None and self.backlog() > 0:
                age *= BUSY_FACTOR
        except Exception:
            log.warning("sweep: could not read the queue length; re-publishing as if empty")
        for job_id in self.store.stale_queued(age):
            self._publish(job_id)
            report.republished.append(job_id)

    def _expired_downloads(self, report: SweepReport) -> None:
        """Downloads past FERRY_EXPORT_RETENTION_HOURS: remove the file, keep the record."""
        for job in self.store.expired_downloads():
            self.storage.remove_output(job.id)
            self.store.update_result(
                job.id, {**(job.result or {}), "expired_at": format_iso(utcnow())}
            )
            report.expired_downloads.append(job.id)

    def _unconfirmed_imports(self, report: SweepReport) -> None:
        """Imports never confirmed within the upload retention: cancelled, staging and work
        removed; the upload stays as long as any cancelled import's (SPEC 8)."""
        for job in self.store.cancel_unconfirmed(
            self.settings.upload_retention_hours, cleanup=self._discard
        ):
            announce_status(self.live, job.id, Status.CANCELLED, job.attempt)
            report.expired_unconfirmed.append(job.id)

    def _leftovers(self, report: SweepReport) -> None:
        """Work folders, outputs, uploads and staging tables that belong to no live job."""
        work, outputs, uploads = (
            self.storage.work_job_ids(),
            self.storage.output_job_ids(),
            self.storage.upload_job_ids(),
        )
        with raw_connection(self.settings.database_url, limits=SHORT) as conn:
            staged = leftover_job_ids(conn)
        known = self.store.statuses_of(set(work) | set(outputs) | set(uploads) | staged)
        for job_id in staged:
            if known.get(job_id, (None, 0))[0] not in LIVE:
                with raw_connection(self.settings.database_url, limits=SHORT) as conn:
                    drop_job_tables(conn, job_id)
                    conn.commit()
                report.removed_staging.append(job_id)
        for path in self.storage.stale_incoming(INCOMING_MAX_AGE_SECONDS):
            path.unlink(missing_ok=True)
        for job_id in work:
            status = known.get(job_id, (None, 0))[0]
            if status not in LIVE:
                self.storage.remove_work(job_id)
                report.removed_work.append(job_id)
        for job_id in outputs:
            status, attempt = known.get(job_id, (None, 0))
            if status in LIVE or status == Status.SUCCEEDED:
                # The current attempt's output is the download (or, while the job runs,
                # about to be); what other attempts published never will be.
                if self.storage.remove_output(job_id, except_attempt=attempt):
                    report.removed_outputs.append(job_id)
            else:
                self.storage.remove_output(job_id)
                report.removed_outputs.append(job_id)
        retention = self.settings.upload_retention_hours
        for job_id in sorted(self.store.unneeded_uploads(uploads, upload_hours=retention)):
            self.storage.remove_upload(job_id)
            report.removed_uploads.append(job_id)

    def _prune_deletions(self, report: SweepReport) -> None:
        """Deleted-record entries no incremental export can list any more."""
        with raw_connection(self.settings.database_url, limits=SHORT) as conn:
            report.pruned_deletions = prune_deletions(conn)
            conn.commit()

    def _expired_undo(self, report: SweepReport) -> None:
        """Import batches past rollback_until: their undo data goes (SPEC 13)."""
        with raw_connection(self.settings.database_url, limits=SHORT) as conn:
            report.expired_undo = purge_expired_undo(conn, hours=self.settings.rollback_hours)
            conn.commit()

    def _end_sessions(self, job: Job) -> None:
        """End the database sessions of the job's attempts up to `job.attempt`."""
        try:
            with raw_connection(self.settings.database_url, limits=SHORT, autocommit=True) as conn:
                ended = end_attempt_sessions(conn, job.id, up_to_attempt=job.attempt)
            if ended:
                log.warning(
                    "sweep: ended %s database session(s) of job %s attempt %s (lease expired)",
                    ended,
                    job.id,
                    job.attempt,
                )
        except Exception:
            log.exception("sweep: could not end the sessions of job %s", job.id)

    def _take_and_discard(self, job: Job) -> None:
        """Cleanup of a job taken from a lost attempt: end its sessions, then discard."""
        self._end_sessions(job)
        self._discard(job)

    def _discard(self, job: Job) -> None:
        try:
            discard_job(job, settings=self.settings, storage=self.storage, pipelines=self.pipelines)
        except Exception:
            # What is left is found again by `_leftovers` on a later sweep.
            log.exception("sweep: could not remove what job %s left", job.id)

    def _publish(self, job_id: str) -> None:
        try:
            self.publisher.publish(job_id)
        except Exception:
            log.warning("sweep: could not publish job %s; next sweep tries again", job_id)
