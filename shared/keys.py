"""Redis key names, channel names, TTLs and Celery task names, in one place."""

from __future__ import annotations

from dataclasses import dataclass

TASK_RUN_JOB = "ferry.run_job"
TASK_SWEEP = "ferry.sweep"

PROGRESS_TTL_SECONDS = 7 * 24 * 3600
CANCEL_TTL_SECONDS = 24 * 3600
# An open SSE stream renews its slot at least every third of this; a slot whose web
# process died lapses after it.
STREAM_SLOT_TTL_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Keys:
    """Key and channel names under one prefix, so tests and tenants never collide."""

    prefix: str = "ferry"

    def progress(self, job_id: str) -> str:
        """The live progress snapshot of a job (JSON string)."""
        return f"{self.prefix}:job:{job_id}:progress"

    def cancel(self, job_id: str) -> str:
        """Set while a job's cancel is requested."""
        return f"{self.prefix}:job:{job_id}:cancel"

    def channel(self, job_id: str) -> str:
        """Pub/sub channel of a job's progress and status events."""
        return f"{self.prefix}:job:{job_id}:events"

    def streams(self, account_id: str) -> str:
        """Sorted set of an account's open SSE streams, each scored by when its slot lapses."""
        return f"{self.prefix}:account:{account_id}:streams"
