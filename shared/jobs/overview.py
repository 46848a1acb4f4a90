"""What operators see at a glance (SPEC 14 "Overview"): counts, running jobs, queue age.

Each figure is one query that an index of migration 0009 answers without reading the
table's rows: counts by status and type are an index-only scan of
`jobs_status_type_created_idx`, running jobs and the oldest queued job are the ends of
`jobs_status_created_idx`, failures of the last day a range of `jobs_status_finished_idx`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from shared.jobs.job import COLUMNS, OWNED_SQL, Job, StoreBase, row_job


@dataclass(frozen=True, slots=True)
class Overview:
    """Counts by (type, status), the running jobs, the oldest queued job, recent failures."""

    counts: dict[tuple[str, str], int]
    running: list[Job]
    running_total: int
    oldest_queued_at: datetime | None
    failed_last_day: dict[str, int]  # by error code
    now: datetime

    def by_status(self) -> dict[str, int]:
        """Counts by status over every type."""
        out: dict[str, int] = {}
        for (_, status), count in self.counts.items():
            out[status] = out.get(status, 0) + count
        return out


class OverviewReads(StoreBase):
    """The overview's queries."""

    def overview(self, *, running_limit: int = 20) -> Overview:
        """The figures of the operators' overview, read in one snapshot."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            now = conn.execute(text("SELECT now()")).scalar_one()
            counts = {
                (r.type, r.status): int(r.n)
                for r in conn.execute(
                    text("SELECT type, status, count(*) AS n FROM jobs GROUP BY type, status")
                )
            }
            running = [
                row_job(r)
                for r in conn.execute(
                    text(
                        f"SELECT {COLUMNS} FROM jobs WHERE status IN {OWNED_SQL}"
                        " ORDER BY created_at DESC, id DESC LIMIT :n"
                    ),
                    {"n": running_limit},
                )
            ]
            oldest = conn.execute(
                text(
                    "SELECT created_at FROM jobs WHERE status = 'queued'"
                    " ORDER BY created_at, id LIMIT 1"
                )
            ).scalar()
            failed = {
                str(r.code): int(r.n)
                for r in conn.execute(
                    text(
                        "SELECT coalesce(error->>'code', 'unknown') AS code, count(*) AS n"
                        " FROM jobs WHERE status = 'failed'"
                        " AND finished_at >= now() - interval '24 hours'"
                        " GROUP BY 1 ORDER BY 2 DESC"
                    )
                )
            }
        running_total = sum(n for (_, s), n in counts.items() if s in ("running", "cancelling"))
        return Overview(
            counts=counts,
            running=running,
            running_total=running_total,
            oldest_queued_at=oldest,
            failed_last_day=failed,
            now=now,
        )
