"""One delivery of a job through `JobRunner` (SPEC 5, 6, 7), in-process on real PostgreSQL.

Pipelines are the small fakes of `tests.integration.fakes`, except for the last tests,
which run the real archive export and cancel it mid-way.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, text

from shared.errors import LeaseLost, StorageError, ValidationFailed
from shared.jobs.attempt import JobContext
from shared.jobs.live import MemoryLiveStore
from shared.jobs.pipeline import AwaitConfirmation, Outcome, Pipeline
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.store import Heartbeat, Job, JobStore
from shared.pipelines import PIPELINES
from shared.service import JobService
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.seed import seed_timeline
from shared.store.storage import LocalStorage
from shared.timefmt import parse_iso
from tests.integration.fakes import (
    FAKE_TYPE,
    AwaitingPipeline,
    CountingPipeline,
    EndlessPipeline,
    FailingPipeline,
    GatedPipeline,
    HeldPipeline,
    LateCancelPipeline,
    LateOutputPipeline,
    wait_for,
)

# SPEC 7: 95 % of running jobs reach `cancelled`, cleanup done, within 1 s of the request.
CANCEL_TARGET_SECONDS = 1.0


@dataclass
class Rig:
    """The collaborators of a worker process, all in this test's own database and folder."""

    settings: Settings
    engine: Engine
    account: Account
    store: JobStore
    live: MemoryLiveStore
    storage: LocalStorage
    publisher: RecordingPublisher
    threads: list[threading.Thread] = field(default_factory=list)

    def runner(self, pipeline: Pipeline | None, *, name: str = "worker-1") -> JobRunner:
        """A runner whose only pipeline is `pipeline` (for FAKE_TYPE jobs)."""
        return JobRunner(
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
            pipelines={} if pipeline is None else {FAKE_TYPE: pipeline},
            name=name,
        )

    def service(self) -> JobService:
        """What the web API calls."""
        return JobService(
            pipelines=PIPELINES,
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
        )

    def job(self, type: str = FAKE_TYPE, params: dict[str, Any] | None = None) -> Job:
        """A queued job of this account."""
        job, _ = self.store.create(account_id=self.account.id, type=type, params=params or {})
        return job

    def start(self, runner: JobRunner, job_id: str) -> dict[str, Any]:
        """Run one delivery in a thread; the returned dict gets `status` when it ends."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            outcome["status"] = runner.run(job_id)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)
        outcome["thread"] = thread
        return outcome

    def has_files(self, job_id: str) -> list[str]:
        """What storage still holds for the job, in any area."""
        root = self.storage.root
        return [
            str(path.relative_to(root))
            for area in ("work", "exports", "uploads")
            if (root / area / job_id).exists()
            for path in [root / area / job_id, *(root / area / job_id).rglob("*")]
        ]


@pytest.fixture
def rig(settings: Settings, engine: Engine, account: tuple[Account, str]) -> Iterator[Rig]:
    made = Rig(
        settings=settings,
        engine=engine,
        account=account[0],
        store=JobStore(engine),
        live=MemoryLiveStore(),
        storage=LocalStorage(settings.storage_root),
        publisher=RecordingPublisher(),
    )
    yield made
    for thread in made.threads:
        thread.join(timeout=30)


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _wait_status(store: JobStore, job_id: str, status: str, timeout: float = 20.0) -> Job:
    def reached() -> Job | None:
        job = store.get(job_id)
        return job if job.status == status else None

    found = wait_for(reached, timeout=timeout, interval=0.01, what=f"job {job_id} to be {status}")
    assert found is not None
    return found


# --- success ----------------------------------------------------------------------------


def test_given_a_pipeline_that_finishes_when_run_then_the_job_succeeds_with_its_result(
    rig: Rig,
) -> None:
    pipeline = CountingPipeline(rows=50)
    job = rig.job()

    status = rig.runner(pipeline).run(job.id)

    assert status == "succeeded"
    done = rig.store.get(job.id)
    assert done.status == "succeeded" and done.attempt == 1 and done.finished_at is not None
    assert done.result == {"rows": 50, "note": "counted"}
    assert done.error is None
    assert done.progress is not None
    assert done.progress["overall"] == 1.0
    assert done.progress["rows_done"] == done.progress["rows_total"] == 50
    assert done.progress["phase"] == "finalize" and done.progress["phase_index"] == 2
    live = rig.live.get_progress(job.id)
    assert live is not None and live["overall"] == 1.0
    assert rig.publisher.published == []
    assert rig.store.history(job.id)[-1].kind == "succeeded"


def test_given_a_succeeded_job_when_its_message_is_delivered_again_then_nothing_runs(
    rig: Rig,
) -> None:
    pipeline = CountingPipeline()
    job = rig.job()
    runner = rig.runner(pipeline)
    assert runner.run(job.id) == "succeeded"
    before = rig.store.get(job.id)

    again = runner.run(job.id)

    assert again is None
    assert pipeline.calls == 1
    assert rig.store.get(job.id) == before


def test_given_a_running_job_when_a_second_worker_gets_its_message_then_it_does_nothing(
    rig: Rig,
) -> None:
    pipeline = EndlessPipeline()
    job = rig.job()
    first = rig.start(rig.runner(pipeline, name="worker-1"), job.id)
    assert pipeline.started.wait(20)

    duplicate = rig.runner(pipeline, name="worker-2").run(job.id)

    assert duplicate is None
    assert pipeline.calls == 1
    assert rig.store.get(job.id).worker == "worker-1"
    rig.service().cancel(job.id)
    first["thread"].join(timeout=20)
    assert first["status"] == "cancelled"


def test_given_a_pipeline_held_at_each_phase_when_run_then_postgres_has_each_boundary(
    rig: Rig,
) -> None:
    """SPEC 6: a snapshot is written to Postgres at every phase boundary."""
    pipeline = GatedPipeline(rows=40)
    job = rig.job()
    outcome = rig.start(rig.runner(pipeline), job.id)
    seen: list[float] = []

    try:
        # SPEC 6 counts phases from 0 ("samples" is phase_index 3 of 5 in an export).
        for index, phase in enumerate(("prepare", "rows", "finalize")):
            assert pipeline.reached.get(timeout=20) == phase
            progress = rig.store.get(job.id).progress
            assert progress is not None
            assert (progress["phase"], progress["phase_index"], progress["phase_count"]) == (
                phase,
                index,
                3,
            )
            assert 0.0 <= progress["overall"] < 1.0
            seen.append(progress["overall"])
            pipeline.go.put(None)
    finally:
        for _ in range(3):  # never leave the attempt held, whatever failed above
            pipeline.go.put(None)

    outcome["thread"].join(timeout=20)
    assert outcome["status"] == "succeeded"
    assert seen == sorted(seen) and seen[0] < seen[-1]
    assert rig.store.get(job.id).progress["overall"] == 1.0  # type: ignore[index]


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: StorageError("the disk is full"),
        lambda: OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["StorageError", "OSError"],
)
def test_given_a_retryable_error_when_run_then_the_job_is_queued_again_after_a_delay(
    rig: Rig, make_error: Callable[[], BaseException]
) -> None:
    pipeline = FailingPipeline(make_error)
    job = rig.job()

    status = rig.runner(pipeline).run(job.id)

    assert status == "queued"
    again = rig.store.get(job.id)
    assert again.status == "queued" and again.attempt == 2
    assert again.not_before is not None and again.queued_at is not None
    wait = (again.not_before - again.queued_at).total_seconds()
    assert wait > 0, "the retry must wait out its backoff"
    assert again.finished_at is None and again.heartbeat_at is None
    [(published_id, countdown)] = rig.publisher.published
    assert published_id == job.id
    assert countdown is not None and countdown >= wait
    retry = rig.store.history(job.id)[-1]
    assert retry.kind == "retry_scheduled" and retry.detail is not None
    assert retry.detail["code"] == "storage_error"


def test_given_an_error_that_keeps_coming_when_attempts_run_out_then_the_job_fails_clean(
    rig: Rig,
) -> None:
    pipeline = FailingPipeline(lambda: StorageError("the disk is full"))
    job = rig.job()
    runner = rig.runner(pipeline)
    outcomes: list[str] = []

    def deliver() -> bool:
        # Like Celery's countdown: the retry is delivered once its delay has passed.
        status = runner.run(job.id)
        if status is not None:
            outcomes.append(status)
        return status == "failed"

    wait_for(deliver, timeout=30, interval=0.05, what="the last attempt to fail")

    assert outcomes == ["queued", "queued", "failed"]
    assert pipeline.attempts == [1, 2, 3] == list(range(1, rig.settings.max_attempts + 1))
    failed = rig.store.get(job.id)
    assert failed.status == "failed" and failed.attempt == 3
    assert failed.error is not None and failed.error["code"] == "storage_error"
    assert "disk is full" in failed.error["message"]
    assert failed.progress is not None and failed.progress["overall"] < 1.0
    assert rig.has_files(job.id) == []
    assert [j for j, _ in rig.publisher.published] == [job.id, job.id]


def test_given_a_job_restarted_after_its_attempts_ran_out_then_it_gets_a_fresh_retry_budget(
    rig: Rig,
) -> None:
    """An operator restart begins a new run: FERRY_MAX_ATTEMPTS counts from the restart."""
    pipeline = FailingPipeline(lambda: StorageError("the disk is full"))
    job = rig.job()
    runner = rig.runner(pipeline)

    def deliver_until(status: str) -> list[str]:
        seen: list[str] = []

        def step() -> bool:
            outcome = runner.run(job.id)
            if outcome is not None:
                seen.append(outcome)
            return outcome == status

        wait_for(step, timeout=30, interval=0.05, what=f"the job to be {status}")
        return seen

    assert deliver_until("failed") == ["queued", "queued", "failed"]
    restarted = rig.store.restart(job.id, upload_hours=24.0, by="ops")
    assert (restarted.attempt, restarted.first_attempt) == (4, 4)

    # When the restarted run fails the same way, it is retried again, not failed at once.
    assert deliver_until("failed") == ["queued", "queued", "failed"]
    assert pipeline.attempts == [1, 2, 3, 4, 5, 6]
    assert rig.store.get(job.id).attempt == 6


def test_given_a_non_retryable_error_when_run_then_the_job_fails_at_once_and_cleans_up(
    rig: Rig,
) -> None:
    pipeline = FailingPipeline(
        lambda: ValidationFailed("from: not a date", details={"field": "from"})
    )
    job = rig.job()

    status = rig.runner(pipeline).run(job.id)

    assert status == "failed"
    failed = rig.store.get(job.id)
    assert failed.attempt == 1 and failed.finished_at is not None
    assert failed.error == {
        "code": "validation_failed",
        "message": "from: not a date",
        "retryable": False,
    }
    assert pipeline.calls == 1
    assert rig.publisher.published == []
    assert rig.has_files(job.id) == []


def test_given_an_unexpected_exception_when_run_then_the_job_fails_as_internal(rig: Rig) -> None:
    pipeline = FailingPipeline(lambda: KeyError("places"))
    job = rig.job()

    status = rig.runner(pipeline).run(job.id)

    assert status == "failed"
    failed = rig.store.get(job.id)
    assert failed.error is not None
    assert failed.error["code"] == "internal" and failed.error["retryable"] is False
    assert failed.attempt == 1 and pipeline.calls == 1
    assert rig.publisher.published == []
    assert rig.has_files(job.id) == []


def test_given_a_job_type_without_a_pipeline_when_run_then_it_fails_instead_of_hanging(
    rig: Rig,
) -> None:
    job = rig.job(type="export.nothing")

    status = rig.runner(None).run(job.id)

    assert status == "failed"
    failed = rig.store.get(job.id)
    assert failed.error is not None and failed.error["code"] == "internal"


# --- cancel -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["service", "flag_only"])
def test_given_a_running_job_when_cancel_is_asked_then_it_is_cancelled_and_clean_within_1s(
    rig: Rig, how: str
) -> None:
    pipeline = EndlessPipeline()
    job = rig.job()
    outcome = rig.start(rig.runner(pipeline), job.id)
    assert pipeline.started.wait(20)
    assert rig.has_files(job.id), "the fake writes into its work folder"

    asked = time.monotonic()
    if how == "service":
        assert rig.service().cancel(job.id, account_id=rig.account.id).status == "cancelling"
    else:
        rig.live.request_cancel(job.id)
    done = _wait_status(rig.store, job.id, "cancelled")
    took = time.monotonic() - asked

    assert took < CANCEL_TARGET_SECONDS, f"cancel took {took:.2f}s"
    assert rig.has_files(job.id) == []
    outcome["thread"].join(timeout=20)
    assert outcome["status"] == "cancelled"
    assert done.finished_at is not None and done.result is None
    assert not rig.live.cancel_requested(job.id), "the flag is lowered once the job ended"


def test_given_redis_lost_the_flag_when_the_row_says_cancel_then_the_worker_still_stops(
    rig: Rig,
) -> None:
    """SPEC 7: the worker falls back to the jobs row every few seconds."""
    pipeline = EndlessPipeline()
    job = rig.job()
    outcome = rig.start(rig.runner(pipeline), job.id)
    assert pipeline.started.wait(20)

    asked = time.monotonic()
    _sql(
        rig.engine,
        "UPDATE jobs SET status = 'cancelling', cancel_requested_at = now() WHERE id = :id",
        id=job.id,
    )
    _wait_status(rig.store, job.id, "cancelled")
    took = time.monotonic() - asked

    assert not rig.live.cancel_requested(job.id)
    assert took < rig.settings.heartbeat_seconds + CANCEL_TARGET_SECONDS, f"took {took:.2f}s"
    assert rig.has_files(job.id) == []
    outcome["thread"].join(timeout=20)
    assert outcome["status"] == "cancelled"


def test_given_only_cancel_requested_at_in_the_row_when_running_then_the_job_is_cancelled(
    rig: Rig,
) -> None:
    pipeline = EndlessPipeline()
    job = rig.job()
    outcome = rig.start(rig.runner(pipeline), job.id)
    assert pipeline.started.wait(20)

    _sql(rig.engine, "UPDATE jobs SET cancel_requested_at = now() WHERE id = :id", id=job.id)

    _wait_status(rig.store, job.id, "cancelled", timeout=10)
    outcome["thread"].join(timeout=20)
    assert outcome["status"] == "cancelled"
    assert rig.has_files(job.id) == []


def test_given_a_cancel_landing_as_the_work_finishes_when_run_then_the_cancel_wins_clean(
    rig: Rig,
) -> None:
    """A user told "cancelling" must not end up with a succeeded job (SPEC 7)."""
    job = rig.job()

    status = rig.runner(LateCancelPipeline()).run(job.id)

    assert status == "cancelled"
    done = rig.store.get(job.id)
    assert done.status == "cancelled" and done.result is None
    assert rig.has_files(job.id) == []


@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_given_a_pipeline_with_data_outside_storage_when_its_job_ends_badly_then_it_is_discarded(
    rig: Rig, ending: str
) -> None:
    """SPEC 7/8: everything the attempt wrote goes, including what only the pipeline knows
    (an import's staging tables), so the runner must ask the job's own pipeline to discard.
    """
    if ending == "cancelled":
        pipeline: EndlessPipeline | FailingPipeline = EndlessPipeline()
        job = rig.job()
        outcome = rig.start(rig.runner(pipeline), job.id)
        assert isinstance(pipeline, EndlessPipeline) and pipeline.started.wait(20)
        rig.service().cancel(job.id)
        outcome["thread"].join(timeout=20)
        status = outcome["status"]
    else:
        pipeline = FailingPipeline(lambda: ValidationFailed("bad row"))
        job = rig.job()
        status = rig.runner(pipeline).run(job.id)

    assert status == ending
    assert pipeline.discarded == [job.id]


# --- a lost lease -----------------------------------------------------------------------


def test_given_a_worker_whose_lease_was_taken_when_it_keeps_working_then_it_stops_without_writing(
    rig: Rig,
) -> None:
    pipeline = EndlessPipeline()
    job = rig.job()
    outcome = rig.start(rig.runner(pipeline, name="slow-worker"), job.id)
    assert pipeline.started.wait(20)

    # Another worker now holds attempt 2 (as after the sweeper re-queued it and a claim).
    _sql(
        rig.engine,
        "UPDATE jobs SET attempt = attempt + 1, worker = 'new-worker', heartbeat_at = now()"
        " WHERE id = :id",
        id=job.id,
    )
    new_file = rig.storage.work_dir(job.id, 2) / "newer.bin"
    new_file.write_bytes(b"attempt 2 owns this")
    taken = rig.store.get(job.id)
    history = rig.store.history(job.id)

    assert pipeline.stopped.wait(20), "the stale attempt must stop"
    outcome["thread"].join(timeout=20)

    assert outcome["status"] is None
    assert isinstance(pipeline.raised, LeaseLost)
    assert rig.store.get(job.id) == taken
    assert rig.store.history(job.id) == history
    assert new_file.read_bytes() == b"attempt 2 owns this"


def _take_the_job(rig: Rig, job_id: str) -> Path:
    """Another worker now holds attempt 2 (as after the sweeper re-queued the job and a
    claim), with a file in its own work folder; returns that file."""
    _sql(
        rig.engine,
        "UPDATE jobs SET attempt = attempt + 1, worker = 'new-worker', heartbeat_at = now()"
        " WHERE id = :id",
        id=job_id,
    )
    newer = rig.storage.work_dir(job_id, 2) / "newer.bin"
    newer.write_bytes(b"attempt 2 owns this")
    return newer


@pytest.mark.parametrize("ending", ["fails", "is cancelled"])
def test_given_a_stale_attempt_when_it_fails_or_is_cancelled_then_it_removes_nothing_of_the_job(
    rig: Rig, ending: str
) -> None:
    """SPEC 8: cleanup is fenced. The stale attempt ends (a non-retryable error, or the
    Redis flag of a cancel meant for attempt 2) before its watcher noticed the loss: it
    must not remove attempt 2's work folder, nor the job's staging data, nor say so."""

    def finish(ctx: JobContext) -> Outcome:
        if ending == "fails":
            raise ValidationFailed("a record is bad")
        rig.live.request_cancel(ctx.job.id)
        ctx.watcher.cancelled.set()
        ctx.check()
        raise AssertionError("the cancel was not seen")

    pipeline = HeldPipeline(finish)
    job = rig.job()
    outcome = rig.start(rig.runner(pipeline, name="stale-worker"), job.id)
    assert pipeline.started.wait(20)
    newer = _take_the_job(rig, job.id)
    taken = rig.store.get(job.id)
    history = rig.store.history(job.id)

    pipeline.go.set()
    outcome["thread"].join(timeout=20)

    assert outcome["status"] is None
    assert newer.read_bytes() == b"attempt 2 owns this"
    assert pipeline.discarded == [], "the stale attempt dropped the job's staging data"
    assert rig.store.get(job.id) == taken
    assert rig.store.history(job.id) == history


def test_given_a_cancel_landing_as_an_import_stops_for_confirmation_then_the_cancel_wins(
    rig: Rig,
) -> None:
    """The await_confirmation write finds the job `cancelling`: the attempt still owns it,
    so it cleans up and says `cancelled` (this used to escape the runner as LeaseLost)."""
    pipeline = AwaitingPipeline()
    job = rig.job()

    status = rig.runner(pipeline).run(job.id)

    assert status == "cancelled"
    done = rig.store.get(job.id)
    assert done.status == "cancelled" and done.preview is None
    assert pipeline.discarded == [job.id]
    assert rig.has_files(job.id) == []


def test_given_a_lost_lease_when_an_import_stops_for_confirmation_then_nothing_escapes(
    rig: Rig,
) -> None:
    """The await_confirmation write finds another attempt holds the job: logged, None."""
    job = rig.job()

    def finish(ctx: JobContext) -> Outcome:
        _take_the_job(rig, ctx.job.id)
        return AwaitConfirmation({"counts": {}})

    pipeline = HeldPipeline(finish)
    pipeline.go.set()

    status = rig.runner(pipeline).run(job.id)

    assert status is None
    assert rig.store.get(job.id).status == "running"
    assert rig.store.get(job.id).attempt == 2


class _SucceedFails(JobStore):
    """The job store, with the database gone just when success is recorded."""

    def succeed(self, *args: Any, **kwargs: Any) -> Job:
        raise sqlalchemy.exc.OperationalError("UPDATE jobs", {}, Exception("server closed"))


def test_given_the_database_gone_when_success_is_recorded_then_the_runner_returns_quietly(
    rig: Rig,
) -> None:
    """Unknown whether the success committed: nothing escapes the task, nothing is removed,
    the row is as the attempt left it; its lease runs out and the sweeper decides."""
    job = rig.job()
    runner = rig.runner(LateOutputPipeline())
    runner.store = _SucceedFails(rig.engine)

    status = runner.run(job.id)

    assert status is None
    after = rig.store.get(job.id)
    assert after.status == "running" and after.attempt == 1
    assert rig.storage.path(f"exports/{job.id}/1/out.zip").read_bytes() == b"PK finished"


class _Unreachable(JobStore):
    """The job store of a worker cut off from PostgreSQL: every heartbeat fails."""

    def heartbeat(self, job_id: str, attempt: int) -> Heartbeat:
        raise sqlalchemy.exc.OperationalError("UPDATE jobs", {}, Exception("no route to host"))


def test_given_postgres_unreachable_for_a_lease_when_working_then_the_attempt_stops(
    rig: Rig,
) -> None:
    """SPEC 8: a worker that cannot reach PostgreSQL for longer than the lease treats its
    lease as lost and stops at its next batch boundary, writing nothing more."""
    rig.settings = rig.settings.with_overrides(lease_seconds=1.0)
    pipeline = EndlessPipeline()
    job = rig.job()
    runner = rig.runner(pipeline, name="cut-off-worker")
    runner.store = _Unreachable(rig.engine)
    started, started_wall = time.monotonic(), datetime.now(UTC)
    outcome = rig.start(runner, job.id)

    assert pipeline.stopped.wait(20), "the cut-off attempt must stop"
    stopped = time.monotonic() - started
    outcome["thread"].join(timeout=20)

    assert isinstance(pipeline.raised, LeaseLost)
    assert outcome["status"] is None
    assert rig.settings.lease_seconds <= stopped < rig.settings.lease_seconds + 5
    # Nothing was published once the lease ran out (live progress is written every 0.25 s
    # while the attempt may still act).
    progress = rig.live.get_progress(job.id)
    assert progress is not None
    last = parse_iso(progress["updated_at"])
    assert last <= started_wall + timedelta(seconds=rig.settings.lease_seconds)


# --- the real export --------------------------------------------------------------------


def test_given_a_slow_real_export_when_cancelled_mid_run_then_nothing_of_it_stays(
    rig: Rig,
) -> None:
    stats = seed_timeline(
        rig.settings.database_url,
        rig.account.id,
        days=3,
        samples_per_day=1500,
        seed=7,
        start=datetime(2025, 1, 6, tzinfo=UTC),
    )
    assert stats.samples > 1000
    rig.settings = rig.settings.with_overrides(max_rows_per_second=400)
    job, _ = rig.service().submit_export(rig.account.id, {"type": "archive"})
    runner = JobRunner(
        pipelines=PIPELINES,
        settings=rig.settings,
        engine=rig.engine,
        live=rig.live,
        storage=rig.storage,
        publisher=rig.publisher,
    )
    outcome = rig.start(runner, job.id)
    wait_for(
        lambda: (
            (p := rig.live.get_progress(job.id)) is not None
            and p["phase"] == "samples"
            and p["phase_done"] > 0
        ),
        timeout=30,
        what="the export to be writing samples",
    )
    assert rig.has_files(job.id), "the export writes into its work folder"

    asked = time.monotonic()
    rig.service().cancel(job.id, account_id=rig.account.id)
    done = _wait_status(rig.store, job.id, "cancelled")
    took = time.monotonic() - asked
    outcome["thread"].join(timeout=20)

    assert outcome["status"] == "cancelled"
    assert took < CANCEL_TARGET_SECONDS, f"cancel took {took:.2f}s"
    assert rig.has_files(job.id) == []
    assert done.result is None and done.checkpoint is None
    assert done.progress is not None and done.progress["overall"] < 1.0
    assert not (Path(rig.storage.root) / "exports" / job.id).exists()
