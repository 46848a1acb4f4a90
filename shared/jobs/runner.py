"""Running one delivery of a job: claim, watch, run the pipeline, and end it properly.

This is the lifecycle every job type shares, written once: the Celery task only calls
`JobRunner.run(job_id)`. Errors are translated here, in one place: retryable ones go
back to the queue with backoff until FERRY_MAX_ATTEMPTS, others fail at once; a failed
or cancelled job's partial output is removed before its status says so, inside the
fenced state change (so an attempt that lost the job removes nothing).

Nothing escapes `run`: an attempt that lost its lease, or cannot reach PostgreSQL to say
how it ended, logs it and returns. Its lease then runs out and the sweeper decides, from
the row, what happens next; the Celery task never fails with the job's state unknown.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import psycopg
import redis
import sqlalchemy.exc
from sqlalchemy import Engine

from shared.errors import (
    DatabaseError,
    FerryError,
    JobCancelled,
    LeaseLost,
    StorageError,
)
from shared.jobs.attempt import JobContext, Watcher
from shared.jobs.live import LiveStore, announce_status
from shared.jobs.pipeline import AwaitConfirmation, Pipeline, Pipelines, Succeeded, discard_job
from shared.jobs.progress import ProgressTracker
from shared.jobs.publisher import Publisher
from shared.jobs.states import Status, backoff_seconds
from shared.jobs.store import Job, JobStore
from shared.settings import Settings
from shared.store.storage import LocalStorage

log = logging.getLogger(__name__)

# A retry message is published this much after the job's not_before, so the claim never
# finds it early because of clock skew between the worker and the database.
RETRY_SLACK_SECONDS = 0.5


def worker_name() -> str:
    """host:pid of this process, recorded on the jobs it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def classify(exc: BaseException) -> FerryError:
    """The Ferry error an exception stands for (retryable or not)."""
    if isinstance(exc, FerryError):
        return exc
    if isinstance(
        exc,
        psycopg.OperationalError
        # The server ended a transaction left idle too long (the job's worker was frozen).
        | psycopg.errors.IdleInTransactionSessionTimeout
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | redis.ConnectionError
        | redis.TimeoutError,
    ):
        return DatabaseError(f"a service could not be reached: {exc}".strip())
    if isinstance(exc, OSError):
        return StorageError(f"storage failed: {exc}")
    return FerryError(f"unexpected {type(exc).__name__}: {exc}")


def _shown_overall(job: Job) -> float:
    """What this attempt already showed, when an earlier delivery of it reported (an
    import going on after its confirmation). A new attempt starts with no snapshot: the
    job store clears it whenever the attempt changes."""
    return float((job.progress or {}).get("overall") or 0.0)


class JobRunner:
    """Runs job deliveries in a worker process."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        live: LiveStore,
        storage: LocalStorage,
        publisher: Publisher,
        pipelines: Pipelines,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = JobStore(engine)
        self.live = live
        self.storage = storage
        self.publisher = publisher
        self.pipelines = pipelines
        self.name = name or worker_name()
        self.clock = clock

    def run(self, job_id: str) -> str | None:
        """Run one delivery of `job_id`; returns the status it left, None if not claimed
        (or if how it ended could not be recorded)."""
        claimed_at = time.monotonic()
        try:
            job = self.store.claim(job_id, worker=self.name)
        except Exception:
            # The row stays queued; the sweeper re-publishes it once the database is back.
            log.exception("job %s: could not be claimed", job_id)
            return None
        if job is None:
            log.info("job %s: not claimable (held, waiting, or finished); delivery ignored", job_id)
            return None
        log.info("job %s: attempt %s of %s started", job.id, job.attempt, job.type)
        announce_status(self.live, job.id, Status.RUNNING, job.attempt)
        pipeline = self.pipelines.get(job.type)
        if pipeline is None:
            return self._fail(job, FerryError(f"no pipeline for job type {job.type!r}"))
        watcher = Watcher(
            store=self.store,
            live=self.live,
            job_id=job.id,
            attempt=job.attempt,
            heartbeat_seconds=self.settings.heartbeat_seconds,
            lease_seconds=self.settings.lease_seconds,
            renewed_at=claimed_at,
        )
        ctx = JobContext(
            job=job,
            settings=self.settings,
            engine=self.engine,
            store=self.store,
            live=self.live,
            storage=self.storage,
            tracker=ProgressTracker(
                pipeline.phases, started=self.clock(), floor=_shown_overall(job)
            ),
            watcher=watcher,
            clock=self.clock,
        )
        watcher.start()
        try:
            return self._run(ctx, pipeline)
        except Exception:
            # Whatever happened, the row still says what the job is; the lease runs out
            # and the sweeper takes it from there.
            log.exception("job %s: attempt %s ended without recording how", job.id, job.attempt)
            return None
        finally:
            watcher.stop()

    def _run(self, ctx: JobContext, pipeline: Pipeline) -> str | None:
        job = ctx.job
        try:
            outcome = pipeline.run(ctx)
            ctx.check()
        except JobCancelled:
            return self._cancel(job)
        except LeaseLost:
            log.warning(
                "job %s: attempt %s lost its lease; stopping without writing", job.id, job.attempt
            )
            return None
        except Exception as exc:
            if not ctx.watcher.holds_lease():
                log.warning("job %s: attempt %s lost its lease (%s)", job.id, job.attempt, exc)
                return None
            if ctx.cancel_requested and not ctx.committed:
                return self._cancel(job)
            error = classify(exc)
            if error.code == "internal":
                log.exception("job %s: attempt %s failed", job.id, job.attempt)
            else:
                log.warning("job %s: attempt %s failed: %s", job.id, job.attempt, error.message)
            self._save_progress(ctx)
            return self._fail(job, error)
        if isinstance(outcome, AwaitConfirmation):
            return self._await(ctx, outcome)
        return self._succeed(ctx, outcome)

    def _await(self, ctx: JobContext, outcome: AwaitConfirmation) -> str | None:
        job = ctx.job
        self._save_progress(ctx)
        try:
            done = self.store.await_confirmation(job.id, job.attempt, preview=outcome.preview)
        except LeaseLost:
            return self._after_lost_end(job, "stopped for confirmation")
        except Exception:
            log.exception("job %s: could not record that it awaits confirmation", job.id)
            return None
        announce_status(self.live, done.id, Status.AWAITING_CONFIRMATION, done.attempt)
        return done.status

    def _after_lost_end(self, job: Job, what: str) -> str | None:
        """A fenced end found the job changed: a cancel that came after the last check
        wins (this attempt still owns the job and cleans up); otherwise it lost the job."""
        try:
            current = self.store.get(job.id)
        except Exception:
            log.exception("job %s: %s, but could not re-read the job", job.id, what)
            return None
        if current.status == Status.CANCELLING and current.attempt == job.attempt:
            return self._cancel(job)
        log.warning(
            "job %s: attempt %s %s but no longer owns the job (%s, attempt %s)",
            job.id,
            job.attempt,
            what,
            current.status,
            current.attempt,
        )
        return None

    def _succeed(self, ctx: JobContext, outcome: Succeeded) -> str | None:
        job = ctx.job
        ctx.tracker.succeed()
        final = ctx.snapshot()
        try:
            done = self.store.succeed(
                job.id,
                job.attempt,
                result=outcome.result,
                progress=final,
                despite_cancel=ctx.committed,
            )
        except LeaseLost:
            status = self._after_lost_end(job, "finished its work")
            if status is None:
                # What this attempt published is its own, and will never be the download.
                self._remove_own_output(job)
            return status
        except Exception:
            # Unknown whether the success committed: leave everything as it is. The
            # sweeper requeues the job if it is still running once the lease runs out.
            log.exception("job %s: could not record that it succeeded", job.id)
            return None
        self._put_progress(job.id, final)
        announce_status(self.live, done.id, Status.SUCCEEDED, done.attempt)
        log.info("job %s: succeeded on attempt %s", job.id, job.attempt)
        return done.status

    def _cancel(self, job: Job) -> str | None:
        """Remove what this attempt wrote, then say `cancelled` (one fenced transaction)."""
        try:
            done = self.store.mark_cancelled(job.id, job.attempt, cleanup=self._discard_own)
        except LeaseLost:
            log.warning("job %s: cancelled, but the attempt no longer owns the job", job.id)
            return None
        except Exception:
            log.exception("job %s: could not record the cancel", job.id)
            return None
        self._clear_flag(job.id)
        announce_status(self.live, done.id, Status.CANCELLED, done.attempt)
        log.info("job %s: cancelled on attempt %s, output removed", job.id, job.attempt)
        return done.status

    def _fail(self, job: Job, error: FerryError) -> str | None:
        """Retry a retryable error with backoff, or fail for good and clean up."""
        try:
            if error.retryable and job.attempts_used < self.settings.max_attempts:
                delay = backoff_seconds(job.attempts_used, base=self.settings.retry_base_seconds)
                done = self.store.retry_later(
                    job.id, job.attempt, error=error.as_dict(), delay_seconds=delay
                )
                self._publish(job.id, countdown=delay + RETRY_SLACK_SECONDS)
                announce_status(self.live, done.id, Status.QUEUED, done.attempt)
                log.info("job %s: retrying as attempt %s in %.1fs", job.id, done.attempt, delay)
                return done.status
            done = self.store.fail(
                job.id, job.attempt, error=error.as_dict(), cleanup=self._discard_own
            )
        except LeaseLost:
            log.warning("job %s: failure not recorded, the attempt no longer owns the job", job.id)
            return None
        except Exception:
            # Recording failed (database down): the lease runs out and the sweeper decides.
            log.exception("job %s: could not record the failure", job.id)
            return None
        announce_status(self.live, done.id, Status.FAILED, done.attempt)
        return done.status

    # --- cleanup ----------------------------------------------------------------------------

    def _discard_own(self, job: Job) -> None:
        """What the job left goes: this attempt's work folder and output, what earlier
        attempts left there, the job's staging tables.

        Runs inside the fenced state change that ends the job, so only while this attempt
        owns it (no later attempt can exist then, and a later attempt's folder is never
        touched anyway). A failure here is left to the sweeper.
        """
        try:
            discard_job(
                job,
                settings=self.settings,
                storage=self.storage,
                pipelines=self.pipelines,
                up_to_attempt=job.attempt,
            )
        except Exception:
            log.exception("job %s: cleanup failed; the sweeper will remove what is left", job.id)

    def _remove_own_output(self, job: Job) -> None:
        try:
            self.storage.remove_output(job.id, attempt=job.attempt)
        except Exception:
            log.warning("job %s: attempt %s's output stays for the sweeper", job.id, job.attempt)

    # --- best-effort side channels ----------------------------------------------------------

    def _save_progress(self, ctx: JobContext) -> None:
        try:
            ctx.report(force=True)
        except Exception:
            log.debug("job %s: last progress not saved", ctx.job.id)

    def _put_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        try:
            self.live.put_progress(job_id, progress)
        except Exception:
            log.debug("job %s: final progress not sent to Redis", job_id)

    def _clear_flag(self, job_id: str) -> None:
        try:
            self.live.clear_cancel(job_id)
        except Exception:
            log.debug("job %s: cancel flag not cleared", job_id)

    def _publish(self, job_id: str, *, countdown: float | None = None) -> None:
        try:
            self.publisher.publish(job_id, countdown=countdown)
        except Exception:
            # The row is queued; the sweeper re-publishes it.
            log.warning("job %s: publish failed; the sweeper will re-publish it", job_id)
