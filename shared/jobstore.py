"""The `jobs` table: the durable record of every job (SPEC 5, 7, 8).

Every state change is one SQL statement whose WHERE clause states what must hold, so
two processes racing on one job cannot both win. Writes of a running attempt are
fenced by `(id, attempt)` and an owned status: a stale attempt changes nothing and
learns that it lost the job (`LeaseLost`).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection, Engine, text

from shared.errors import Conflict, LeaseLost, NotFound
from shared.jobstate import CANCEL_AT_ONCE, OWNED, RESTARTABLE, Status, is_terminal
from shared.timefmt import format_iso, parse_iso

_COLUMNS = (
    "id, account_id, type, params, status, attempt, first_attempt, idempotency_key, created_at,"
    " updated_at,"
    " queued_at, not_before, started_at, heartbeat_at, finished_at, cancel_requested_at,"
    " worker, progress, checkpoint, error, result, preview"
)


def _in(statuses: Iterable[str]) -> str:
    """A SQL list of statuses, for `status IN …` (the values are Ferry's own constants)."""
    return "(" + ", ".join(f"'{s}'" for s in sorted(statuses)) + ")"


_OWNED_SQL = _in(OWNED)
_RUNNING_SQL = _in({Status.RUNNING})
_CANCEL_AT_ONCE_SQL = _in(CANCEL_AT_ONCE)
_RESTARTABLE_SQL = _in(RESTARTABLE)


@dataclass(frozen=True, slots=True)
class Job:
    """One row of `jobs`."""

    id: str
    account_id: str
    type: str
    params: dict[str, Any]
    status: str
    attempt: int
    first_attempt: int
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    not_before: datetime | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    worker: str | None
    progress: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    preview: dict[str, Any] | None

    @property
    def attempts_used(self) -> int:
        """Attempts of the current run, this one included (restarts begin a new run)."""
        return self.attempt - self.first_attempt + 1

    @property
    def terminal(self) -> bool:
        """Whether the job has reached succeeded, failed or cancelled."""
        return is_terminal(self.status)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a heartbeat learned: does this attempt still own the job, is cancel asked."""

    owned: bool
    cancel_requested: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFilter:
    """Which jobs a listing or a bulk restart selects."""

    account_id: str | None = None
    status: Sequence[str] | None = None
    type: str | None = None
    error_code: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of a job's history."""

    attempt: int
    at: datetime
    kind: str
    detail: dict[str, Any] | None


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _job(row: Any) -> Job:
    return Job(**dict(row._mapping))


class JobStore:
    """Reads and writes `jobs` and `job_events` through one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- creating and reading -----------------------------------------------------------

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
                    f" ON CONFLICT (account_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}"
                ),
                {
                    "id": job_id,
                    "account_id": account_id,
                    "type": type,
                    "params": _json(dict(params)),
                    "status": status.value,
                    "key": idempotency_key,
                },
            ).first()
            if row is not None:
                self._event(conn, job_id, 1, "created", {"type": type})
                return _job(row), True
            existing = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM jobs"
                    " WHERE account_id = :account_id AND idempotency_key = :key"
                ),
                {"account_id": account_id, "key": idempotency_key},
            ).one()
        return _job(existing), False

    def get(self, job_id: str, *, account_id: str | None = None) -> Job:
        """The job `job_id` (of `account_id` when given); NotFound otherwise."""
        if not _is_uuid(job_id):
            raise NotFound("no such job")
        query = f"SELECT {_COLUMNS} FROM jobs WHERE id = :id"
        params: dict[str, Any] = {"id": job_id}
        if account_id is not None:
            query += " AND account_id = :account_id"
            params["account_id"] = account_id
        with self.engine.connect() as conn:
            row = conn.execute(text(query), params).first()
        if row is None:
            raise NotFound("no such job")
        return _job(row)

    def page(
        self, where: JobFilter, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """Jobs matching `where`, newest first, and the cursor of the next page (or None)."""
        clauses, params = _filter_sql(where)
        if cursor:
            created, last_id = _decode_cursor(cursor)
            clauses.append("(created_at, id) < (:c_created, :c_id)")
            params.update(c_created=created, c_id=last_id)
        sql = f"SELECT {_COLUMNS} FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC, id DESC LIMIT :limit"
        params["limit"] = limit + 1
        with self.engine.connect() as conn:
            rows = [_job(r) for r in conn.execute(text(sql), params)]
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

    # --- a worker's attempt ---------------------------------------------------------------

    def claim(self, job_id: str, *, worker: str) -> Job | None:
        """Move a queued job to running in one statement; None when it cannot be claimed.

        A job that another attempt holds, that is waiting out a retry delay, or that is
        terminal or cancelled is left alone, so duplicate deliveries do nothing.
        """
        if not _is_uuid(job_id):
            return None
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = 'running', heartbeat_at = now(),"
                    " started_at = coalesce(started_at, now()), updated_at = now(),"
                    " worker = :worker, not_before = NULL"
                    " WHERE id = :id AND status = 'queued'"
                    " AND (not_before IS NULL OR not_before <= now())"
                    f" RETURNING {_COLUMNS}"
                ),
                {"id": job_id, "worker": worker},
            ).first()
            if row is None:
                return None
            job = _job(row)
            self._event(conn, job.id, job.attempt, "claimed", {"worker": worker})
        return job

    def heartbeat(self, job_id: str, attempt: int) -> Heartbeat:
        """Renew the attempt's lease; report whether it still owns the job and cancel asked."""
        with self.engine.begin() as conn:
            _without_flush_wait(conn)
            row = conn.execute(
                text(
                    "UPDATE jobs SET heartbeat_at = now()"
                    f" WHERE id = :id AND attempt = :attempt AND status IN {_OWNED_SQL}"
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
        statuses: str = _OWNED_SQL,
    ) -> Job:
        """A fenced write that answers the job as it now is (state changes)."""
        row = self._fenced_update(
            conn, job_id, attempt, assignments, params, statuses=statuses, returning=_COLUMNS
        )
        return _job(row)

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
            conn, job_id, attempt, assignments, params, statuses=_OWNED_SQL, returning="id"
        )

    def save_progress(self, job_id: str, attempt: int, progress: Mapping[str, Any]) -> None:
        """Write the progress snapshot (fenced)."""
        with self.engine.begin() as conn:
            _without_flush_wait(conn)
            self._fenced_write(
                conn, job_id, attempt, "progress = CAST(:p AS jsonb)", {"p": _json(progress)}
            )

    def save_checkpoint(self, job_id: str, attempt: int, checkpoint: Mapping[str, Any]) -> None:
        """Write the attempt's checkpoint (fenced), so a later attempt can resume from it."""
        with self.engine.begin() as conn:
            self._fenced_write(
                conn, job_id, attempt, "checkpoint = CAST(:c AS jsonb)", {"c": _json(checkpoint)}
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
            (_json(checkpoint), job_id, attempt),
        )
        return cursor.rowcount == 1

    def save_preview(self, job_id: str, attempt: int, preview: Mapping[str, Any]) -> None:
        """Write an import's report (fenced)."""
        with self.engine.begin() as conn:
            self._fenced(
                conn, job_id, attempt, "preview = CAST(:v AS jsonb)", {"v": _json(preview)}
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
                {"r": _json(result), "p": _json(progress)},
                statuses=_OWNED_SQL if despite_cancel else _RUNNING_SQL,
            )
            self._event(conn, job_id, attempt, "succeeded", None)
        return job

    def fail(self, job_id: str, attempt: int, *, error: Mapping[str, Any]) -> Job:
        """The attempt failed for good: `failed` with its error (fenced)."""
        with self.engine.begin() as conn:
            job = self._fenced(
                conn,
                job_id,
                attempt,
                "status = 'failed', finished_at = now(), error = CAST(:e AS jsonb)",
                {"e": _json(error)},
            )
            self._event(conn, job_id, attempt, "failed", dict(error))
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
                statuses=_RUNNING_SQL,
            )
            self._event(
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
                {"v": _json(preview)},
                statuses=_RUNNING_SQL,
            )
            self._event(conn, job_id, attempt, "awaiting_confirmation", None)
        return job

    def mark_cancelled(self, job_id: str, attempt: int) -> Job:
        """The attempt stopped and cleaned up after a cancel: `cancelled` (fenced)."""
        with self.engine.begin() as conn:
            job = self._fenced(
                conn,
                job_id,
                attempt,
                "status = 'cancelled', finished_at = now(),"
                " cancel_requested_at = coalesce(cancel_requested_at, now()), checkpoint = NULL",
                {},
            )
            self._event(conn, job_id, attempt, "cancelled", None)
        return job

    def record(
        self, job_id: str, attempt: int, kind: str, detail: Mapping[str, Any] | None
    ) -> None:
        """Add a line to the job's history."""
        with self.engine.begin() as conn:
            self._event(conn, job_id, attempt, kind, detail)

    # --- requests from users and operators ------------------------------------------------

    def request_cancel(self, job_id: str, *, account_id: str | None = None) -> Job:
        """Cancel: queued or awaiting jobs are cancelled at once, running ones cancelling.

        Conflict for a terminal job, NotFound for a job the caller cannot see.
        """
        scope = " AND account_id = :account_id" if account_id else ""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET"
                    f" status = CASE WHEN status IN {_CANCEL_AT_ONCE_SQL} THEN 'cancelled'"
                    " ELSE 'cancelling' END,"
                    f" finished_at = CASE WHEN status IN {_CANCEL_AT_ONCE_SQL} THEN now()"
                    " ELSE finished_at END,"
                    " cancel_requested_at = coalesce(cancel_requested_at, now()),"
                    " updated_at = now()"
                    " WHERE id = :id AND status IN ('queued', 'awaiting_confirmation', 'running',"
                    f" 'cancelling'){scope} RETURNING {_COLUMNS}"
                ),
                {"id": job_id, "account_id": account_id},
            ).first()
            if row is not None:
                job = _job(row)
                self._event(conn, job.id, job.attempt, "cancel_requested", {"status": job.status})
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
        clauses, params = _filter_sql(where)
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
                    f" WHERE status IN {_RESTARTABLE_SQL} AND {where_sql} RETURNING {_COLUMNS}"
                ),
                dict(params),
            ).all()
            jobs = [_job(r) for r in rows]
            for job in jobs:
                self._event(conn, job.id, job.attempt, "restarted", {"by": by})
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
                    f" RETURNING {_COLUMNS}"
                ),
                {"id": job_id, "account_id": account_id, "skip": skip_invalid},
            ).first()
            if row is not None:
                job = _job(row)
                self._event(conn, job.id, job.attempt, "confirmed", None)
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

    # --- the sweeper ------------------------------------------------------------------------

    def expired_leases(self, lease_seconds: float) -> list[Job]:
        """Owned jobs whose heartbeat is older than the lease."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM jobs WHERE status IN {_OWNED_SQL}"
                    " AND heartbeat_at < now() - make_interval(secs => :lease)"
                ),
                {"lease": lease_seconds},
            )
            return [_job(r) for r in rows]

    def requeue_interrupted(self, job: Job) -> Job | None:
        """Move an attempt whose lease expired back to `queued` as attempt + 1."""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE jobs SET status = 'queued', attempt = attempt + 1, queued_at = now(),"
                    " heartbeat_at = NULL, progress = NULL, updated_at = now()"
                    " WHERE id = :id AND attempt = :attempt AND status = 'running'"
                    " AND heartbeat_at = :heartbeat"
                    f" RETURNING {_COLUMNS}"
                ),
                {"id": job.id, "attempt": job.attempt, "heartbeat": job.heartbeat_at},
            ).first()
            if row is None:
                return None
            self._event(conn, job.id, job.attempt, "interrupted", {"worker": job.worker})
        return _job(row)

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
                    f" WHERE id = :id AND attempt = :attempt AND status IN {_OWNED_SQL}"
                    " AND heartbeat_at = :heartbeat"
                    f" RETURNING {_COLUMNS}"
                ),
                {
                    "status": status,
                    "e": _json(error),
                    "id": job.id,
                    "attempt": job.attempt,
                    "heartbeat": job.heartbeat_at,
                },
            ).first()
            if row is None:
                return None
            self._event(conn, job.id, job.attempt, status, dict(error) if error else None)
        return _job(row)

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

    def statuses_of(self, job_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        """Status and attempt of each of `job_ids` that exists."""
        ids = [j for j in job_ids if _is_uuid(j)]
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status, attempt FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": ids},
            )
            return {r.id: (r.status, r.attempt) for r in rows}

    def update_result(self, job_id: str, result: Mapping[str, Any]) -> None:
        """Replace a finished job's result (the sweeper marks expired downloads)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE jobs SET result = CAST(:r AS jsonb), updated_at = now() WHERE id = :id"
                ),
                {"r": _json(result), "id": job_id},
            )

    def expired_downloads(self) -> list[Job]:
        """Succeeded exports whose download passed its retention and is not yet removed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM jobs WHERE status = 'succeeded'"
                    " AND result ? 'expires_at' AND NOT result ? 'expired_at'"
                    " AND (result->>'expires_at')::timestamptz < now()"
                )
            )
            return [_job(r) for r in rows]

    def unconfirmed_since(self, hours: float) -> list[Job]:
        """Imports waiting for confirmation for longer than `hours`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM jobs WHERE status = 'awaiting_confirmation'"
                    " AND updated_at < now() - make_interval(secs => :s)"
                ),
                {"s": hours * 3600},
            )
            return [_job(r) for r in rows]

    def last_succeeded(self, account_id: str, type: str) -> Job | None:
        """The account's most recent succeeded job of `type`."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT {_COLUMNS} FROM jobs WHERE account_id = :a AND type = :t"
                    " AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1"
                ),
                {"a": account_id, "t": type},
            ).first()
        return None if row is None else _job(row)

    @staticmethod
    def _event(
        conn: Connection, job_id: str, attempt: int, kind: str, detail: Mapping[str, Any] | None
    ) -> None:
        conn.execute(
            text(
                "INSERT INTO job_events (job_id, attempt, kind, detail)"
                " VALUES (:job_id, :attempt, :kind, CAST(:detail AS jsonb))"
            ),
            {"job_id": job_id, "attempt": attempt, "kind": kind, "detail": _json(detail)},
        )


def _without_flush_wait(conn: Connection) -> None:
    """Commit this transaction without waiting for its WAL flush.

    For progress snapshots and heartbeats only: a crash can lose the last one, which the
    next one replaces anyway. It takes the fsync off every phase boundary of a job
    (bench/cancel.py). Checkpoints and state changes keep their durable commit.
    """
    conn.execute(text("SET LOCAL synchronous_commit TO OFF"))


def _filter_sql(where: JobFilter) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if where.account_id:
        clauses.append("account_id = :f_account")
        params["f_account"] = where.account_id
    if where.status:
        clauses.append("status = ANY(:f_status)")
        params["f_status"] = list(where.status)
    if where.type:
        clauses.append("type = :f_type")
        params["f_type"] = where.type
    if where.error_code:
        clauses.append("error->>'code' = :f_code")
        params["f_code"] = where.error_code
    if where.since:
        clauses.append("created_at >= :f_since")
        params["f_since"] = where.since
    if where.until:
        clauses.append("created_at < :f_until")
        params["f_until"] = where.until
    return clauses, params


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


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
