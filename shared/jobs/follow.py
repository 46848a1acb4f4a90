"""Following one job until it ends: what the SSE stream and `ferry jobs watch` show.

Subscribes before reading the snapshot, so no event falls between them. When Redis is
quiet (or was emptied), the job row is re-read every `quiet` seconds, so a status change
still arrives and the stream still ends. A follower given `seconds` stops after that long
with `reconnect` (an SSE stream's lifetime): following again starts from a fresh snapshot,
so nothing that happened in between is missed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from shared.jobs.live import LiveStore, Subscription
from shared.jobs.states import TERMINAL
from shared.jobs.store import Job


class JobSource(Protocol):
    """Where the follower reads a job and its API view (the service)."""

    def get(self, job_id: str) -> Job:
        """The job as the database holds it now."""

    def view(self, job: Job) -> dict[str, Any]:
        """The API's Job object."""


QUIET_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Update:
    """One thing to show: `snapshot`, `progress`, `status`, `quiet`, then `end` (the job
    reached a status in `until`) or `reconnect` (the follower's time is up)."""

    kind: str
    job: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None


def follow(
    service: JobSource,
    live: LiveStore,
    job_id: str,
    *,
    quiet: float = QUIET_SECONDS,
    until: frozenset[str] = TERMINAL,
    seconds: float | None = None,
) -> Iterator[Update]:
    """Updates of `job_id`: a snapshot first, then changes, and `end` at a status in `until`
    (terminal statuses by default), or `reconnect` once `seconds` have passed."""
    deadline = None if seconds is None else time.monotonic() + seconds
    subscription: Subscription | None
    try:
        subscription = live.subscribe(job_id)
    except Exception:
        subscription = None  # Redis down: fall back to reading the row
    try:
        job = service.get(job_id)
        yield Update("snapshot", job=service.view(job))
        last_status = job.status
        while job.status not in until:
            wait = quiet if deadline is None else min(quiet, deadline - time.monotonic())
            if wait <= 0:
                yield Update("reconnect")
                return
            event = None
            if subscription is not None:
                try:
                    event = subscription.next_event(wait)
                except Exception:
                    subscription = None
            else:
                time.sleep(wait)
            if event is not None and event.get("type") == "progress":
                yield Update("progress", progress=event["progress"])
                continue
            job = service.get(job_id)
            if job.status != last_status or event is not None:
                last_status = job.status
                yield Update("status", job=service.view(job))
            else:
                yield Update("quiet")
        yield Update("end", job=service.view(job))
    finally:
        if subscription is not None:
            subscription.close()
