"""The `jobs` table: the durable record of every job (SPEC 5, 7, 8).

`JobStore` is the one object callers hold; its parts live by concept: `reads` (create,
get, page, history), `leases` (a worker's claim, heartbeat and fenced writes),
`requests` (cancel, restart, confirm), `sweeps` (the sweeper's queries) and `overview`
(the operators' figures).
"""

from __future__ import annotations

from shared.jobs.job import Heartbeat, Job, JobEvent, JobFilter
from shared.jobs.leases import AttemptWrites
from shared.jobs.overview import Overview, OverviewReads
from shared.jobs.requests import JobRequests
from shared.jobs.sweeps import SweepQueries

__all__ = ["Heartbeat", "Job", "JobEvent", "JobFilter", "JobStore", "Overview"]


class JobStore(JobRequests, AttemptWrites, SweepQueries, OverviewReads):
    """Reads and writes `jobs` and `job_events` through one engine."""
