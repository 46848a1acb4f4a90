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
    Cleanup,
    Job,
    JobFilter,
    filter_sql,
    row_job,
    status_list,
    to_json,
    write_event,
)
from shared.jobs.reads import JobReads
from shared.jobs.states import UPLOAD_TYPES, Status

UPLOAD_TYPES_SQL = status_list(UPLOAD_TYPES)
UPLOAD_EXPIRED = "upload expired; upload the file again"
# A job a restart may take now: failed or cancelled, and, for an import, still holding its
# upload. The sweeper removes an upload only when its job ended more than `upload_hours`
# ago by the database's clock; a restart is refused by the same clock, so the two can
# never both win (a restarted job is live, and the sweeper leaves it alone).
_RESTARTABLE_NOW = (
    f"status IN {RESTARTABLE_SQL} AND (type NOT IN {UPLOAD_TYPES_SQL}"
    " OR finished_at > now() - make_interval(secs => :upload_seconds))"
)


class JobRequests(JobReads):
    """Requests from users and operators (each one conditional statement)."""

    def request_cancel(
        self, job_id: str, *, account_id: str | None = None, cleanup: Cleanup | None = None
    ) -> Job:
        """Cancel: queued or awaiting jobs are cancelled at once, running ones cancelling.

        A job cancelled at once has `cleanup` run inside the same transaction (a running
        one is cleaned by its worker). Conflict for a terminal job, NotFound for a job
        the caller cannot see.
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
                if cleanup is not None and job.status == Status.CANCELLED:
                    cleanup(job)
                return job
        current = self.get(job_id, account_id=account_id)  # raises NotFound
        raise Conflict(f"job is {current.status}; only unfinished jobs can be cancelled")

    def restart(
        self,
        job_id: str,
        *,
        upload_hours: float,
        account_id: str | None = None,
        by: str = "user",
    ) -> Job:
        """Restart a failed or cancelled job: same id, attempt + 1, `queued`, error cleared.

        A job that runs from an upload is restarted only within `upload_hours` of its
        end, while the sweeper keeps the upload (SPEC 8); later it is a Conflict.
        """
        jobs = self._restart(
            f"id = :id{' AND account_id = :account_id' if account_id else ''}",
            {"id": job_id, "account_id": account_id},
            upload_hours=upload_hours,
            by=by,
        )
        if jobs:
            return jobs[0]
        current = self.get(job_id, account_id=account_id)
        if current.status in (Status.FAILED, Status.CANCELLED):
            raise Conflict(UPLOAD_EXPIRED)
        raise Conflict(f"job is {current.status}; only failed or cancelled jobs can be restarted")

    def restart_matching(
        self, where: JobFilter, *, upload_hours: float, by: str = "ops"
    ) -> list[Job]:
        """Restart every failed or cancelled job that matches `where` (imports only while
        their upload is kept)."""
        clauses, params = filter_sql(where)
        return self._restart(
            " AND ".join(clauses) or "TRUE", params, upload_hours=upload_hours, by=by
        )

    def count_restartable(self, where: JobFilter, *, upload_hours: float) -> int:
        """How many jobs `restart_matching(where)` would restart now (the same rule)."""
        clauses, params = filter_sql(where)
        sql = f"SELECT count(*) FROM jobs WHERE {_RESTARTABLE_NOW} AND " + (
            " AND ".join(clauses) or "TRUE"
        )
        with self.engine.connect() as conn:
            found = conn.execute(
                text(sql), {**params, "upload_seconds": upload_hours * 3600}
            ).scalar_one()
        return int(found)

    def _restart(
        self, where_sql: str, params: Mapping[str, Any], *, upload_hours: float, by: str
    ) -> list[Job]:
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    "UPDATE jobs SET status = 'queued', attempt = attempt + 1,"
                    " first_attempt = attempt + 1, error = NULL,"
                    " result = NULL, progress = NULL, checkpoint = NULL, preview = NULL,"
                    " cancel_requested_at = NULL, finished_at = NULL, not_before = NULL,"
                    " heartbeat_at = NULL, queued_at = now(), updated_at = now()"
                    f" WHERE {_RESTARTABLE_NOW} AND {where_sql}"
                    f" RETURNING {COLUMNS}"
                ),
                {**params, "upload_seconds": upload_hours * 3600},
            ).all()
            jobs = [row_job(r) for r in rows]
            for job in jobs:
                write_event(conn, job.id, job.attempt, "restarted", {"by": by})
        return jobs

    def confirm(
        self,
        job_id: str,
        *,
        account_id: str | None = None,
        skip_invalid: bool = False,
        choices: Mapping[str, Any] | None = None,
    ) -> Job:
        """An awaiting import goes on: back to `queued` for the apply phases.

        Refused (Conflict) while its report lists errors, unless invalid records are to be
        skipped (set on the job already, or now). `choices` go into the job's params (a
        rollback's `modified`).
        """
        scope = " AND account_id = :account_id" if account_id else ""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = 'queued', queued_at = now(), updated_at = now(),"
                    " params = params || jsonb_build_object('confirm', true, 'skip_invalid',"
                    " coalesce((params->>'skip_invalid')::boolean, false) OR :skip)"
                    " || CAST(:choices AS jsonb)"
                    f" WHERE id = :id AND status = 'awaiting_confirmation'{scope}"
                    " AND (coalesce((preview->>'error_count')::int,"
                    " (preview->>'error_total')::int, 0) = 0"
                    " OR coalesce((params->>'skip_invalid')::boolean, false) OR :skip)"
                    f" RETURNING {COLUMNS}"
                ),
                {
                    "id": job_id,
                    "account_id": account_id,
                    "skip": skip_invalid,
                    "choices": to_json(dict(choices or {})),
                },
            ).first()
            if row is not None:
                job = row_job(row)
                write_event(conn, job.id, job.attempt, "confirmed", None)
                return job
        current = self.get(job_id, account_id=account_id)
        if current.status == Status.AWAITING_CONFIRMATION:
            shown = current.preview or {}
            errors = shown.get("error_count", shown.get("error_total", 0))
            raise Conflict(
                f"the report lists {errors} problem(s); confirm with skip_invalid=true to"
                " import only the valid records",
                details={"error_count": errors},
            )
        raise Conflict(f"job is {current.status}; only an awaiting import can be confirmed")

    def remap(
        self, job_id: str, *, account_id: str | None = None, mapping: Mapping[str, Any]
    ) -> Job:
        """A table import awaiting confirmation goes back to `queued` with a new mapping,
        to read its stored file again (its staging and preview are replaced)."""
        scope = " AND account_id = :account_id" if account_id else ""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = 'queued', queued_at = now(), updated_at = now(),"
                    " params = params || jsonb_build_object('mapping', CAST(:m AS jsonb)),"
                    " checkpoint = NULL"
                    " WHERE id = :id AND status = 'awaiting_confirmation'"
                    f" AND type = 'import.table'{scope} RETURNING {COLUMNS}"
                ),
                {"id": job_id, "account_id": account_id, "m": to_json(dict(mapping))},
            ).first()
            if row is not None:
                job = row_job(row)
                write_event(conn, job.id, job.attempt, "remapped", {"mapping": dict(mapping)})
                return job
        current = self.get(job_id, account_id=account_id)
        if current.type != "import.table":
            raise Conflict("only a table import can be remapped")
        raise Conflict(f"job is {current.status}; only an awaiting table import can be remapped")
