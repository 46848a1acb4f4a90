"""Creating and reading jobs: rows, pages, history."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text

from shared.errors import NotFound
from shared.jobs.job import (
    COLUMNS,
    Job,
    JobEvent,
    JobFilter,
    StoreBase,
    filter_sql,
    is_uuid,
    row_job,
    to_json,
    write_event,
)
from shared.jobs.states import Status
from shared.store.changes import BASE_EXPORT_SQL
from shared.timefmt import format_iso, parse_iso


class JobReads(StoreBase):
    """Inserting jobs and reading them back."""

    def create(
        self,
        *,
        account_id: str,
        type: str,
        params: Mapping[str, Any],
        idempotency_key: str | None = None,
        status: Status = Status.QUEUED,
        job_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Insert a job (committed before anyone publishes it); True when it is new.

        With an idempotency key already used by the account, the existing job comes back.
        """
        job_id = job_id or str(uuid.uuid4())
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    f"INSERT INTO jobs (id, account_id, type, params, status, idempotency_key,"
                    f" queued_at) VALUES (:id, :account_id, :type, CAST(:params AS jsonb),"
                    f" :status, :key, now())"
                    f" ON CONFLICT (account_id, idempotency_key) DO NOTHING RETURNING {COLUMNS}"
                ),
                {
                    "id": job_id,
                    "account_id": account_id,
                    "type": type,
                    "params": to_json(dict(params)),
                    "status": status.value,
                    "key": idempotency_key,
                },
            ).first()
            if row is not None:
                write_event(conn, job_id, 1, "created", {"type": type})
                return row_job(row), True
            existing = conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM jobs"
                    " WHERE account_id = :account_id AND idempotency_key = :key"
                ),
                {"account_id": account_id, "key": idempotency_key},
            ).one()
        return row_job(existing), False

    def get(self, job_id: str, *, account_id: str | None = None) -> Job:
        """The job `job_id` (of `account_id` when given); NotFound otherwise."""
        if not is_uuid(job_id):
            raise NotFound("no such job")
        query = f"SELECT {COLUMNS} FROM jobs WHERE id = :id"
        params: dict[str, Any] = {"id": job_id}
        if account_id is not None:
            query += " AND account_id = :account_id"
            params["account_id"] = account_id
        with self.engine.connect() as conn:
            row = conn.execute(text(query), params).first()
        if row is None:
            raise NotFound("no such job")
        return row_job(row)

    def page(
        self, where: JobFilter, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Jobs matching `where`, newest first, and the cursor of the next page (or None)."""
        clauses, params = filter_sql(where)
        if cursor:
            created, last_id = _decode_cursor(cursor)
            clauses.append("(created_at, id) < (:c_created, :c_id)")
            params.update(c_created=created, c_id=last_id)
        sql = f"SELECT {COLUMNS} FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, id DESC LIMIT :limit"
        params["limit"] = limit + 1
        with self.engine.connect() as conn:
            rows = [row_job(r) for r in conn.execute(text(sql), params)]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _encode_cursor(rows[-1])
        return rows, next_cursor

    def history(self, job_id: str) -> list[JobEvent]:
        """The job's events, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT attempt, at, kind, detail FROM job_events"
                    " WHERE job_id = :id ORDER BY id"
                ),
                {"id": job_id},
            )
            return [JobEvent(r.attempt, r.at, r.kind, r.detail) for r in rows]

    def statuses_of(self, job_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """Status and attempt of each of `job_ids` that exists."""
        ids = [j for j in job_ids if is_uuid(j)]
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status, attempt FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": ids},
            )
            return {r.id: (r.status, r.attempt) for r in rows}

    def incremental_base(self, account_id: str) -> Job | None:
        """The export an incremental export of the account builds on (SPEC 4): its latest
        succeeded full or incremental export that recorded its snapshot; None if none."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM jobs WHERE account_id = :a AND {BASE_EXPORT_SQL}"
                    " ORDER BY finished_at DESC LIMIT 1"
                ),
                {"a": account_id},
            ).first()
        return None if row is None else row_job(row)

    def remove_unpublished(self, job_id: str) -> None:
        """Delete a job nobody has seen: created, never published, never claimed (a
        submission that failed after recording it)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM jobs WHERE id = :id AND status = 'queued' AND attempt = 1"
                    " AND started_at IS NULL"
                ),
                {"id": job_id},
            )


def _encode_cursor(job: Job) -> str:
    raw = f"{format_iso(job.created_at)}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    from shared.errors import BadRequest

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        uuid.UUID(job_id)
        return parse_iso(created), job_id
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not valid", details={"field": "cursor"}) from None
