"""Import batches (SPEC 13): the import history, and asking for a batch's rollback.

A batch is an import job (archive or table). It can be undone while it is `succeeded`,
recorded what an undo needs (`apply_xmin`, shared/undo/recorder.py), is not past
`rollback_until` (its end + FERRY_ROLLBACK_HOURS) and was not rolled back yet.
`import_batches` holds what happened to it since: the rollback job last asked for, when it
was rolled back, when its undo data was purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from shared.errors import Conflict, NotFound, RollbackExpired
from shared.jobs.job import COLUMNS, Job, is_uuid, row_job
from shared.jobs.reads import _decode_cursor, _encode_cursor
from shared.jobs.states import IMPORT_TYPES, TERMINAL, JobType, Status
from shared.jobs.store import JobStore
from shared.timefmt import format_iso, utcnow

_TYPES = tuple(sorted(IMPORT_TYPES))
_BATCH_COLUMNS = "b.rolled_back_at, b.rollback_job_id, b.undo_purged_at"
_JOB_COLUMNS = ", ".join(f"j.{c.strip()}" for c in COLUMNS.split(","))


@dataclass(frozen=True, slots=True)
class Batch:
    """An import job and what happened to it after it ended."""

    job: Job
    rolled_back_at: datetime | None = None
    rollback_job_id: str | None = None
    undo_purged_at: datetime | None = None

    @property
    def recorded_undo(self) -> bool:
        """Whether the import succeeded and kept what a rollback needs."""
        return self.job.status == Status.SUCCEEDED and "apply_xmin" in (self.job.result or {})

    def rollback_until(self, hours: float) -> datetime | None:
        """Until when the batch can be rolled back; None when it cannot be at all."""
        if not self.recorded_undo or self.job.finished_at is None:
            return None
        return self.job.finished_at + timedelta(hours=hours)

    def check_undoable(self, hours: float, *, now: datetime | None = None) -> None:
        """Raise Conflict or RollbackExpired unless a rollback may start now."""
        if self.rolled_back_at is not None:
            raise Conflict(
                "this import was rolled back already",
                details={"rollback_job": self.rollback_job_id},
            )
        if self.job.status != Status.SUCCEEDED:
            raise Conflict(f"import is {self.job.status}; only a succeeded import can be undone")
        until = self.rollback_until(hours)
        if until is None:
            raise Conflict("this import kept no undo data (it ran before undo existed)")
        if self.undo_purged_at is not None or (now or utcnow()) > until:
            raise RollbackExpired(
                f"this import could be rolled back until {format_iso(until)}",
                details={"rollback_until": format_iso(until)},
            )

    def counts(self) -> dict[str, int]:
        """What the import wrote: created, updated, skipped, invalid."""
        result = self.job.result or {}
        if isinstance(result.get("counts"), dict):  # a table import names them itself
            given = result["counts"]
            return {k: int(given.get(k, 0)) for k in ("created", "updated", "skipped", "invalid")}
        return {
            "created": sum((result.get("written") or {}).values()),
            "updated": sum((result.get("replaced") or {}).values()),
            "skipped": sum((result.get("kept_existing") or {}).values()),
            "invalid": int(result.get("invalid_skipped", 0)),
        }

    def view(self, hours: float) -> dict[str, Any]:
        """The import history's record (SPEC 9 `GET /imports`)."""
        job = self.job
        until = self.rollback_until(hours)
        return {
            "id": job.id,
            "type": job.type.removeprefix("import."),
            "table": job.params.get("table"),
            "filename": str(job.params.get("filename", "")),
            "status": job.status,
            "counts": self.counts(),
            "finished_at": _iso(job.finished_at),
            "rollback_until": _iso(until),
            "rolled_back_at": _iso(self.rolled_back_at),
            "rollback_job": self.rollback_job_id,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else format_iso(value)


def _batch(row: Any) -> Batch:
    data = dict(row._mapping)
    extra = {k: data.pop(k) for k in ("rolled_back_at", "rollback_job_id", "undo_purged_at")}
    return Batch(job=Job(**data), **extra)


class Batches:
    """Reading import batches and asking for their rollback."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.jobs = JobStore(engine)

    def get(self, job_id: str, *, account_id: str | None = None) -> Batch:
        """One import batch (of `account_id` when given); NotFound for any other job."""
        if not is_uuid(job_id):
            raise NotFound("no such import")
        query = (
            f"SELECT {_JOB_COLUMNS}, {_BATCH_COLUMNS} FROM jobs j"
            " LEFT JOIN import_batches b ON b.job_id = j.id"
            " WHERE j.id = :id AND j.type = ANY(:types)"
        )
        params: dict[str, Any] = {"id": job_id, "types": list(_TYPES)}
        if account_id is not None:
            query += " AND j.account_id = :a"
            params["a"] = account_id
        with self.engine.connect() as conn:
            row = conn.execute(text(query), params).first()
        if row is None:
            raise NotFound("no such import")
        return _batch(row)

    def page(
        self, account_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Batch], str | None]:
        """The account's imports, newest first (keyset pages, as `GET /jobs`)."""
        clauses = ["j.account_id = :a", "j.type = ANY(:types)"]
        params: dict[str, Any] = {"a": account_id, "types": list(_TYPES), "limit": limit + 1}
        if cursor:
            created, last_id = _decode_cursor(cursor)
            clauses.append("(j.created_at, j.id) < (:c_created, :c_id)")
            params.update(c_created=created, c_id=last_id)
        query = (
            f"SELECT {_JOB_COLUMNS}, {_BATCH_COLUMNS} FROM jobs j"
            " LEFT JOIN import_batches b ON b.job_id = j.id"
            f" WHERE {' AND '.join(clauses)} ORDER BY j.created_at DESC, j.id DESC LIMIT :limit"
        )
        with self.engine.connect() as conn:
            batches = [_batch(r) for r in conn.execute(text(query), params)]
        next_cursor = None
        if len(batches) > limit:
            batches = batches[:limit]
            next_cursor = _encode_cursor(batches[-1].job)
        return batches, next_cursor

    def request_rollback(self, import_id: str, *, account_id: str, hours: float) -> Job:
        """Queue the `import.rollback` job of a batch (not published yet).

        Conflict when it was rolled back or a rollback of it is under way, RollbackExpired
        past `rollback_until`. Two requests at once cannot both queue one: the job's
        idempotency key counts the batch's earlier rollback jobs, so the second request
        finds the first one's job.
        """
        batch = self.get(import_id, account_id=account_id)
        batch.check_undoable(hours)
        earlier = self._rollback_jobs(import_id, account_id)
        busy = [j for j in earlier if j.status not in TERMINAL]
        if busy:
            raise Conflict("a rollback of this import is under way", details={"job_id": busy[0].id})
        params = {"import_id": import_id, "confirm": False, "modified": None}
        job, created = self.jobs.create(
            account_id=account_id,
            type=JobType.IMPORT_ROLLBACK,
            params=params,
            idempotency_key=f"import.rollback:{import_id}:{len(earlier)}",
        )
        if not created:
            raise Conflict("a rollback of this import is under way", details={"job_id": job.id})
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO import_batches (job_id, account_id, rollback_job_id)"
                    " VALUES (:id, :a, :r) ON CONFLICT (job_id) DO UPDATE"
                    " SET rollback_job_id = :r WHERE import_batches.rolled_back_at IS NULL"
                ),
                {"id": import_id, "a": account_id, "r": job.id},
            )
        return job

    def _rollback_jobs(self, import_id: str, account_id: str) -> list[Job]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM jobs WHERE account_id = :a AND type = :t"
                    " AND params->>'import_id' = :id ORDER BY created_at"
                ),
                {"a": account_id, "t": JobType.IMPORT_ROLLBACK.value, "id": import_id},
            )
            return [row_job(r) for r in rows]
