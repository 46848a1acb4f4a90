"""The job record: its row, its SQL form, and the base every part of the store shares.

The store is split by concept (`reads`, `leases`, `requests`, `sweeps`); `JobStore` in
`store.py` puts them together. Every state change is one SQL statement whose WHERE clause
states what must hold, so two processes racing on one job cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text

from shared.jobs.states import CANCEL_AT_ONCE, OWNED, RESTARTABLE, Status, is_terminal

COLUMNS = (
    "id, account_id, type, params, status, attempt, first_attempt, idempotency_key, created_at,"
    " updated_at,"
    " queued_at, not_before, started_at, heartbeat_at, finished_at, cancel_requested_at,"
    " worker, progress, checkpoint, error, result, preview"
)


def status_list(statuses: Iterable[str]) -> str:
    """A SQL list of statuses, for `status IN …` (the values are Ferry's own constants)."""
    return "(" + ", ".join(f"'{s}'" for s in sorted(statuses)) + ")"


OWNED_SQL = status_list(OWNED)
RUNNING_SQL = status_list({Status.RUNNING})
CANCEL_AT_ONCE_SQL = status_list(CANCEL_AT_ONCE)
RESTARTABLE_SQL = status_list(RESTARTABLE)


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


Cleanup = Callable[[Job], None]
"""Removes what a job left. A state change that ends a job runs it inside its own
transaction, after its conditional UPDATE matched: so it runs only if the change happens,
while the job row is locked (no sweeper, restart or newer attempt can act on the job
until both are done), and the new status is seen only once it is done."""


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


def to_json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def row_job(row: Any) -> Job:
    return Job(**dict(row._mapping))


def write_event(
    conn: Connection, job_id: str, attempt: int, kind: str, detail: Mapping[str, Any] | None
) -> None:
    """Add a line to a job's history inside the caller's transaction."""
    conn.execute(
        text(
            "INSERT INTO job_events (job_id, attempt, kind, detail)"
            " VALUES (:job_id, :attempt, :kind, CAST(:detail AS jsonb))"
        ),
        {"job_id": job_id, "attempt": attempt, "kind": kind, "detail": to_json(detail)},
    )


def filter_sql(where: JobFilter) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if where.account_id:
        clauses.append("account_id = :f_account")
        params["f_account"] = where.account_id
    if where.status and len(where.status) == 1:
        # Equality, not `= ANY(…)`: the planner then reads the (status, …, created_at DESC)
        # indexes in their order, so a page is the first rows of an index range.
        clauses.append("status = :f_status")
        params["f_status"] = where.status[0]
    elif where.status:
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


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


class StoreBase:
    """What every part of the job store holds: the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
