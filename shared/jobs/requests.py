"""What users and operators ask of a job: cancel, restart, confirm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from shared.errors import Conflict
from shared.jobs.job import (
    CANCEL_AT_ONCE_SQL,
    COLUMNS,
    RESTARTABLE_SQL,
    Job,
    JobFilter,
    filter_sql,
    row_job,
    write_event,
)
from shared.jobs.reads import JobReads
from shared.jobs.states import Status


class JobRequests(JobReads):
    """Requests from users and operators (each one conditional statement)."""

    def request_cancel(self, job_id: str, *, account_id: str | None = None) -> Job:
        """Cancel: queued or awaiting jobs are cancelled at once, running ones cancelling.

        Conflict for a terminal job, NotFound for a job the caller cannot see.
        """
        scope = " AND account_id = :account_id" if account_id else ""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET"
                    f" status = CASE WHEN status IN {CANCEL_AT_ONCE_SQL} THEN 'cancelled'"
                    " ELSE 'cancelling' END,"
                    f" finished_at = CASE WHEN status IN {CANCEL_AT_ONCE_SQL} THEN now()"
                    " ELSE finished_at END,"
                    " cancel_requested_at = coalesce(cancel_requested_at, now()),"
                    " updated_at = now()"
                    " WHERE id = :id AND status IN ('queued', 'awaiting_confirmation', 'running',"
                    f" 'cancelling'){scope} RETURNING {COLUMNS}"
                ),
                {"id": job_id, "account_id": account_id},
            ).first()
            if row is not None:
                job = row_job(row)
                write_event(conn, job.id, job.attempt, "cancel_requested", {"status": job.status})
                return job
        current = self.get(job_id, account_id=account_id)  # raises NotFound
        raise Conflict(f"job is {current.status}; only unfinished jobs can be cancelled")

    def restart(self, job_id: str, *, account_id: str | None = None, by: str = "user") -> Job:
        """Restart a failed or cancelled job: same id, attempt + 1, `queued`, error cleared."""
        jobs = self._restart(
            f"id = :id{' AND account_id = :account_id' if account_id else ''}",
            {"id": job_id, "account_id": account_id},
            by=by,
        )
        if jobs:
            return jobs[0]
        current = self.get(job_id, account_id=account_id)
        raise Conflict(f"job is {current.status}; only failed or cancelled jobs can be restarted")

    def restart_matching(self, where: JobFilter, *, by: str = "ops") -> list[Job]:
        """Restart every failed or cancelled job that matches `where`."""
        clauses, params = filter_sql(where)
        return self._restart(" AND ".join(clauses) or "TRUE", params, by=by)

    def _restart(self, where_sql: str, params: Mapping[str, Any], *, by: str) -> list[Job]:
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    "UPDATE jobs SET status = 'queued', attempt = attempt + 1,"
                    " first_attempt = attempt + 1, error = NULL,"
                    " result = NULL, progress = NULL, checkpoint = NULL, preview = NULL,"
                    " cancel_requested_at = NULL, finished_at = NULL, not_before = NULL,"
                    " heartbeat_at = NULL, queued_at = now(), updated_at = now()"
                    f" WHERE status IN {RESTARTABLE_SQL} AND {where_sql} RETURNING {COLUMNS}"
                ),
                dict(params),
            ).all()
            jobs = [row_job(r) for r in rows]
            for job in jobs:
                write_event(conn, job.id, job.attempt, "restarted", {"by": by})
        return jobs

    def confirm(
        self, job_id: str, *, account_id: str | None = None, skip_invalid: bool = False
    ) -> Job:
        """An awaiting import goes on: back to `queued` for the apply phases.

        Refused (Conflict) while its report lists errors, unless invalid records are to be
        skipped (set on the job already, or now).
        """
        scope = " AND account_id = :account_id" if account_id else ""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = 'queued', queued_at = now(), updated_at = now(),"
                    " params = params || jsonb_build_object('confirm', true, 'skip_invalid',"
                    " coalesce((params->>'skip_invalid')::boolean, false) OR :skip)"
                    f" WHERE id = :id AND status = 'awaiting_confirmation'{scope}"
                    " AND (coalesce((preview->>'error_count')::int, 0) = 0"
                    " OR coalesce((params->>'skip_invalid')::boolean, false) OR :skip)"
                    f" RETURNING {COLUMNS}"
                ),
                {"id": job_id, "account_id": account_id, "skip": skip_invalid},
            ).first()
            if row is not None:
                job = row_job(row)
                write_event(conn, job.id, job.attempt, "confirmed", None)
                return job
        current = self.get(job_id, account_id=account_id)
        if current.status == Status.AWAITING_CONFIRMATION:
            errors = (current.preview or {}).get("error_count", 0)
            raise Conflict(
                f"the report lists {errors} problem(s); confirm with skip_invalid=true to"
                " import only the valid records",
                details={"error_count": errors},
            )
        raise Conflict(f"job is {current.status}; only an awaiting import can be confirmed")
