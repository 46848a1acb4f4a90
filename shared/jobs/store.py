"""The `jobs` table: the durable record of every job (SPEC 5, 7, 8).

`JobStore` is the one object callers hold; its parts live by concept: `reads` (create,
get, page, history), `leases` (a worker's claim, heartbeat and fenced writes),
`requests` (cancel, restart, confirm) and `sweeps` (the sweeper's queries).
"""

from __future__ import annotations

from shared.jobs.job import Heartbeat, Job, JobEvent, JobFilter
from shared.jobs.leases import AttemptWrites
from shared.jobs.requests import JobRequests
from shared.jobs.sweeps import SweepQueries

__all__ = ["Heartbeat", "Job", "JobEvent", "JobFilter", "JobStore"]


class JobStore(JobRequests, AttemptWrites, SweepQueries):
    """Reads and writes `jobs` and `job_events` through one engine."""
