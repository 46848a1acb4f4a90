"""The sweeper (SPEC 8): interrupted attempts, lost messages, expired downloads, leftovers.

Time is moved by rewriting timestamps in SQL, never by sleeping. The sweeper's settings
use a long lease and sweep interval, so a job the test did not age is plainly fresh.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from shared.errors import Gone
from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.store import Job, JobStore
from shared.jobs.sweeper import Sweeper
from shared.params import ImportArchiveParams
from shared.pipelines import PIPELINES
from shared.service import JobService
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.db import attempt_session_name, raw_connection
from shared.store.storage import LocalStorage
from tests.integration.fakes import FAKE_TYPE, CountingPipeline, wait_for

EXPORT = "export.archive"


@dataclass
class Rig:
    """A sweeper and what it works on, in this test's own database and folder."""

    settings: Settings
    engine: Engine
    account: Account
    store: JobStore
    live: MemoryLiveStore
    storage: LocalStorage
    publisher: RecordingPublisher
    sweeper: Sweeper

    def job(self, type: str = EXPORT) -> Job:
        job, _ = self.store.create(account_id=self.account.id, type=type, params={})
        return job

    def running(self, type: str = EXPORT) -> Job:
        job = self.store.claim(self.job(type).id, worker="lost-worker")
        assert job is not None
        return job

    def sql(self, statement: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(statement), params)

    def age_heartbeat(self, job_id: str) -> None:
        self.sql(
            "UPDATE jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = :id", id=job_id
        )

    def age_queue(self, job_id: str) -> None:
        self.sql("UPDATE jobs SET queued_at = now() - interval '1 hour' WHERE id = :id", id=job_id)

    def leave_work(self, job_id: str, attempt: int = 1) -> Path:
        path = self.storage.work_dir(job_id, attempt) / "partial.json"
        path.write_bytes(b"[")
        return path

    def leave_output(self, job_id: str, name: str = "export.zip", attempt: int = 1) -> Path:
        # Written next to storage's areas (same file system), then published by rename.
        source = self.storage.root / "staging" / uuid.uuid4().hex
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(b"PK zip bytes")
        return self.storage.path(self.storage.publish(job_id, attempt, source, name))

    def leave_upload(self, job_id: str) -> Path:
        path = self.storage.upload_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK upload")
        return path

    def has_files(self, job_id: str) -> list[str]:
        root = self.storage.root
        return [area for area in ("work", "exports", "uploads") if (root / area / job_id).exists()]

    def snapshot(self) -> list[Any]:
        with self.engine.connect() as conn:
            jobs = conn.execute(text("SELECT * FROM jobs ORDER BY id")).all()
            events = conn.execute(text("SELECT count(*) FROM job_events")).scalar_one()
        files = sorted(str(p.relative_to(self.storage.root)) for p in self.storage.root.rglob("*"))
        return [jobs, events, files]


@pytest.fixture
def rig(settings: Settings, engine: Engine, account: tuple[Account, str]) -> Iterator[Rig]:
    # A long lease and interval: only what a test ages on purpose is stale.
    slow = settings.with_overrides(lease_seconds=60.0, sweep_seconds=60.0)
    storage = LocalStorage(slow.storage_root)
    live = MemoryLiveStore()
    publisher = RecordingPublisher()
    yield Rig(
        settings=slow,
        engine=engine,
        account=account[0],
        store=JobStore(engine),
        live=live,
        storage=storage,
        publisher=publisher,
        sweeper=Sweeper(
            pipelines=PIPELINES,
            settings=slow,
            engine=engine,
            live=live,
            storage=storage,
            publisher=publisher,
        ),
    )


# --- interrupted attempts ---------------------------------------------------------------


def test_given_a_running_job_without_heartbeat_when_swept_then_it_is_queued_as_the_next_attempt(
    rig: Rig,
) -> None:
    lost = rig.running()
    rig.age_heartbeat(lost.id)
    work = rig.leave_work(lost.id)
    healthy = rig.running()

    report = rig.sweeper.sweep()

    again = rig.store.get(lost.id)
    assert again.status == "queued" and again.attempt == 2
    assert report.requeued == [lost.id]
    assert rig.publisher.job_ids() == [lost.id]
    assert rig.store.history(lost.id)[-1].kind == "interrupted"
    # A resumed export keeps what the interrupted attempt finished (SPEC 8).
    assert work.is_file()
    assert rig.store.get(healthy.id).status == "running"
    assert rig.store.get(healthy.id).attempt == 1


def test_given_a_requeued_job_when_a_worker_gets_it_then_the_next_attempt_runs_to_success(
    rig: Rig,
) -> None:
    lost = rig.running(FAKE_TYPE)
    rig.age_heartbeat(lost.id)
    rig.sweeper.sweep()
    runner = JobRunner(
        settings=rig.settings,
        engine=rig.engine,
        live=rig.live,
        storage=rig.storage,
        publisher=rig.publisher,
        pipelines={FAKE_TYPE: CountingPipeline()},
    )

    assert runner.run(lost.id) == "succeeded"
    assert rig.store.get(lost.id).attempt == 2


def test_given_the_last_attempt_stopped_heartbeating_when_swept_then_it_fails_as_interrupted(
    rig: Rig,
) -> None:
    lost = rig.running()
    rig.sql(
        "UPDATE jobs SET attempt = :n, heartbeat_at = now() - interval '1 hour' WHERE id = :id",
        n=rig.settings.max_attempts,
        id=lost.id,
    )
    rig.leave_work(lost.id, attempt=2)
    rig.leave_work(lost.id, attempt=3)
    rig.leave_output(lost.id)

    report = rig.sweeper.sweep()

    failed = rig.store.get(lost.id)
    assert failed.status == "failed" and failed.attempt == rig.settings.max_attempts
    assert failed.error is not None and failed.error["code"] == "interrupted"
    assert failed.finished_at is not None and failed.checkpoint is None
    assert report.failed == [lost.id]
    assert rig.has_files(lost.id) == []
    assert rig.publisher.published == []


def test_given_a_cancelling_job_whose_worker_died_when_swept_then_it_is_cancelled_and_cleaned(
    rig: Rig,
) -> None:
    job = rig.running()
    rig.store.request_cancel(job.id)
    rig.age_heartbeat(job.id)
    rig.leave_work(job.id)

    report = rig.sweeper.sweep()

    done = rig.store.get(job.id)
    assert done.status == "cancelled" and done.finished_at is not None
    assert done.error is None
    assert report.cancelled == [job.id]
    assert rig.has_files(job.id) == []
    assert rig.publisher.published == []


def test_given_a_cancelling_job_with_a_live_worker_when_swept_then_it_is_left_to_the_worker(
    rig: Rig,
) -> None:
    job = rig.running()
    rig.store.request_cancel(job.id)
    rig.leave_work(job.id)

    rig.sweeper.sweep()

    assert rig.store.get(job.id).status == "cancelling"
    assert rig.has_files(job.id) == ["work"]


# --- lost messages ----------------------------------------------------------------------


def test_given_a_queued_job_nobody_claimed_when_swept_then_it_is_published_once_per_interval(
    rig: Rig,
) -> None:
    stale = rig.job()
    rig.age_queue(stale.id)
    fresh = rig.job()

    first = rig.sweeper.sweep()
    second = rig.sweeper.sweep()

    assert first.republished == [stale.id]
    assert second.republished == []
    assert rig.publisher.job_ids() == [stale.id]
    assert rig.store.get(stale.id).status == "queued"
    assert fresh.id not in rig.publisher.job_ids()

    # Another interval passes and still nobody claimed it.
    rig.age_queue(stale.id)
    third = rig.sweeper.sweep()
    assert third.republished == [stale.id]
    assert rig.publisher.job_ids() == [stale.id, stale.id]


def test_given_messages_waiting_in_the_queue_when_swept_then_queued_jobs_wait_longer(
    rig: Rig,
) -> None:
    """Busy workers: a queued job's message is most likely in line, not lost."""
    waiting = {"messages": 3}
    sweeper = Sweeper(
        pipelines=PIPELINES,
        settings=rig.settings,
        engine=rig.engine,
        live=rig.live,
        storage=rig.storage,
        publisher=rig.publisher,
        backlog=lambda: waiting["messages"],
    )
    job = rig.job()
    # Two sweep intervals old: stale for an empty queue, not for a busy one.
    rig.sql("UPDATE jobs SET queued_at = now() - interval '2 minutes' WHERE id = :id", id=job.id)

    assert sweeper.sweep().republished == []

    # The queue empties (Redis restarted empty, say): the same age is enough now.
    waiting["messages"] = 0
    assert sweeper.sweep().republished == [job.id]
    assert rig.publisher.job_ids() == [job.id]


def test_given_a_queued_retry_waiting_out_its_delay_when_swept_then_it_is_not_published_early(
    rig: Rig,
) -> None:
    waiting = rig.job()
    rig.sql(
        "UPDATE jobs SET queued_at = now() - interval '1 hour',"
        " not_before = now() + interval '1 hour' WHERE id = :id",
        id=waiting.id,
    )

    report = rig.sweeper.sweep()

    assert report.republished == []
    assert rig.publisher.published == []
    assert rig.store.get(waiting.id).status == "queued"

    rig.sql("UPDATE jobs SET not_before = now() - interval '1 s' WHERE id = :id", id=waiting.id)
    assert rig.sweeper.sweep().republished == [waiting.id]


# --- expired downloads ------------------------------------------------------------------


def _succeeded_export(rig: Rig, *, expires_at: str) -> tuple[Job, Path]:
    job = rig.running()
    file = rig.leave_output(job.id)
    result = {
        "download_url": f"/api/v1/jobs/{job.id}/download",
        "key": file.relative_to(rig.storage.root).as_posix(),
        "name": "export.zip",
        "bytes": file.stat().st_size,
        "expires_at": expires_at,
    }
    done = rig.store.succeed(job.id, job.attempt, result=result, progress={"overall": 1.0})
    return done, file


def test_given_a_download_past_its_retention_when_swept_then_the_file_goes_and_download_is_gone(
    rig: Rig,
) -> None:
    expired, expired_file = _succeeded_export(rig, expires_at="2020-01-01T00:00:00Z")
    current, current_file = _succeeded_export(rig, expires_at="2999-01-01T00:00:00Z")
    service = JobService(
        pipelines=PIPELINES,
        settings=rig.settings,
        engine=rig.engine,
        live=rig.live,
        storage=rig.storage,
        publisher=rig.publisher,
    )

    report = rig.sweeper.sweep()

    assert report.expired_downloads == [expired.id]
    assert not expired_file.exists()
    after = rig.store.get(expired.id)
    assert after.status == "succeeded"
    assert after.result is not None and after.result.get("expired_at")
    assert after.result["name"] == "export.zip"
    with pytest.raises(Gone):
        service.download(expired.id, account_id=rig.account.id)
    # The one still within its retention is untouched and downloadable.
    assert current_file.is_file()
    download = service.download(current.id, account_id=rig.account.id)
    assert download.path.read_bytes() == b"PK zip bytes"


# --- leftovers --------------------------------------------------------------------------


def test_given_files_of_finished_and_unknown_jobs_when_swept_then_only_live_jobs_keep_theirs(
    rig: Rig,
) -> None:
    failed = rig.running()
    rig.store.fail(failed.id, failed.attempt, error={"code": "bad_archive", "message": "x"})
    cancelled = rig.store.request_cancel(rig.job().id)
    succeeded, _ = _succeeded_export(rig, expires_at="2999-01-01T00:00:00Z")
    unknown = str(uuid.uuid4())
    queued = rig.job()
    running = rig.running()
    awaiting = rig.running("import.archive")
    rig.store.await_confirmation(awaiting.id, awaiting.attempt, preview={"places": 1})

    for job_id in (failed.id, cancelled.id, unknown):
        rig.leave_work(job_id)
        rig.leave_output(job_id)
        rig.leave_upload(job_id)
    rig.leave_work(succeeded.id)
    for job_id in (queued.id, running.id):
        rig.leave_work(job_id)
    rig.leave_upload(awaiting.id)
    rig.leave_work(awaiting.id)

    report = rig.sweeper.sweep()

    # A failed or cancelled import keeps its upload for a restart (SPEC 8), for now.
    for ended in (failed.id, cancelled.id):
        assert rig.has_files(ended) == ["uploads"], ended
    assert rig.has_files(unknown) == []
    assert rig.has_files(succeeded.id) == ["exports"]
    assert rig.has_files(queued.id) == ["work"]
    assert rig.has_files(running.id) == ["work"]
    assert rig.has_files(awaiting.id) == ["work", "uploads"]
    assert sorted(report.removed_work) == sorted([failed.id, cancelled.id, unknown, succeeded.id])
    assert sorted(report.removed_outputs) == sorted([failed.id, cancelled.id, unknown])
    assert report.removed_uploads == [unknown]


def test_given_an_ended_job_when_its_upload_retention_passes_then_the_sweeper_removes_it(
    rig: Rig,
) -> None:
    """SPEC 8: a failed or cancelled import's upload lives FERRY_UPLOAD_RETENTION_HOURS
    after it ended (by the database's clock), then goes; a live one's stays."""
    hours = rig.settings.upload_retention_hours
    failed = rig.running("import.archive")
    rig.store.fail(failed.id, failed.attempt, error={"code": "bad_archive", "message": "x"})
    cancelled = rig.store.request_cancel(rig.job("import.archive").id)
    fresh = rig.store.request_cancel(rig.job("import.archive").id)
    queued = rig.job("import.archive")
    for job in (failed, cancelled, fresh, queued):
        rig.leave_upload(job.id)
    for job in (failed, cancelled, queued):
        rig.sql(
            "UPDATE jobs SET finished_at = now() - make_interval(secs => :s),"
            " created_at = now() - make_interval(secs => :s) WHERE id = :id",
            s=(hours + 0.01) * 3600,
            id=job.id,
        )

    report = rig.sweeper.sweep()

    assert sorted(report.removed_uploads) == sorted([failed.id, cancelled.id])
    assert rig.has_files(failed.id) == rig.has_files(cancelled.id) == []
    assert rig.has_files(fresh.id) == ["uploads"]
    assert rig.has_files(queued.id) == ["uploads"]


def test_given_a_sweep_just_ran_when_it_runs_again_then_nothing_changes(rig: Rig) -> None:
    lost = rig.running()
    rig.age_heartbeat(lost.id)
    last = rig.running()
    rig.sql(
        "UPDATE jobs SET attempt = :n, heartbeat_at = now() - interval '1 hour' WHERE id = :id",
        n=rig.settings.max_attempts,
        id=last.id,
    )
    rig.age_queue(rig.job().id)
    _succeeded_export(rig, expires_at="2020-01-01T00:00:00Z")
    rig.leave_work(str(uuid.uuid4()))
    assert rig.sweeper.sweep().any()
    published = list(rig.publisher.published)
    before = rig.snapshot()

    again = rig.sweeper.sweep()

    assert not again.any(), again
    assert rig.snapshot() == before
    assert rig.publisher.published == published


def test_given_an_import_never_confirmed_for_a_day_when_swept_then_it_is_cancelled_and_cleaned(
    rig: Rig,
) -> None:
    old = rig.running("import.archive")
    rig.store.await_confirmation(old.id, old.attempt, preview={"places": 1})
    rig.sql(
        "UPDATE jobs SET updated_at = now() - make_interval(secs => :h * 3600) WHERE id = :id",
        h=rig.settings.upload_retention_hours + 1,
        id=old.id,
    )
    rig.leave_upload(old.id)
    recent = rig.running("import.archive")
    rig.store.await_confirmation(recent.id, recent.attempt, preview={"places": 1})
    rig.leave_upload(recent.id)

    rig.leave_work(old.id)

    report = rig.sweeper.sweep()

    assert report.expired_unconfirmed == [old.id]
    assert rig.store.get(old.id).status == "cancelled"
    # Its work goes; its upload stays as any cancelled import's does, for a restart.
    assert rig.has_files(old.id) == ["uploads"]
    assert rig.store.get(recent.id).status == "awaiting_confirmation"
    assert rig.has_files(recent.id) == ["uploads"]


def test_given_an_old_import_confirmed_while_the_sweeper_runs_then_it_is_not_cancelled(
    rig: Rig,
) -> None:
    """The sweeper's "unconfirmed for a day" and the user's confirm race on one row: the
    confirm commits while the sweep waits for the row, and the confirmed import stays."""
    old = rig.running("import.archive")
    rig.store.await_confirmation(old.id, old.attempt, preview={"places": 1})
    rig.sql(
        "UPDATE jobs SET updated_at = now() - make_interval(secs => :h * 3600) WHERE id = :id",
        h=rig.settings.upload_retention_hours + 1,
        id=old.id,
    )
    # The user's confirm, its transaction not yet committed (it holds the row).
    confirming = rig.engine.connect()
    confirming.begin()
    confirming.execute(
        text("UPDATE jobs SET status = 'queued', updated_at = now() WHERE id = :id"),
        {"id": old.id},
    )
    sweep: dict[str, Any] = {}
    sweeper = threading.Thread(target=lambda: sweep.update(report=rig.sweeper.sweep()))
    sweeper.start()
    wait_for(
        lambda: _waits_for_a_lock(rig.engine), timeout=10, what="the sweep to wait for the row"
    )

    confirming.commit()
    confirming.close()
    sweeper.join(timeout=30)

    assert sweep["report"].expired_unconfirmed == []
    assert rig.store.get(old.id).status == "queued"
    assert "cancel_requested" not in [e.kind for e in rig.store.history(old.id)]


def _waits_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)


def test_given_a_late_heartbeat_when_the_sweeper_acts_on_what_it_saw_then_the_worker_keeps_it(
    rig: Rig,
) -> None:
    """The sweeper's decision holds only if the lease is still the one it judged expired."""
    slow = rig.running()
    rig.age_heartbeat(slow.id)
    [seen] = rig.store.expired_leases(rig.settings.lease_seconds)
    assert rig.store.heartbeat(slow.id, slow.attempt).owned  # the worker was only slow

    assert rig.store.requeue_interrupted(seen) is None
    assert rig.store.fail_interrupted(seen, error={"code": "interrupted"}) is None
    assert rig.store.cancel_expired(seen) is None
    after = rig.store.get(slow.id)
    assert after.status == "running" and after.attempt == 1


# --- races with requests and lost attempts -----------------------------------------------------


class _SweepWhileAdopting(LocalStorage):
    """Storage whose upload adoption is followed at once by a sweep, as if the scheduler
    ran between the two steps of the request."""

    def __init__(self, root: Path, sweeper: Sweeper) -> None:
        super().__init__(root)
        self.sweeper = sweeper
        self.reports: list[Any] = []

    def adopt_upload(self, job_id: str, received: Path) -> int:
        size = super().adopt_upload(job_id, received)
        self.reports.append(self.sweeper.sweep())
        return size


def test_given_an_upload_being_submitted_when_the_sweeper_runs_meanwhile_then_it_is_kept(
    rig: Rig,
) -> None:
    """The sweeper removes uploads that belong to no job: the request must record the
    job before the upload is in place under its id, or the sweep takes it."""
    storage = _SweepWhileAdopting(rig.storage.root, rig.sweeper)
    service = JobService(
        pipelines=PIPELINES,
        settings=rig.settings,
        engine=rig.engine,
        live=rig.live,
        storage=storage,
        publisher=rig.publisher,
    )
    with storage.incoming_file() as received:
        received.write(b"PK an archive")

    job = service.submit_import(
        rig.account.id,
        received=Path(received.name),
        filename="archive.zip",
        params=ImportArchiveParams(),
    )

    assert [r.removed_uploads for r in storage.reports] == [[]]
    assert storage.upload_path(job.id).read_bytes() == b"PK an archive"
    assert rig.store.get(job.id).status == "queued"
    assert [published for published, _ in rig.publisher.published] == [job.id]


def test_given_a_lost_attempt_holding_a_lock_when_swept_then_its_sessions_are_ended(
    rig: Rig,
) -> None:
    """A frozen worker's open transaction (an import's apply holds its account's lock) is
    ended when the sweeper takes the job from it, so the next attempt does not wait."""
    lost = rig.running("import.archive")
    lock = "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 7))"
    with raw_connection(
        rig.settings.database_url, name=attempt_session_name(lost.id, lost.attempt)
    ) as frozen:
        assert frozen.execute(lock, (rig.account.id,)).fetchone() == (True,)
        unrelated = rig.running()  # a healthy job's session must survive
        with raw_connection(
            rig.settings.database_url, name=attempt_session_name(unrelated.id, 1)
        ) as healthy:
            healthy.execute("SELECT 1")
            rig.age_heartbeat(lost.id)

            report = rig.sweeper.sweep()

            assert report.requeued == [lost.id]
            with pytest.raises(psycopg.OperationalError):
                frozen.execute("SELECT 1")
            assert healthy.execute("SELECT 1").fetchone() == (1,)
    with raw_connection(rig.settings.database_url) as next_attempt:
        assert next_attempt.execute(lock, (rig.account.id,)).fetchone() == (True,)
