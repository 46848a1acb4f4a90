"""Following a job for a limited time (an SSE stream's lifetime, SPEC 9)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.jobs.follow import follow
from shared.jobs.job import Job
from shared.jobs.live import MemoryLiveStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(status: str) -> Job:
    return Job(
        id="j-1",
        account_id="a-1",
        type="export.archive",
        params={},
        status=status,
        attempt=1,
        first_attempt=1,
        idempotency_key=None,
        created_at=NOW,
        updated_at=NOW,
        queued_at=NOW,
        not_before=None,
        started_at=None,
        heartbeat_at=None,
        finished_at=None,
        cancel_requested_at=None,
        worker=None,
        progress=None,
        checkpoint=None,
        error=None,
        result=None,
        preview=None,
    )


@dataclass
class Source:
    """A job whose status the test sets; the follower reads it like the service."""

    status: str = "queued"

    def get(self, job_id: str) -> Job:
        return job(self.status)

    def view(self, found: Job) -> dict[str, Any]:
        return {"id": found.id, "status": found.status}


def test_given_a_job_that_goes_on_when_followed_for_seconds_then_it_stops_with_reconnect() -> None:
    """Given a queued job and a follower with seconds=0.3, When it runs, Then a snapshot
    comes first and `reconnect` last, soon after the time is up, and never `end`."""
    started = time.monotonic()

    kinds = [u.kind for u in follow(Source(), MemoryLiveStore(), "j-1", quiet=0.1, seconds=0.3)]

    assert kinds[0] == "snapshot"
    assert kinds[-1] == "reconnect"
    assert "end" not in kinds
    assert 0.3 <= time.monotonic() - started < 5


def test_given_no_time_left_when_followed_then_the_snapshot_still_comes_first() -> None:
    """Given seconds=0, When followed, Then the snapshot, then `reconnect`: a reconnecting
    client always gets the job as it is now."""
    updates = list(follow(Source(), MemoryLiveStore(), "j-1", seconds=0))

    assert [u.kind for u in updates] == ["snapshot", "reconnect"]
    assert updates[0].job == {"id": "j-1", "status": "queued"}


def test_given_a_job_that_ends_in_time_when_followed_then_end_not_reconnect() -> None:
    """Given a job that is cancelled while followed, When its status event arrives, Then
    the follower ends with `end` (cancelled) before its time is up."""
    source, live = Source(), MemoryLiveStore()
    updates = follow(source, live, "j-1", quiet=0.1, seconds=30)
    assert next(updates).kind == "snapshot"

    source.status = "cancelled"
    live.announce("j-1", {"type": "status", "status": "cancelled", "attempt": 1})
    rest = list(updates)

    assert rest[-1].kind == "end"
    assert rest[-1].job == {"id": "j-1", "status": "cancelled"}
    assert "reconnect" not in [u.kind for u in rest]
