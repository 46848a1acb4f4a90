"""Server-Sent Events of one job (SPEC 9): a snapshot, then changes, until it ends."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from shared.jobs.follow import follow
from shared.jobs.live import LiveStore
from shared.service import JobService


def job_events(service: JobService, live: LiveStore, job_id: str) -> Iterator[str]:
    """The SSE text stream of `job_id` (already checked to belong to the caller)."""
    yield "retry: 3000\n\n"
    for update in follow(service, live, job_id):
        if update.kind == "quiet":
            yield ": keep-alive\n\n"
            continue
        data = {"progress": update.progress} if update.kind == "progress" else {"job": update.job}
        yield f"event: {update.kind}\ndata: {orjson.dumps(data).decode()}\n\n"
