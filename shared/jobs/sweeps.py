"""The sweeper's queries: expired leases, lost messages, expired downloads and imports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import text

from shared.jobs.job import (
    COLUMNS,
    OWNED_SQL,
    Cleanup,
    Job,
    StoreBase,
    is_uuid,
    row_job,
    status_list,
    to_json,
    write_event,
)
from shared.jobs.states import OWNED, Status

# A job in these statuses may still need its files (work, upload, output).
LIVE = frozenset({Status.QUEUED, Status.AWAITING_CONFIRMATION}) | OWNED
_LIVE_SQL = status_list(LIVE)


class SweepQueries(StoreBase):
    """Conditional statements of the sweeper: a sweep racing a worker cannot both win."""

    def expired_leases(self, lease_seconds: float) -> list[Job]:
        """Owned jobs whose heartbeat is older than the lease."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM jobs WHERE status IN {OWNED_SQL}"
                    " AND heartbeat_at < now() - make_interval(secs => :lease)"
                ),
                {"lease": lease_seconds},
            )
            return [row_job(r) for r in rows]

    def requeue_interrupted(self, job: Job) -> Job | None:
        """Move an attempt whose lease expired back to `queued` as attempt + 1."""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = 'queued', attempt = attempt + 1, queued_at = now(),"
                    " heartbeat_at = NULL, progress = NULL, updated_at = now()"
                    " WHERE id = :id AND attempt = :attempt AND status = 'running'"
                    " AND heartbeat_at = :heartbeat"
                    f" RETURNING {COLUMNS}"
                ),
                {"id": job.id, "attempt": job.attempt, "heartbeat": job.heartbeat_at},
            ).first()
            if row is None:
                return None
            write_event(conn, job.id, job.attempt, "interrupted", {"worker": job.worker})
        return row_job(row)

    def fail_interrupted(
        self, job: Job, *, error: Mapping[str, Any], cleanup: Cleanup | None = None
    ) -> Job | None:
        """Fail a job whose last allowed attempt stopped heartbeating."""
        return self._close_expired(job, "failed", error, cleanup)

    def cancel_expired(self, job: Job, *, cleanup: Cleanup | None = None) -> Job | None:
        """Finish a cancel whose worker died before it could."""
        return self._close_expired(job, "cancelled", None, cleanup)

    def _close_expired(
        self,
        job: Job,
        status: str,
        error: Mapping[str, Any] | None,
        cleanup: Cleanup | None,
    ) -> Job | None:
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = :status, finished_at = now(), updated_at = now(),"
                    " error = CAST(:e AS jsonb), checkpoint = NULL"
                    f" WHERE id = :id AND attempt = :attempt AND status IN {OWNED_SQL}"
                    " AND heartbeat_at = :heartbeat"
                    f" RETURNING {COLUMNS}"
                ),
                {
                    "status": status,
                    "e": to_json(error),
                    "id": job.id,
                    "attempt": job.attempt,
                    "heartbeat": job.heartbeat_at,
                },
            ).first()
            if row is None:
                return None
            closed = row_job(row)
            write_event(conn, job.id, job.attempt, status, dict(error) if error else None)
            if cleanup is not None:
                cleanup(closed)
        return closed

    def stale_queued(self, older_than_seconds: float) -> list[str]:
        """Queued jobs not claimed for a while (their message may be lost); stamps them."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    "UPDATE jobs SET queued_at = now() WHERE id IN ("
                    " SELECT id FROM jobs WHERE status = 'queued'"
                    " AND queued_at < now() - make_interval(secs => :age)"
                    " AND (not_before IS NULL OR not_before <= now())"
                    " FOR UPDATE SKIP LOCKED) RETURNING id"
                ),
                {"age": older_than_seconds},
            )
            return [r.id for r in rows]

    def update_result(self, job_id: str, result: Mapping[str, Any]) -> None:
        """Replace a finished job's result (the sweeper marks expired downloads)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE jobs SET result = CAST(:r AS jsonb), updated_at = now() WHERE id = :id"
                ),
                {"r": to_json(result), "id": job_id},
            )

    def expired_downloads(self) -> list[Job]:
        """Succeeded exports whose download passed its retention and is not yet removed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM jobs WHERE status = 'succeeded'"
                    " AND result ? 'expires_at' AND NOT result ? 'expired_at'"
                    " AND (result->>'expires_at')::timestamptz < now()"
                )
            )
            return [row_job(r) for r in rows]

    def cancel_unconfirmed(self, hours: float, *, cleanup: Cleanup | None = None) -> list[Job]:
        """Cancel the imports that waited for confirmation for longer than `hours`.

        One conditional statement: an import the user confirms meanwhile is `queued`
        when this reaches its row, and stays so.
        """
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    "UPDATE jobs SET status = 'cancelled', finished_at = now(),"
                    " cancel_requested_at = coalesce(cancel_requested_at, now()),"
                    " updated_at = now()"
                    " WHERE status = 'awaiting_confirmation'"
                    " AND updated_at < now() - make_interval(secs => :s)"
                    f" RETURNING {COLUMNS}"
                ),
                {"s": hours * 3600},
            ).all()
            jobs = [row_job(r) for r in rows]
            for job in jobs:
                write_event(conn, job.id, job.attempt, "expired_unconfirmed", None)
                if cleanup is not None:
                    cleanup(job)
        return jobs

    def unneeded_uploads(self, job_ids: Iterable[str], *, upload_hours: float) -> set[str]:
        """Which of `job_ids` need their upload no more: no such job, or it succeeded,
        or it failed or was cancelled more than `upload_hours` ago (the database's clock,
        the same one a restart is judged by)."""
        ids = {j for j in job_ids if is_uuid(j)}
        if not ids:
            return set(job_ids)
        with self.engine.connect() as conn:
            kept = conn.execute(
                text(
                    "SELECT id FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"
                    f" AND (status IN {_LIVE_SQL} OR (status IN ('failed', 'cancelled')"
                    " AND finished_at > now() - make_interval(secs => :s)))"
                ),
                {"ids": sorted(ids), "s": upload_hours * 3600},
            ).scalars()
            return set(job_ids) - set(kept)
