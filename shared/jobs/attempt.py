"""One attempt of a job, as a pipeline sees it: progress, checkpoints, cancel, lease.

A `Watcher` thread heartbeats the lease, reads the cancel flag from Redis (10 times a
second) and from the jobs row (at every heartbeat, so a lost Redis flag still cancels),
and interrupts blocking database calls when a cancel arrives. The pipeline's own thread
only reads two events and a clock at its batch boundaries, which costs nothing.

The lease is held only while heartbeats succeed: once the last one that reached
PostgreSQL is older than FERRY_LEASE_SECONDS (the database is unreachable, or the whole
process was frozen), the sweeper may have given the job to another attempt, so this one
stops at its next batch boundary and writes nothing more, not even live progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine

from shared.errors import JobCancelled, LeaseLost
from shared.jobs.live import LiveStore
from shared.jobs.progress import ProgressTracker
from shared.jobs.store import Job, JobStore
from shared.settings import Settings
from shared.store.db import attempt_session_name, raw_connection
from shared.store.storage import LocalStorage
from shared.timefmt import utcnow

log = logging.getLogger(__name__)

# Redis writes of live progress are at least this far apart (a few per second at most).
LIVE_INTERVAL = 0.25
# Postgres snapshots of progress are at least this far apart, besides phase boundaries.
SNAPSHOT_INTERVAL = 5.0
# The watcher reads the Redis cancel flag this often.
CANCEL_POLL = 0.1


class Watcher(threading.Thread):
    """Heartbeats the attempt's lease and watches for cancel requests."""

    def __init__(
        self,
        *,
        store: JobStore,
        live: LiveStore,
        job_id: str,
        attempt: int,
        heartbeat_seconds: float,
        lease_seconds: float,
        renewed_at: float | None = None,
    ) -> None:
        super().__init__(name=f"watcher-{job_id[:8]}", daemon=True)
        self.store = store
        self.live = live
        self.job_id = job_id
        self.attempt = attempt
        self.heartbeat_seconds = heartbeat_seconds
        self.lease_seconds = lease_seconds
        # Monotonic time at which the last successful heartbeat (or the claim) was sent:
        # the database's heartbeat_at is no earlier, so this side gives up no later than
        # the sweeper may take the job.
        self.renewed_at = time.monotonic() if renewed_at is None else renewed_at
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._halt = threading.Event()
        self._interrupts: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.redis_down_since: float | None = None

    def on_interrupt(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from this thread) when a cancel or lost lease arrives.

        Returns a function that unregisters it.
        """
        with self._lock:
            self._interrupts.append(callback)

        def unregister() -> None:
            with self._lock:
                if callback in self._interrupts:
                    self._interrupts.remove(callback)

        return unregister

    def _fire(self) -> None:
        with self._lock:
            callbacks = list(self._interrupts)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("interrupt callback failed for job %s", self.job_id)

    def run(self) -> None:
        """Loop until stopped: Redis flag every tick, heartbeat every heartbeat period."""
        next_beat = time.monotonic() + self.heartbeat_seconds
        while not self._halt.wait(CANCEL_POLL):
            if not self.cancelled.is_set() and self._redis_flag():
                self.cancelled.set()
                self._fire()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.heartbeat_seconds
                self._beat()

    def _redis_flag(self) -> bool:
        try:
            flag = self.live.cancel_requested(self.job_id)
        except Exception:
            # Redis may be down or empty; the jobs row is read at every heartbeat instead.
            if self.redis_down_since is None:
                self.redis_down_since = time.monotonic()
                log.warning("job %s: Redis unreachable, cancel falls back to Postgres", self.job_id)
            return False
        self.redis_down_since = None
        return flag

    def holds_lease(self) -> bool:
        """Whether this attempt may still act: not lost, and renewed within the lease."""
        return not self.lost.is_set() and time.monotonic() - self.renewed_at < self.lease_seconds

    def _beat(self) -> None:
        sent = time.monotonic()
        try:
            beat = self.store.heartbeat(self.job_id, self.attempt)
        except Exception:
            if self.holds_lease():
                log.warning("job %s: heartbeat failed; will try again", self.job_id, exc_info=True)
            elif not self.lost.is_set():
                log.error(
                    "job %s: no heartbeat reached PostgreSQL for %.1fs (the lease);"
                    " attempt %s treats its lease as lost and stops",
                    self.job_id,
                    time.monotonic() - self.renewed_at,
                    self.attempt,
                )
                self.lost.set()
                self._fire()
            return
        if not beat.owned:
            self.lost.set()
            self._fire()
            return
        self.renewed_at = sent
        if beat.cancel_requested and not self.cancelled.is_set():
            self.cancelled.set()
            self._fire()

    def stop(self) -> None:
        """Stop the loop and wait for it."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)


class JobContext:
    """What a pipeline gets: its job, work folder, progress, checkpoint and signals."""

    def __init__(
        self,
        *,
        job: Job,
        settings: Settings,
        engine: Engine,
        store: JobStore,
        live: LiveStore,
        storage: LocalStorage,
        tracker: ProgressTracker,
        watcher: Watcher,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.settings = settings
        self.engine = engine
        self.store = store
        self.live = live
        self.storage = storage
        self.tracker = tracker
        self.watcher = watcher
        self._clock = clock
        self._last_live = 0.0
        self._last_snapshot = clock()
        self._rows_started = clock()
        self._rows_counted = 0
        self.checkpoint: dict[str, Any] = dict(job.checkpoint or {})
        # Set once the job's effect is committed (an import's apply): from then on a cancel
        # cannot undo it, and the attempt finishes instead.
        self.committed = False

    @property
    def attempt(self) -> int:
        """This attempt's number."""
        return self.job.attempt

    @property
    def work_dir(self) -> Path:
        """This attempt's own work folder."""
        return self.storage.work_dir(self.job.id, self.attempt)

    @property
    def cancel_requested(self) -> bool:
        """Whether a cancel arrived (the pipeline should stop at its next boundary)."""
        return self.watcher.cancelled.is_set()

    def check(self) -> None:
        """Stop here if the job was cancelled or this attempt lost its lease."""
        if not self.watcher.holds_lease():
            raise LeaseLost(f"attempt {self.attempt} of job {self.job.id} lost its lease")
        if self.watcher.cancelled.is_set() and not self.committed:
            raise JobCancelled(self.job.id)

    # --- progress ---------------------------------------------------------------------

    def start_phase(self, name: str) -> None:
        """Enter a phase; the boundary is written to Redis and Postgres."""
        self.check()
        self.tracker.start(name)
        self.report(force=True)

    def finish_phase(self) -> None:
        """Mark the current phase complete."""
        self.tracker.complete_phase()
        self.report(force=True)

    def advance(self, rows: int, *, paced: bool = True) -> None:
        """Count rows done in the current phase; report (throttled) and check signals.

        `paced=False`: rows whose work was paced already (an import's samples written
        while they were validated) are counted without a pause under
        FERRY_MAX_ROWS_PER_SECOND.
        """
        self.tracker.advance(rows)
        self.check()
        limit = self.settings.max_rows_per_second
        if limit > 0 and paced:
            self._throttle(rows, limit)
        now = self._clock()
        if now - self._last_live >= LIVE_INTERVAL:
            self.report(now=now)

    def _throttle(self, rows: int, limit: float) -> None:
        """Hold the pace under FERRY_MAX_ROWS_PER_SECOND (database load control)."""
        self._rows_counted += rows
        ahead = self._rows_counted / limit - (self._clock() - self._rows_started)
        while ahead > 0:
            if self.watcher.cancelled.wait(min(ahead, CANCEL_POLL)):
                break
            ahead = self._rows_counted / limit - (self._clock() - self._rows_started)
        self.check()

    def snapshot(self) -> dict[str, Any]:
        """The current progress object."""
        return self.tracker.snapshot(now=self._clock(), wall=utcnow())

    def report(self, *, force: bool = False, now: float | None = None) -> None:
        """Publish progress to Redis; snapshot it to Postgres at boundaries and every 5 s.

        An attempt without its lease publishes nothing: the job may be another's now.
        """
        if not self.watcher.holds_lease():
            return
        now = self._clock() if now is None else now
        progress = self.snapshot()
        self._last_live = now
        try:
            self.live.put_progress(self.job.id, progress)
        except Exception:
            log.debug("job %s: live progress not written (Redis unreachable)", self.job.id)
        if force or now - self._last_snapshot >= SNAPSHOT_INTERVAL:
            self._last_snapshot = now
            self.store.save_progress(self.job.id, self.attempt, progress)

    # --- database and lease ---------------------------------------------------------------

    def connect(self) -> AbstractContextManager[psycopg.Connection]:
        """A data connection of this attempt, named after it in pg_stat_activity (so the
        sweeper can end it if the lease expires), with the limits for long work."""
        return raw_connection(
            self.settings.database_url, name=attempt_session_name(self.job.id, self.attempt)
        )

    def confirm_lease(self) -> None:
        """Renew the lease now and make sure this attempt still owns the job (LeaseLost
        otherwise): done right before something only the owner may do, e.g. publish."""
        self.check()
        sent = time.monotonic()
        if not self.store.heartbeat(self.job.id, self.attempt).owned:
            self.watcher.lost.set()
            raise LeaseLost(f"attempt {self.attempt} of job {self.job.id} lost its lease")
        self.watcher.renewed_at = max(self.watcher.renewed_at, sent)

    # --- checkpoint -------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Persist `self.checkpoint` (fenced by attempt) so a later attempt can resume."""
        self.store.save_checkpoint(self.job.id, self.attempt, self.checkpoint)

    def commit_applied(self, conn: psycopg.Connection, checkpoint: dict[str, Any]) -> None:
        """Commit an import's apply together with its `applied` checkpoint, or roll both
        back when this attempt no longer runs the job (JobCancelled when a cancel took it,
        LeaseLost otherwise). From the commit on, a late cancel cannot undo the import."""
        if not self.store.checkpoint_within(conn, self.job.id, self.attempt, checkpoint):
            conn.rollback()
            if self.cancel_requested or self.store.get(self.job.id).status == "cancelling":
                raise JobCancelled(self.job.id)
            raise LeaseLost(f"attempt {self.attempt} of job {self.job.id} lost its lease")
        conn.commit()
        self.committed = True
        self.checkpoint = checkpoint
