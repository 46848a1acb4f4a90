"""A frozen worker (SPEC 5, 8), with real processes: SIGSTOP past its lease while a second
worker takes the job over as attempt 2, then SIGCONT.

The job must succeed exactly once, from attempt 2; the woken attempt must write nothing
(no status, no progress, no file in the published location, no cleanup of attempt 2's
work); and the result must be complete and correct. An export is woken while attempt 2 is
still working; an import is frozen inside its apply transaction, holding its account's
lock, and attempt 2 must finish while the first worker is still frozen.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from shared.jobs.store import JobStore
from shared.keys import Keys
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.seed import seed_timeline
from tests.archive_check import check_archive
from tests.e2e.harness import Process, Stack, wait_for
from tests.e2e.import_helpers import (
    digest,
    export_zip,
    new_account,
    record_counts,
    records,
    seed,
    staging_tables,
    start_import,
)
from tests.e2e.test_cancel import events, leftovers, start_export, throttle

pytestmark = pytest.mark.e2e
SAMPLE_FILES = 8


class _Channel:
    """Every event published on one job's Redis channel, with when it arrived."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self.client = redis.Redis.from_url(settings.redis_url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(Keys(settings.redis_prefix).channel(job_id))
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message is not None:
                self.events.append((time.monotonic(), json.loads(message["data"])))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def frozen_workers(stack: Stack) -> Iterator[list[Process]]:
    """Workers a test froze: woken before the stack stops them, whatever happened."""
    frozen: list[Process] = []
    yield frozen
    for process in frozen:
        if process.alive():
            os.killpg(process.popen.pid, signal.SIGCONT)


def test_given_a_worker_frozen_past_its_lease_when_woken_then_it_writes_nothing(
    stack: Stack,
    settings: Settings,
    engine: Engine,
    account: tuple[Account, str],
    frozen_workers: list[Process],
) -> None:
    person, token = account
    seed_timeline(
        settings.database_url,
        person.id,
        days=7 * SAMPLE_FILES,
        samples_per_day=100,
        seed=23,
        start=datetime(2024, 1, 1, tzinfo=UTC),
    )
    throttle(stack, 800)
    stack.start_web()
    stack.start_scheduler()
    first = stack.start_worker()
    api = stack.api(token)
    store = JobStore(engine)
    job_id = start_export(api)
    channel = _Channel(settings, job_id)

    def sample_files(job_attempt: int | None = None) -> int:
        job = store.get(job_id)
        if job_attempt is not None and job.attempt != job_attempt:
            return 0
        files = (job.checkpoint or {}).get("files", {})
        return len([path for path in files if path.startswith("samples/")])

    try:
        wait_for(lambda: sample_files(1) >= 2, timeout=60, interval=0.05, what="2 sample files")
        os.killpg(first.popen.pid, signal.SIGSTOP)
        frozen_workers.append(first)
        frozen_at = time.monotonic()
        history_at_freeze = len(events(engine, job_id))
        stack.start_worker()

        # The sweeper finds the lease expired and queues attempt 2; the second worker
        # resumes from attempt 1's files and gets a sample file further.
        resumed_with = wait_for(
            lambda: store.get(job_id).attempt == 2 and sample_files(2),
            timeout=60,
            interval=0.05,
            what="attempt 2 to resume",
        )
        wait_for(
            lambda: sample_files(2) > resumed_with, timeout=60, interval=0.05, what="a new file"
        )
        assert store.get(job_id).status == "running", "attempt 2 finished before the wake-up"
        assert time.monotonic() - frozen_at > settings.lease_seconds
        woken_at = time.monotonic()
        os.killpg(first.popen.pid, signal.SIGCONT)

        job = api.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=90)
        wait_for(
            lambda: "lost its lease" in first.text(), timeout=30, what="the woken attempt to stop"
        )
    finally:
        channel.close()

    # Succeeded once, by attempt 2, which was never disturbed (no retry, no rewrite).
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2
    history = events(engine, job_id)
    kinds = [e["kind"] for e in history]
    assert kinds.count("succeeded") == 1 and kinds.count("retry_scheduled") == 0, kinds
    assert [e["attempt"] for e in history if e["kind"] == "claimed"] == [1, 2]
    # Attempt 1 wrote nothing after it was frozen: the only later line about it is the
    # sweeper's "interrupted".
    later = [(e["attempt"], e["kind"]) for e in history[history_at_freeze:]]
    assert [k for a, k in later if a == 1] == ["interrupted"], later
    # Nothing of it on the job's channel once woken: no status, no (older) progress.
    after_wake = [event for at, event in channel.events if at >= woken_at]
    assert [e for e in after_wake if e["type"] == "status" and e["attempt"] == 1] == []
    progress = [e["progress"]["overall"] for e in after_wake if e["type"] == "progress"]
    assert progress == sorted(progress), f"progress went back after the wake-up: {progress}"
    # Only attempt 2 published; the download is complete and equals the account.
    published = sorted(p.name for p in (settings.storage_root / "exports" / job_id).iterdir())
    assert published == ["2"]
    download = api.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200
    check_archive(download.content, settings.database_url, person.id, job_id=job_id)
    assert first.alive(), "the woken worker should carry on serving"


@pytest.mark.parametrize("flow", ["previewed", "confirmed"])
def test_given_an_import_frozen_in_its_apply_when_taken_over_then_attempt_2_finishes_alone(
    stack: Stack,
    engine: Engine,
    account: tuple[Account, str],
    frozen_workers: list[Process],
    flow: str,
) -> None:
    """The frozen attempt's transaction holds the account's import lock: the sweeper ends
    its database session when it takes the job, so attempt 2 applies at once; the records
    land exactly once, and the woken worker changes nothing.

    `previewed`: frozen in the apply of what was staged before the confirmation.
    `confirmed` (confirm=true into an account without samples): the apply's transaction
    opens before the samples are validated, which go straight into `samples`
    (shared/archive/direct.py); frozen while they are written."""
    settings = stack.settings
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    throttle(stack, 500)
    stack.start_web()
    stack.start_scheduler()
    first = stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    counts = record_counts(content)
    if flow == "previewed":
        job_id = start_import(api, content)
        assert api.wait_status(job_id, {"awaiting_confirmation"}, timeout=60)
        assert api.post(f"/jobs/{job_id}/confirm").status_code == 202
        phase, past = "apply", 0
    else:
        job_id = start_import(api, content, confirm="true")
        # Places and items are validated first; past them, samples are being written.
        phase, past = "validate", counts["places"] + counts["items"] + 100

    def applying() -> bool:
        job = api.job(job_id)  # with the live progress
        assert job["status"] in ("queued", "running"), job["status"]
        progress = job["progress"] or {}
        return progress.get("phase") == phase and progress.get("phase_done", 0) > past

    wait_for(applying, timeout=60, interval=0.05, what="the apply to be under way")
    os.killpg(first.popen.pid, signal.SIGSTOP)
    frozen_workers.append(first)
    stack.start_worker()

    job = api.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=90)

    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2
    assert records(settings, target.id) == records(settings, source.id)
    assert staging_tables(engine) == []
    assert leftovers(settings, job_id) == []
    before_wake = (digest(engine, target.id), events(engine, job_id), api.job(job_id))
    os.killpg(first.popen.pid, signal.SIGCONT)
    wait_for(lambda: "lost its lease" in first.text(), timeout=30, what="the woken attempt to stop")
    after_wake = (digest(engine, target.id), events(engine, job_id), api.job(job_id))
    assert after_wake == before_wake
    kinds = [e["kind"] for e in after_wake[1]]
    assert kinds.count("succeeded") == 1 and kinds.count("interrupted") == 1, kinds
