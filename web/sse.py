"""Server-Sent Events of one job (SPEC 9): a snapshot, then changes, until it ends.

Event ids count the events a client has received about the job: a stream numbers its
events on from the `Last-Event-ID` it was opened with (from 1 without one), so ids only
grow across reconnects. The server keeps no history to replay: a reconnect starts with a
fresh `snapshot` (the job as it is now), which stands in for anything missed meanwhile.
A stream lives at most `FERRY_STREAM_SECONDS`; then it closes without `end`, and the
client reconnects (EventSource does so by itself, sending `Last-Event-ID`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson

from shared.jobs.follow import follow
from shared.jobs.live import LiveStore
from shared.service import JobService
from web.streams import Slot

RETRY_MS = 3000
_EVENT_ID = re.compile(r"\d{1,15}")


def resume_after(last_event_id: str | None) -> int:
    """The id a reconnecting client saw last (0 when none, or not one of Ferry's ids)."""
    value = (last_event_id or "").strip()
    return int(value) if _EVENT_ID.fullmatch(value) else 0


def job_events(
    service: JobService,
    live: LiveStore,
    job_id: str,
    *,
    after: int,
    seconds: float,
    slot: Slot,
) -> Iterator[str]:
    """The SSE text stream of `job_id` (already checked to belong to the caller), with ids
    from `after + 1`, for at most `seconds`; renews the stream's `slot` while it runs and
    gives it back before its last chunk."""
    yield f"retry: {RETRY_MS}\n\n"
    event_id = after
    for update in follow(service, live, job_id, seconds=seconds):
        if update.kind in ("end", "reconnect"):
            # Before the last chunk: a client that reconnects (or follows another job) at
            # once must find the slot free, not race the server's close.
            slot.release()
        else:
            slot.refresh()
        if update.kind == "quiet":
            yield ": keep-alive\n\n"
            continue
        if update.kind == "reconnect":
            yield ": stream lifetime reached; reconnect with Last-Event-ID\n\n"
            return
        event_id += 1
        data = {"progress": update.progress} if update.kind == "progress" else {"job": update.job}
        yield f"id: {event_id}\nevent: {update.kind}\ndata: {orjson.dumps(data).decode()}\n\n"
