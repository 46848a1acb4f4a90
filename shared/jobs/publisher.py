"""Publishing a job's message to the workers: a Protocol and an in-memory twin.

The Celery implementations live in the entrypoints (`web`, `worker`), which own Celery.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Publisher(Protocol):
    """Puts a job on the queue. The job's row must already be committed."""

    def publish(self, job_id: str, *, countdown: float | None = None) -> None:
        """Ask a worker to run `job_id` (after `countdown` seconds when given)."""


class RecordingPublisher:
    """A `Publisher` that remembers what it was asked to publish (tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: list[tuple[str, float | None]] = []

    def publish(self, job_id: str, *, countdown: float | None = None) -> None:
        """Record the request."""
        with self._lock:
            self.published.append((job_id, countdown))

    def job_ids(self) -> list[str]:
        """Job ids published so far, in order."""
        with self._lock:
            return [job_id for job_id, _ in self.published]
