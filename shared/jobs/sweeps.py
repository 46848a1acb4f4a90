"""The sweeper's queries: expired leases, lost messages, expired downloads and imports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from shared.jobs.job import COLUMNS, OWNED_SQL, Job, StoreBase, row_job, to_json, write_event


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

    def fail_interrupted(self, job: Job, *, error: Mapping[str, Any]) -> Job | None:
        """Fail a job whose last allowed attempt stopped heartbeating."""
        return self._close_expired(job, "failed", error)

    def cancel_expired(self, job: Job) -> Job | None:
        """Finish a cancel whose worker died before it could."""
        return self._close_expired(job, "cancelled", None)

    def _close_expired(self, job: Job, status: str, error: Mapping[str, Any] | None) -> Job | None:
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
            write_event(conn, job.id, job.attempt, status, dict(error) if error else None)
        return row_job(row)

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

    def unconfirmed_since(self, hours: float) -> list[Job]:
        """Imports waiting for confirmation for longer than `hours`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM jobs WHERE status = 'awaiting_confirmation'"
                    " AND updated_at < now() - make_interval(secs => :s)"
                ),
                {"s": hours * 3600},
            )
            return [row_job(r) for r in rows]
