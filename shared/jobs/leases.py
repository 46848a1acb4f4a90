"""A worker's attempt: claiming a job, heartbeating its lease, and every write fenced
by `(id, attempt)` and an owned status, so a stale attempt changes nothing and learns
that it lost the job (`LeaseLost`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import Connection, text

from shared.errors import LeaseLost
from shared.jobs.job import (
    COLUMNS,
    OWNED_SQL,
    RUNNING_SQL,
    Cleanup,
    Heartbeat,
    Job,
    StoreBase,
    is_uuid,
    row_job,
    to_json,
    write_event,
)
from shared.jobs.states import Status


class AttemptWrites(StoreBase):
    """The writes of a running attempt."""

    def claim(self, job_id: str, *, worker: str) -> Job | None:
        """Move a queued job to running in one statement; None when it cannot be claimed.

        A job that another attempt holds, that is waiting out a retry delay, or that is
        terminal or cancelled is left alone, so duplicate deliveries do nothing.
        """
        if not is_uuid(job_id):
            return None
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = 'running', heartbeat_at = now(),"
                    " started_at = coalesce(started_at, now()), updated_at = now(),"
                    " worker = :worker, not_before = NULL"
                    " WHERE id = :id AND status = 'queued'"
                    " AND (not_before IS NULL OR not_before <= now())"
                    f" RETURNING {COLUMNS}"
                ),
                {"id": job_id, "worker": worker},
            ).first()
            if row is None:
                return None
            job = row_job(row)
            write_event(conn, job.id, job.attempt, "claimed", {"worker": worker})
        return job

    def heartbeat(self, job_id: str, attempt: int) -> Heartbeat:
        """Renew the attempt's lease; report whether it still owns the job and cancel asked."""
        with self.engine.begin() as conn:
            _without_flush_wait(conn)
            row = conn.execute(
                text(
                    "UPDATE jobs SET heartbeat_at = now()"
                    f" WHERE id = :id AND attempt = :attempt AND status IN {OWNED_SQL}"
                    " RETURNING status, cancel_requested_at"
                ),
                {"id": job_id, "attempt": attempt},
            ).first()
        if row is None:
            return Heartbeat(owned=False, cancel_requested=False)
        return Heartbeat(
            owned=True,
            cancel_requested=row.status == Status.CANCELLING or row.cancel_requested_at is not None,
        )

    @staticmethod
    def _fenced_update(
        conn: Connection,
        job_id: str,
        attempt: int,
        assignments: str,
        params: Mapping[str, Any],
        *,
        statuses: str,
        returning: str,
    ) -> Any:
        """UPDATE the job only while `attempt` owns it; LeaseLost when it does not."""
        row = conn.execute(
            text(
                f"UPDATE jobs SET {assignments}, updated_at = now()"
                f" WHERE id = :id AND attempt = :attempt AND status IN {statuses}"
                f" RETURNING {returning}"
            ),
            {"id": job_id, "attempt": attempt, **params},
        ).first()
        if row is None:
            raise LeaseLost(f"attempt {attempt} of job {job_id} no longer owns it")
        return row

    def _fenced(
        self,
        conn: Connection,
        job_id: str,
        attempt: int,
        assignments: str,
        params: Mapping[str, Any],
        *,
        statuses: str = OWNED_SQL,
    ) -> Job:
        """A fenced write that answers the job as it now is (state changes)."""
        row = self._fenced_update(
            conn, job_id, attempt, assignments, params, statuses=statuses, returning=COLUMNS
        )
        return row_job(row)

    def _fenced_write(
        self,
        conn: Connection,
        job_id: str,
        attempt: int,
        assignments: str,
        params: Mapping[str, Any],
    ) -> None:
        """A fenced write whose caller needs no row back (progress, checkpoint, preview):
        nothing is returned and parsed on the hot path."""
        self._fenced_update(
            conn, job_id, attempt, assignments, params, statuses=OWNED_SQL, returning="id"
        )

    def save_progress(self, job_id: str, attempt: int, progress: Mapping[str, Any]) -> None:
        """Write the progress snapshot (fenced)."""
        with self.engine.begin() as conn:
            _without_flush_wait(conn)
            self._fenced_write(
                conn, job_id, attempt, "progress = CAST(:p AS jsonb)", {"p": to_json(progress)}
            )

    def save_checkpoint(self, job_id: str, attempt: int, checkpoint: Mapping[str, Any]) -> None:
        """Write the attempt's checkpoint (fenced), so a later attempt can resume from it."""
        with self.engine.begin() as conn:
            self._fenced_write(
                conn, job_id, attempt, "checkpoint = CAST(:c AS jsonb)", {"c": to_json(checkpoint)}
            )

    @staticmethod
    def checkpoint_within(
        conn: psycopg.Connection, job_id: str, attempt: int, checkpoint: Mapping[str, Any]
    ) -> bool:
        """Write the checkpoint inside the caller's own transaction (fenced, running only).

        The import writes its `applied` checkpoint in the same transaction as the data,
        so the two commit together or not at all. False: the attempt no longer runs the
        job (lost, or a cancel arrived), and the caller must roll back.
        """
        cursor = conn.execute(
            "UPDATE jobs SET checkpoint = %s::jsonb, updated_at = now()"
            " WHERE id = %s AND attempt = %s AND status = 'running'",
            (to_json(checkpoint), job_id, attempt),
        )
        return cursor.rowcount == 1

    def save_preview(self, job_id: str, attempt: int, preview: Mapping[str, Any]) -> None:
        """Write an import's report (fenced)."""
        with self.engine.begin() as conn:
            self._fenced(
                conn, job_id, attempt, "preview = CAST(:v AS jsonb)", {"v": to_json(preview)}
            )

    def succeed(
        self,
        job_id: str,
        attempt: int,
        *,
        result: Mapping[str, Any],
        progress: Mapping[str, Any],
        despite_cancel: bool = False,
    ) -> Job:
        """The attempt finished its work: `succeeded` (fenced).

        A cancel that arrived meanwhile wins (LeaseLost), unless the work is committed and
        cannot be undone (`despite_cancel`, an import past its commit).
        """
        with self.engine.begin() as conn:
            job = self._fenced(
                conn,
                job_id,
                attempt,
                "status = 'succeeded', finished_at = now(), result = CAST(:r AS jsonb),"
                " progress = CAST(:p AS jsonb), error = NULL, checkpoint = NULL",
                {"r": to_json(result), "p": to_json(progress)},
                statuses=OWNED_SQL if despite_cancel else RUNNING_SQL,
            )
            write_event(conn, job_id, attempt, "succeeded", None)
        return job

    def fail(
        self,
        job_id: str,
        attempt: int,
        *,
        error: Mapping[str, Any],
        cleanup: Cleanup | None = None,
    ) -> Job:
        """The attempt failed for good: `failed` with its error (fenced). `cleanup` runs in
        the same transaction, only if the attempt still owns the job (see `Cleanup`)."""
        with self.engine.begin() as conn:
            job = self._fenced(
                conn,
                job_id,
                attempt,
                "status = 'failed', finished_at = now(), error = CAST(:e AS jsonb)",
                {"e": to_json(error)},
            )
            write_event(conn, job_id, attempt, "failed", dict(error))
            if cleanup is not None:
                cleanup(job)
        return job

    def retry_later(
        self, job_id: str, attempt: int, *, error: Mapping[str, Any], delay_seconds: float
    ) -> Job:
        """A retryable failure: back to `queued` as attempt + 1, not before the delay."""
        with self.engine.begin() as conn:
            job = self._fenced(
                conn,
                job_id,
                attempt,
                "status = 'queued', attempt = attempt + 1, queued_at = now(),"
                " not_before = now() + make_interval(secs => :delay), heartbeat_at = NULL,"
                " progress = NULL",
                {"delay": delay_seconds},
                statuses=RUNNING_SQL,
            )
            write_event(
                conn, job_id, attempt, "retry_scheduled", {**error, "delay_seconds": delay_seconds}
            )
        return job

    def await_confirmation(self, job_id: str, attempt: int, *, preview: Mapping[str, Any]) -> Job:
        """An import stops with its report, waiting for the user (fenced)."""
        with self.engine.begin() as conn:
            job = self._fenced(
                conn,
                job_id,
                attempt,
                "status = 'awaiting_confirmation', preview = CAST(:v AS jsonb),"
                " heartbeat_at = NULL",
                {"v": to_json(preview)},
                statuses=RUNNING_SQL,
            )
            write_event(conn, job_id, attempt, "awaiting_confirmation", None)
        return job

    def mark_cancelled(self, job_id: str, attempt: int, *, cleanup: Cleanup | None = None) -> Job:
        """The attempt stopped after a cancel: `cancelled` (fenced). `cleanup` runs in the
        same transaction, only if the attempt still owns the job, and the new status shows
        once it is done (see `Cleanup`)."""
        with self.engine.begin() as conn:
            job = self._fenced(
                conn,
                job_id,
                attempt,
                "status = 'cancelled', finished_at = now(),"
                " cancel_requested_at = coalesce(cancel_requested_at, now()), checkpoint = NULL",
                {},
            )
            write_event(conn, job_id, attempt, "cancelled", None)
            if cleanup is not None:
                cleanup(job)
        return job

    def record(
        self, job_id: str, attempt: int, kind: str, detail: Mapping[str, Any] | None
    ) -> None:
        """Add a line to the job's history."""
        with self.engine.begin() as conn:
            write_event(conn, job_id, attempt, kind, detail)


def _without_flush_wait(conn: Connection) -> None:
    """Commit this transaction without waiting for its WAL flush.

    For progress snapshots and heartbeats only: a crash can lose the last one, which the
    next one replaces anyway. It takes the fsync off every phase boundary of a job
    (bench/cancel.py). Checkpoints and state changes keep their durable commit.
    """
    conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
