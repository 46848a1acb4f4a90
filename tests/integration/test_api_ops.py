"""The operators' API (SPEC 8 and 9): every account's jobs, filters, restarts.

Failed jobs are made through the job store (claim, then fail with an error), the way a
worker leaves them, without running anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from web import create_app

EXPORT = "export.archive"
IMPORT = "import.archive"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    """The response is SPEC 9's error object with this status, code and (maybe) field."""
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert {"code", "message", "details"} <= set(error)
    assert error["code"] == code
    if field is not None:
        assert error["details"].get("field") == field, error


@dataclass
class Ops:
    """The app, an ops token, and the store and publisher a test inspects."""

    client: FlaskClient
    token: str
    store: JobStore
    engine: Engine
    live: MemoryLiveStore
    publisher: RecordingPublisher

    def queued(self, account: Account, *, type: str = EXPORT) -> str:
        job, _ = self.store.create(account_id=account.id, type=type, params={})
        return job.id

    def failed(self, account: Account, code: str, *, type: str = EXPORT) -> str:
        job_id = self.queued(account, type=type)
        claimed = self.store.claim(job_id, worker="test")
        assert claimed is not None
        self.store.fail(
            job_id,
            claimed.attempt,
            error={"code": code, "message": f"it broke: {code}", "retryable": False},
        )
        return job_id

    def cancelled(self, account: Account) -> str:
        job_id = self.queued(account)
        assert self.store.request_cancel(job_id).status == "cancelled"
        return job_id

    def created_at(self, job_id: str, when: datetime) -> None:
        """Backdate a job's creation (test set-up for time windows)."""
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE jobs SET created_at = :t WHERE id = :id"), {"t": when, "id": job_id}
            )

    def list(self, **query: str) -> list[str]:
        response = self.client.get(
            "/api/v1/ops/jobs", query_string=query, headers=bearer(self.token)
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return [job["id"] for job in response.get_json()["jobs"]]

    def retry_matching(self, body: Any = None) -> list[str]:
        response = self.client.post("/api/v1/ops/jobs/retry", json=body, headers=bearer(self.token))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["restarted"]


@pytest.fixture
def ops(settings: Settings, engine: Engine) -> Iterator[Ops]:
    operator = create_account(engine, f"operator-{uuid.uuid4().hex[:6]}")
    token = issue_token(engine, operator.id, role="ops")
    live, publisher = MemoryLiveStore(), RecordingPublisher()
    app = create_app(settings, live=live, publisher=publisher)
    app.config["TESTING"] = True
    yield Ops(app.test_client(), token, JobStore(engine), engine, live, publisher)
    app.extensions["ferry"].engine.dispose()


@pytest.fixture
def ann(engine: Engine) -> Account:
    return create_account(engine, f"ann-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def bob(engine: Engine) -> Account:
    return create_account(engine, f"bob-{uuid.uuid4().hex[:6]}")


# --- who may call -----------------------------------------------------------------------------


def test_given_a_user_token_when_calling_ops_endpoints_then_403_and_nothing_restarted(
    ops: Ops, account: tuple[Account, str]
) -> None:
    """Given a user token, When any ops endpoint is called, Then 403 and no job changes."""
    person, user_token = account
    job_id = ops.failed(person, "internal")

    listing = ops.client.get("/api/v1/ops/jobs", headers=bearer(user_token))
    one = ops.client.post(f"/api/v1/ops/jobs/{job_id}/retry", headers=bearer(user_token))
    bulk = ops.client.post("/api/v1/ops/jobs/retry", json={}, headers=bearer(user_token))

    assert_error(listing, 403, "forbidden")
    assert_error(one, 403, "forbidden")
    assert_error(bulk, 403, "forbidden")
    assert ops.store.get(job_id).status == "failed"
    assert ops.publisher.job_ids() == []


def test_given_no_or_an_unknown_token_when_calling_ops_endpoints_then_401(ops: Ops) -> None:
    """Given no token or a made-up one, When an ops endpoint is called, Then 401 (not 403)."""
    assert_error(ops.client.get("/api/v1/ops/jobs"), 401, "unauthorized")
    response = ops.client.get("/api/v1/ops/jobs", headers=bearer("made-up"))
    assert_error(response, 401, "unauthorized")


def test_given_an_ops_token_when_listing_then_200_with_every_accounts_jobs(
    ops: Ops, ann: Account, bob: Account
) -> None:
    """Given jobs of two accounts, When an operator lists, Then both, newest first."""
    first = ops.queued(ann)
    second = ops.failed(bob, "bad_archive")
    third = ops.cancelled(ann)

    assert ops.list() == [third, second, first]


def test_given_an_ops_token_when_reading_a_job_through_the_user_api_then_404(
    ops: Ops, ann: Account
) -> None:
    """Given another account's job, When an operator uses the person's endpoint, Then 404:
    the user API is scoped to the token's own account, ops or not."""
    job_id = ops.queued(ann)
    response = ops.client.get(f"/api/v1/jobs/{job_id}", headers=bearer(ops.token))
    assert_error(response, 404, "not_found")


# --- filters ----------------------------------------------------------------------------------


def test_given_jobs_of_several_kinds_when_filtering_then_only_the_matching_ones(
    ops: Ops, ann: Account, bob: Account
) -> None:
    """Given queued, failed and cancelled jobs of two accounts and two types, When filtering
    by status, type, account name or error code, Then exactly the matching jobs."""
    ann_queued = ops.queued(ann)
    ann_bad = ops.failed(ann, "bad_archive", type=IMPORT)
    bob_storage = ops.failed(bob, "storage_error")
    bob_cancelled = ops.cancelled(bob)

    assert set(ops.list(status="failed")) == {ann_bad, bob_storage}
    assert set(ops.list(status="queued,cancelled")) == {ann_queued, bob_cancelled}
    assert ops.list(type=IMPORT) == [ann_bad]
    assert set(ops.list(type=EXPORT)) == {ann_queued, bob_storage, bob_cancelled}
    assert set(ops.list(account=ann.name)) == {ann_queued, ann_bad}
    assert set(ops.list(account=bob.name)) == {bob_storage, bob_cancelled}
    assert ops.list(error_code="bad_archive") == [ann_bad]
    assert ops.list(error_code="storage_error", account=bob.name) == [bob_storage]
    assert ops.list(error_code="storage_error", account=ann.name) == []
    assert ops.list(status="failed", type=EXPORT) == [bob_storage]


def test_given_jobs_created_at_different_times_when_filtering_by_window_then_inside_only(
    ops: Ops, ann: Account
) -> None:
    """Given jobs created in January, February and March, When filtering since/until,
    Then since is inclusive and until exclusive."""
    january, february, march = ops.queued(ann), ops.queued(ann), ops.queued(ann)
    ops.created_at(january, datetime(2024, 1, 15, tzinfo=UTC))
    ops.created_at(february, datetime(2024, 2, 1, tzinfo=UTC))
    ops.created_at(march, datetime(2024, 3, 15, tzinfo=UTC))

    assert ops.list(since="2024-02-01T00:00:00Z") == [march, february]
    assert ops.list(until="2024-02-01T00:00:00Z") == [january]
    assert ops.list(since="2024-01-01T00:00:00Z", until="2024-03-01T00:00:00Z") == [
        february,
        january,
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"error": "bad_archive"}, "error"),
        ({"status": "broken"}, "status"),
        ({"type": "export"}, "type"),
        ({"account": "nobody-by-this-name"}, "account"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2024-02-30T00:00:00Z"}, "until"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_given_a_bad_ops_filter_when_listing_then_422_naming_it(
    ops: Ops, query: dict[str, str], field: str
) -> None:
    """Given an unknown filter or a bad value, When listing, Then 422 naming the field."""
    response = ops.client.get("/api/v1/ops/jobs", query_string=query, headers=bearer(ops.token))
    assert_error(response, 422, "validation_failed", field)


# --- restarts ---------------------------------------------------------------------------------


def test_given_a_failed_job_when_an_operator_retries_it_then_it_is_queued_again(
    ops: Ops, ann: Account
) -> None:
    """Given a failed job of some account, When an operator retries it by id, Then the
    answer names it, and it is queued as attempt 2 with its error cleared and published."""
    job_id = ops.failed(ann, "storage_error")

    response = ops.client.post(f"/api/v1/ops/jobs/{job_id}/retry", headers=bearer(ops.token))

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"restarted": [job_id]}
    job = ops.store.get(job_id)
    assert job.status == "queued"
    assert job.attempt == 2
    assert job.error is None
    assert job.finished_at is None
    assert ops.publisher.job_ids() == [job_id]
    kinds = [event.kind for event in ops.store.history(job_id)]
    assert kinds[-1] == "restarted"
    assert "failed" in kinds


def test_given_a_job_that_cannot_be_restarted_when_an_operator_retries_it_then_409_or_404(
    ops: Ops, ann: Account
) -> None:
    """Given a queued job and an id that does not exist, When retried, Then 409 and 404."""
    job_id = ops.queued(ann)

    queued = ops.client.post(f"/api/v1/ops/jobs/{job_id}/retry", headers=bearer(ops.token))
    missing = ops.client.post(f"/api/v1/ops/jobs/{uuid.uuid4()}/retry", headers=bearer(ops.token))

    assert_error(queued, 409, "conflict")
    assert_error(missing, 404, "not_found")
    assert ops.store.get(job_id).attempt == 1
    assert ops.publisher.job_ids() == []


def test_given_failed_jobs_when_retrying_by_filter_then_only_the_matching_failed_ones(
    ops: Ops, ann: Account, bob: Account
) -> None:
    """Given failed jobs of two accounts and codes, plus a cancelled and a queued job, When an
    operator retries by account and error code, Then only those failed jobs restart."""
    target = ops.failed(ann, "bad_archive")
    other_code = ops.failed(ann, "storage_error")
    other_account = ops.failed(bob, "bad_archive")
    cancelled = ops.cancelled(ann)
    queued = ops.queued(ann)

    restarted = ops.retry_matching({"account": ann.name, "error_code": "bad_archive"})

    assert restarted == [target]
    assert ops.publisher.job_ids() == [target]
    assert ops.store.get(target).status == "queued"
    assert ops.store.get(target).attempt == 2
    assert ops.store.get(other_code).status == "failed"
    assert ops.store.get(other_account).status == "failed"
    assert ops.store.get(cancelled).status == "cancelled"
    assert ops.store.get(queued).attempt == 1


def test_given_failed_and_cancelled_jobs_when_retrying_with_no_filter_then_failed_only(
    ops: Ops, ann: Account, bob: Account
) -> None:
    """Given failed and cancelled jobs, When retried in bulk with an empty body, Then every
    failed job restarts (the default status) and cancelled ones stay cancelled."""
    failed = {ops.failed(ann, "internal"), ops.failed(bob, "interrupted")}
    cancelled = ops.cancelled(bob)

    restarted = ops.retry_matching()

    assert set(restarted) == failed
    assert len(restarted) == len(failed)
    assert set(ops.publisher.job_ids()) == failed
    assert ops.store.get(cancelled).status == "cancelled"
    assert ops.retry_matching({}) == []


def test_given_cancelled_jobs_when_retrying_with_status_cancelled_then_those_restart(
    ops: Ops, ann: Account
) -> None:
    """Given a cancelled and a failed job, When retried with status cancelled, Then only the
    cancelled one restarts."""
    cancelled = ops.cancelled(ann)
    failed = ops.failed(ann, "internal")

    assert ops.retry_matching({"status": ["cancelled"]}) == [cancelled]
    assert ops.store.get(failed).status == "failed"


def test_given_failed_jobs_when_retrying_by_type_and_window_then_only_those_inside(
    ops: Ops, ann: Account
) -> None:
    """Given failed exports and imports created at different times, When retried by type and
    time window, Then only the matching ones restart."""
    old_export = ops.failed(ann, "internal")
    new_export = ops.failed(ann, "internal")
    new_import = ops.failed(ann, "bad_archive", type=IMPORT)
    ops.created_at(old_export, datetime(2024, 1, 1, tzinfo=UTC))
    ops.created_at(new_export, datetime(2024, 6, 1, tzinfo=UTC))
    ops.created_at(new_import, datetime(2024, 6, 2, tzinfo=UTC))

    restarted = ops.retry_matching({"type": EXPORT, "since": "2024-05-01T00:00:00Z"})

    assert restarted == [new_export]
    assert ops.store.get(old_export).status == "failed"
    assert ops.store.get(new_import).status == "failed"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"colour": "red"}, 422, "colour"),
        ({"status": ["broken"]}, 422, "status"),
        ({"account": "nobody-by-this-name"}, 422, "account"),
        ({"error_code": 3}, 422, "error_code"),
        ([], 400, "body"),
    ],
)
def test_given_a_bad_retry_filter_when_retrying_then_refused_and_nothing_restarted(
    ops: Ops, ann: Account, body: Any, status: int, field: str
) -> None:
    """Given a bad filter body, When retried in bulk, Then 400/422 naming it, nothing restarts."""
    failed = ops.failed(ann, "internal")

    response = ops.client.post("/api/v1/ops/jobs/retry", json=body, headers=bearer(ops.token))

    assert_error(response, status, "validation_failed" if status == 422 else "bad_request", field)
    assert ops.store.get(failed).status == "failed"
    assert ops.publisher.job_ids() == []


def test_given_malformed_json_when_retrying_in_bulk_then_400_and_nothing_restarted(
    ops: Ops, ann: Account
) -> None:
    """Given a body that is not JSON, When retried in bulk, Then 400 naming the body — it must
    never fall back to "restart every failed job"."""
    failed = ops.failed(ann, "internal")

    response = ops.client.post(
        "/api/v1/ops/jobs/retry",
        data=b'{"account": ',
        content_type="application/json",
        headers=bearer(ops.token),
    )

    assert_error(response, 400, "bad_request", "body")
    assert ops.store.get(failed).status == "failed"
    assert ops.publisher.job_ids() == []


@pytest.mark.parametrize("body", [{"limit": 1}, {"status": ["failed"], "limit": 1}])
def test_given_a_limit_in_a_bulk_retry_when_retrying_then_it_is_honoured_or_refused(
    ops: Ops, ann: Account, body: dict[str, Any]
) -> None:
    """Given three failed jobs, When an operator asks to retry with limit 1, Then at most one
    restarts, or the request is refused naming `limit` — never a silent restart of all."""
    failed = [ops.failed(ann, "internal") for _ in range(3)]

    response = ops.client.post("/api/v1/ops/jobs/retry", json=body, headers=bearer(ops.token))

    if response.status_code == 200:
        restarted = response.get_json()["restarted"]
        assert len(restarted) <= 1, f"limit 1 restarted {len(restarted)} jobs"
    else:
        assert_error(response, 422, "validation_failed", "limit")
        assert [ops.store.get(job_id).status for job_id in failed] == ["failed"] * 3
