"""The `jobs` table as the durable record of every job (SPEC 5, 7, 8), on real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.errors import Conflict, LeaseLost, NotFound
from shared.jobs.store import Job, JobFilter, JobStore
from shared.store.accounts import Account, create_account

EXPORT = "export.archive"
IMPORT = "import.archive"
ERROR = {"code": "storage_error", "message": "disk full", "retryable": True}


@pytest.fixture
def store(engine: Engine) -> JobStore:
    return JobStore(engine)


@pytest.fixture
def person(account: tuple[Account, str]) -> Account:
    return account[0]


@pytest.fixture
def stranger(engine: Engine) -> Account:
    return create_account(engine, f"stranger-{uuid.uuid4().hex[:6]}")


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return conn.execute(text("SELECT now()")).scalar_one()


def _new(store: JobStore, account: Account, type: str = EXPORT, **params: Any) -> Job:
    job, created = store.create(account_id=account.id, type=type, params=params)
    assert created
    return job


def _running(store: JobStore, account: Account, type: str = EXPORT) -> Job:
    job = store.claim(_new(store, account, type).id, worker="w1")
    assert job is not None
    return job


def _failed(store: JobStore, account: Account, type: str = EXPORT, code: str = "internal") -> Job:
    job = _running(store, account, type)
    return store.fail(job.id, job.attempt, error={"code": code, "message": "boom"})


def _cancelled(store: JobStore, account: Account, type: str = EXPORT) -> Job:
    return store.request_cancel(_new(store, account, type).id)


def _succeeded(store: JobStore, account: Account) -> Job:
    job = _running(store, account)
    return store.succeed(job.id, job.attempt, result={"name": "x.zip"}, progress={"overall": 1.0})


def _events(store: JobStore, job_id: str) -> list[tuple[int, str]]:
    return [(e.attempt, e.kind) for e in store.history(job_id)]


# --- create -----------------------------------------------------------------------------


def test_given_a_new_request_when_created_then_a_queued_job_is_committed(
    store: JobStore, person: Account, engine: Engine
) -> None:
    """The row is visible to any other connection as soon as create returns (SPEC 5)."""
    job, created = store.create(account_id=person.id, type=EXPORT, params={"compress": "all"})

    assert created
    with engine.connect() as other:
        row = other.execute(
            text("SELECT status, attempt, account_id, type, params FROM jobs WHERE id = :id"),
            {"id": job.id},
        ).one()
    assert (row.status, row.attempt, row.account_id, row.type) == ("queued", 1, person.id, EXPORT)
    assert row.params == {"compress": "all"}
    assert job.queued_at is not None and job.started_at is None and job.error is None
    assert _events(store, job.id) == [(1, "created")]


def test_given_an_idempotency_key_when_the_same_account_repeats_then_the_same_job_comes_back(
    store: JobStore, person: Account, engine: Engine
) -> None:
    first, created_first = store.create(
        account_id=person.id, type=EXPORT, params={}, idempotency_key="k-1"
    )
    again, created_again = store.create(
        account_id=person.id, type=EXPORT, params={}, idempotency_key="k-1"
    )

    assert created_first and not created_again
    assert again.id == first.id
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 1


def test_given_an_idempotency_key_when_another_account_uses_it_then_it_gets_its_own_job(
    store: JobStore, person: Account, stranger: Account
) -> None:
    mine, _ = store.create(account_id=person.id, type=EXPORT, params={}, idempotency_key="k-1")
    theirs, created = store.create(
        account_id=stranger.id, type=EXPORT, params={}, idempotency_key="k-1"
    )

    assert created
    assert theirs.id != mine.id
    assert theirs.account_id == stranger.id
    assert store.get(mine.id).account_id == person.id


def test_given_no_idempotency_key_when_created_twice_then_two_jobs_exist(
    store: JobStore, person: Account
) -> None:
    a = _new(store, person)
    b = _new(store, person)

    assert a.id != b.id


# --- claim ------------------------------------------------------------------------------


def test_given_a_queued_job_when_claimed_then_it_is_running_with_a_fresh_heartbeat(
    store: JobStore, person: Account, engine: Engine
) -> None:
    job = _new(store, person)

    claimed = store.claim(job.id, worker="host:1")

    assert claimed is not None
    assert claimed.status == "running" and claimed.attempt == 1 and claimed.worker == "host:1"
    assert claimed.heartbeat_at is not None and claimed.started_at is not None
    assert abs((_db_now(engine) - claimed.heartbeat_at).total_seconds()) < 5
    assert store.get(job.id).status == "running"
    assert _events(store, job.id) == [(1, "created"), (1, "claimed")]


def test_given_a_claimed_job_when_the_message_is_delivered_again_then_nothing_happens(
    store: JobStore, person: Account
) -> None:
    job = _new(store, person)
    first = store.claim(job.id, worker="a")
    assert first is not None

    second = store.claim(job.id, worker="b")

    assert second is None
    after = store.get(job.id)
    assert after.worker == "a" and after.attempt == 1 and after.heartbeat_at == first.heartbeat_at


def test_given_a_retry_delay_when_claimed_early_then_it_is_refused_until_the_delay_passes(
    store: JobStore, person: Account, engine: Engine
) -> None:
    job = _new(store, person)
    _sql(engine, "UPDATE jobs SET not_before = now() + interval '1 hour' WHERE id = :id", id=job.id)

    assert store.claim(job.id, worker="w") is None
    assert store.get(job.id).status == "queued"

    _sql(
        engine, "UPDATE jobs SET not_before = now() - interval '1 second' WHERE id = :id", id=job.id
    )
    claimed = store.claim(job.id, worker="w")
    assert claimed is not None and claimed.not_before is None


@pytest.mark.parametrize("make", [_cancelled, _failed, _succeeded], ids=lambda f: f.__name__)
def test_given_a_finished_or_cancelled_job_when_delivered_then_it_is_not_claimed(
    store: JobStore, person: Account, make: Callable[[JobStore, Account], Job]
) -> None:
    job = make(store, person)
    before = store.get(job.id)

    assert store.claim(job.id, worker="late") is None
    assert store.get(job.id) == before


def test_given_a_cancelling_job_when_delivered_again_then_it_is_not_claimed(
    store: JobStore, person: Account
) -> None:
    job = _running(store, person)
    store.request_cancel(job.id)

    assert store.claim(job.id, worker="other") is None
    assert store.get(job.id).worker == "w1"


def test_given_a_malformed_id_when_claimed_then_nothing_is_claimed(store: JobStore) -> None:
    assert store.claim("not-a-uuid", worker="w") is None


def test_given_two_workers_when_they_claim_one_job_at_once_then_exactly_one_wins(
    store: JobStore, person: Account
) -> None:
    for _ in range(8):
        job = _new(store, person)
        barrier = threading.Barrier(2)
        results: dict[str, Job | None] = {}

        def claim(
            name: str,
            job_id: str = job.id,
            gate: threading.Barrier = barrier,
            out: dict[str, Job | None] = results,
        ) -> None:
            gate.wait(timeout=10)
            out[name] = store.claim(job_id, worker=name)

        threads = [threading.Thread(target=claim, args=(n,)) for n in ("w-a", "w-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        winners = [name for name, got in results.items() if got is not None]
        assert len(results) == 2 and len(winners) == 1, results
        assert store.get(job.id).worker == winners[0]
        assert [k for _, k in _events(store, job.id)].count("claimed") == 1


# --- fencing ----------------------------------------------------------------------------


def _stale_attempt(store: JobStore, account: Account) -> tuple[Job, Job]:
    """A job whose attempt 1 lost it: attempt 2 now runs. Returns (attempt 1, attempt 2)."""
    first = _running(store, account)
    store.retry_later(first.id, first.attempt, error=ERROR, delay_seconds=0)
    second = store.claim(first.id, worker="w2")
    assert second is not None and second.attempt == 2
    return first, second


STALE_WRITES: dict[str, Callable[[JobStore, str, int], Any]] = {
    "save_progress": lambda s, i, a: s.save_progress(i, a, {"overall": 0.9}),
    "save_checkpoint": lambda s, i, a: s.save_checkpoint(i, a, {"files": {"x": 1}}),
    "succeed": lambda s, i, a: s.succeed(i, a, result={"stale": True}, progress={"overall": 1}),
    "fail": lambda s, i, a: s.fail(i, a, error={"code": "internal", "message": "stale"}),
    "retry_later": lambda s, i, a: s.retry_later(i, a, error=ERROR, delay_seconds=0),
    "mark_cancelled": lambda s, i, a: s.mark_cancelled(i, a),
}


@pytest.mark.parametrize("write", sorted(STALE_WRITES))
def test_given_a_newer_attempt_when_the_stale_attempt_writes_then_lease_lost_and_nothing_changes(
    store: JobStore, person: Account, write: str
) -> None:
    """SPEC 5: a stale attempt can never overwrite a newer one."""
    stale, current = _stale_attempt(store, person)
    before = store.get(current.id)
    history = store.history(current.id)

    with pytest.raises(LeaseLost):
        STALE_WRITES[write](store, stale.id, stale.attempt)

    assert store.get(current.id) == before
    assert store.history(current.id) == history


@pytest.mark.parametrize("write", sorted(STALE_WRITES))
def test_given_a_finished_job_when_its_attempt_writes_again_then_lease_lost_and_nothing_changes(
    store: JobStore, person: Account, write: str
) -> None:
    job = _running(store, person)
    store.fail(job.id, job.attempt, error={"code": "bad_archive", "message": "no"})
    before = store.get(job.id)

    with pytest.raises(LeaseLost):
        STALE_WRITES[write](store, job.id, job.attempt)

    assert store.get(job.id) == before


def test_given_the_owning_attempt_when_it_saves_progress_and_checkpoint_then_both_are_stored(
    store: JobStore, person: Account
) -> None:
    job = _running(store, person)

    store.save_progress(job.id, job.attempt, {"phase": "items", "overall": 0.4})
    store.save_checkpoint(job.id, job.attempt, {"files": {"items/2024-01.json": {"bytes": 3}}})

    after = store.get(job.id)
    assert after.progress == {"phase": "items", "overall": 0.4}
    assert after.checkpoint == {"files": {"items/2024-01.json": {"bytes": 3}}}


# --- heartbeat --------------------------------------------------------------------------


def test_given_a_running_attempt_when_it_heartbeats_then_it_owns_the_job_and_the_lease_renews(
    store: JobStore, person: Account, engine: Engine
) -> None:
    job = _running(store, person)
    _sql(
        engine, "UPDATE jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = :id", id=job.id
    )

    beat = store.heartbeat(job.id, job.attempt)

    assert beat.owned and not beat.cancel_requested
    renewed = store.get(job.id).heartbeat_at
    assert renewed is not None and (_db_now(engine) - renewed).total_seconds() < 5


def test_given_a_cancel_request_when_the_attempt_heartbeats_then_it_learns_of_the_cancel(
    store: JobStore, person: Account
) -> None:
    job = _running(store, person)
    store.request_cancel(job.id)

    beat = store.heartbeat(job.id, job.attempt)

    assert beat.owned and beat.cancel_requested


def test_given_a_stale_attempt_when_it_heartbeats_then_it_learns_it_lost_the_job(
    store: JobStore, person: Account
) -> None:
    stale, current = _stale_attempt(store, person)
    before = store.get(current.id)

    beat = store.heartbeat(stale.id, stale.attempt)

    assert not beat.owned
    assert store.get(current.id).heartbeat_at == before.heartbeat_at


# --- cancel -----------------------------------------------------------------------------


def test_given_a_queued_job_when_cancel_is_requested_then_it_is_cancelled_at_once(
    store: JobStore, person: Account
) -> None:
    job = _new(store, person)

    cancelled = store.request_cancel(job.id, account_id=person.id)

    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None and cancelled.cancel_requested_at is not None
    assert store.get(job.id).status == "cancelled"


def test_given_an_awaiting_import_when_cancel_is_requested_then_it_is_cancelled_at_once(
    store: JobStore, person: Account
) -> None:
    job = _running(store, person, IMPORT)
    store.await_confirmation(job.id, job.attempt, preview={"places": 3})

    assert store.request_cancel(job.id).status == "cancelled"


def test_given_a_running_job_when_cancel_is_requested_then_it_is_cancelling_until_the_worker_ends(
    store: JobStore, person: Account
) -> None:
    job = _running(store, person)

    cancelling = store.request_cancel(job.id, account_id=person.id)

    assert cancelling.status == "cancelling"
    assert cancelling.finished_at is None and cancelling.cancel_requested_at is not None
    done = store.mark_cancelled(job.id, job.attempt)
    assert done.status == "cancelled" and done.finished_at is not None
    assert [k for _, k in _events(store, job.id)][-2:] == ["cancel_requested", "cancelled"]


@pytest.mark.parametrize("make", [_cancelled, _failed, _succeeded], ids=lambda f: f.__name__)
def test_given_a_terminal_job_when_cancel_is_requested_then_conflict_and_nothing_changes(
    store: JobStore, person: Account, make: Callable[[JobStore, Account], Job]
) -> None:
    job = make(store, person)
    before = store.get(job.id)

    with pytest.raises(Conflict):
        store.request_cancel(job.id, account_id=person.id)

    assert store.get(job.id) == before


def test_given_another_accounts_job_when_cancel_is_requested_then_not_found_and_it_keeps_running(
    store: JobStore, person: Account, stranger: Account
) -> None:
    job = _running(store, person)

    with pytest.raises(NotFound):
        store.request_cancel(job.id, account_id=stranger.id)

    assert store.get(job.id).status == "running"
    assert store.get(job.id).cancel_requested_at is None


def test_given_an_unknown_id_when_read_or_cancelled_then_not_found(store: JobStore) -> None:
    with pytest.raises(NotFound):
        store.get(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        store.get("nope")
    with pytest.raises(NotFound):
        store.request_cancel(str(uuid.uuid4()))


def test_given_another_accounts_job_when_read_then_not_found(
    store: JobStore, person: Account, stranger: Account
) -> None:
    job = _new(store, person)

    with pytest.raises(NotFound):
        store.get(job.id, account_id=stranger.id)
    assert store.get(job.id, account_id=person.id).id == job.id


# --- restart ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_cancelled, _failed], ids=lambda f: f.__name__)
def test_given_a_failed_or_cancelled_job_when_restarted_then_it_is_queued_clean_with_history(
    store: JobStore, person: Account, engine: Engine, make: Callable[[JobStore, Account], Job]
) -> None:
    job = make(store, person)
    _sql(
        engine,
        "UPDATE jobs SET progress = '{\"overall\": 0.5}', checkpoint = '{\"files\": {}}',"
        " result = '{\"partial\": true}', not_before = now() + interval '1 hour' WHERE id = :id",
        id=job.id,
    )
    history = _events(store, job.id)

    again = store.restart(job.id, upload_hours=24.0, account_id=person.id)

    assert again.id == job.id
    assert again.status == "queued" and again.attempt == job.attempt + 1
    assert again.error is None and again.result is None
    assert again.progress is None and again.checkpoint is None
    assert again.finished_at is None and again.cancel_requested_at is None
    assert _events(store, job.id) == [*history, (job.attempt + 1, "restarted")]
    # It can be run again straight away.
    claimed = store.claim(job.id, worker="w")
    assert claimed is not None and claimed.attempt == job.attempt + 1


@pytest.mark.parametrize(
    "make",
    [_running, _succeeded, _new],
    ids=["running", "succeeded", "queued"],
)
def test_given_an_unfinished_or_succeeded_job_when_restarted_then_conflict_and_nothing_changes(
    store: JobStore, person: Account, make: Callable[[JobStore, Account], Job]
) -> None:
    job = make(store, person)
    before = store.get(job.id)

    with pytest.raises(Conflict):
        store.restart(job.id, upload_hours=24.0, account_id=person.id)

    assert store.get(job.id) == before


def test_given_another_accounts_failed_job_when_restarted_then_not_found(
    store: JobStore, person: Account, stranger: Account
) -> None:
    job = _failed(store, person)

    with pytest.raises(NotFound):
        store.restart(job.id, upload_hours=24.0, account_id=stranger.id)
    assert store.get(job.id).status == "failed"


def test_given_many_jobs_when_restarted_by_filter_then_only_matching_failed_or_cancelled_restart(
    store: JobStore, person: Account, stranger: Account, engine: Engine
) -> None:
    target = _failed(store, person, EXPORT, code="storage_error")
    other_code = _failed(store, person, EXPORT, code="bad_archive")
    other_type = _failed(store, person, IMPORT, code="storage_error")
    other_account = _failed(store, stranger, EXPORT, code="storage_error")
    too_old = _failed(store, person, EXPORT, code="storage_error")
    _sql(
        engine,
        "UPDATE jobs SET created_at = now() - interval '3 days' WHERE id = :id",
        id=too_old.id,
    )
    still_running = _running(store, person, EXPORT)
    since = _db_now(engine) - timedelta(days=1)

    restarted = store.restart_matching(
        JobFilter(account_id=person.id, type=EXPORT, error_code="storage_error", since=since),
        upload_hours=24.0,
        by="ops-cli",
    )

    assert [j.id for j in restarted] == [target.id]
    assert store.get(target.id).status == "queued" and store.get(target.id).attempt == 2
    assert store.history(target.id)[-1].detail == {"by": "ops-cli"}
    for untouched in (other_code, other_type, other_account, too_old):
        assert store.get(untouched.id).status == "failed"
    assert store.get(still_running.id).status == "running"


def test_given_a_time_window_when_restarting_by_filter_then_until_excludes_newer_jobs(
    store: JobStore, person: Account, engine: Engine
) -> None:
    old = _cancelled(store, person)
    new = _cancelled(store, person)
    _sql(engine, "UPDATE jobs SET created_at = '2025-01-01T00:00:00Z' WHERE id = :id", id=old.id)

    restarted = store.restart_matching(
        JobFilter(until=datetime(2025, 6, 1, tzinfo=UTC), since=datetime(2024, 1, 1, tzinfo=UTC)),
        upload_hours=24.0,
    )

    assert [j.id for j in restarted] == [old.id]
    assert store.get(new.id).status == "cancelled"


# --- listing ----------------------------------------------------------------------------


def test_given_jobs_when_paged_then_newest_come_first(
    store: JobStore, person: Account, engine: Engine
) -> None:
    jobs = [_new(store, person) for _ in range(4)]
    for age, job in enumerate(jobs):
        _sql(
            engine,
            "UPDATE jobs SET created_at = now() - make_interval(mins => :m) WHERE id = :id",
            m=10 - age,
            id=job.id,
        )

    page, cursor = store.page(JobFilter(account_id=person.id))

    assert [j.id for j in page] == [j.id for j in reversed(jobs)]
    assert cursor is None


def test_given_jobs_sharing_a_creation_time_when_paged_by_cursor_then_each_is_seen_once(
    store: JobStore, person: Account, engine: Engine
) -> None:
    jobs = [_new(store, person) for _ in range(11)]
    # Four share one instant (with microseconds), so the cursor must break ties by id.
    _sql(
        engine,
        "UPDATE jobs SET created_at = '2025-03-01T10:00:00.123456Z' WHERE id = ANY(:ids)",
        ids=[j.id for j in jobs[3:7]],
    )

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.page(JobFilter(account_id=person.id), limit=3, cursor=cursor)
        seen += [j.id for j in page]
        pages += 1
        assert pages <= 10, "pagination does not end"
        if cursor is None:
            break

    assert sorted(seen) == sorted(j.id for j in jobs)
    assert len(seen) == len(set(seen))
    assert pages == 4
    created = [store.get(i).created_at for i in seen]
    assert created == sorted(created, reverse=True)


def test_given_mixed_jobs_when_filtered_then_only_matching_jobs_are_listed(
    store: JobStore, person: Account, stranger: Account, engine: Engine
) -> None:
    failed_export = _failed(store, person, EXPORT, code="bad_archive")
    failed_import = _failed(store, person, IMPORT, code="storage_error")
    queued = _new(store, person)
    theirs = _failed(store, stranger, EXPORT, code="bad_archive")
    _sql(
        engine,
        "UPDATE jobs SET created_at = now() - interval '2 days' WHERE id = :id",
        id=failed_import.id,
    )
    day_ago = _db_now(engine) - timedelta(days=1)

    def ids(where: JobFilter) -> set[str]:
        return {j.id for j in store.page(where)[0]}

    assert ids(JobFilter(account_id=person.id)) == {failed_export.id, failed_import.id, queued.id}
    assert ids(JobFilter(status=["failed"])) == {failed_export.id, failed_import.id, theirs.id}
    assert ids(JobFilter(account_id=person.id, type=IMPORT)) == {failed_import.id}
    assert ids(JobFilter(error_code="bad_archive")) == {failed_export.id, theirs.id}
    assert ids(JobFilter(account_id=person.id, since=day_ago)) == {failed_export.id, queued.id}
    assert ids(JobFilter(account_id=person.id, until=day_ago)) == {failed_import.id}
    assert ids(JobFilter(status=["queued", "running"])) == {queued.id}


def test_given_a_job_when_its_history_is_read_then_events_come_in_the_order_they_happened(
    store: JobStore, person: Account
) -> None:
    job = _running(store, person)
    store.retry_later(job.id, job.attempt, error=ERROR, delay_seconds=0)
    second = store.claim(job.id, worker="w2")
    assert second is not None
    store.fail(second.id, second.attempt, error={"code": "bad_archive", "message": "no"})
    store.restart(job.id, upload_hours=24.0)

    history = store.history(job.id)

    assert [(e.attempt, e.kind) for e in history] == [
        (1, "created"),
        (1, "claimed"),
        (1, "retry_scheduled"),
        (2, "claimed"),
        (2, "failed"),
        (3, "restarted"),
    ]
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert history[2].detail is not None and history[2].detail["code"] == "storage_error"
    assert history[4].detail == {"code": "bad_archive", "message": "no"}
