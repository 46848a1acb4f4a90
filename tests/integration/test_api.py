"""The HTTP API a person's client uses (SPEC 9 and 11), through Flask's test client.

Each test gets its own migrated database; the live store and the publisher are the
in-memory twins, so a test can see what was published and put progress in by hand.
"""

from __future__ import annotations

import io
import queue
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from shared.jobs.live import MemoryLiveStore, RedisLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.store import JobStore
from shared.jobs.sweeper import Sweeper
from shared.pipelines import PIPELINES
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from shared.store.db import make_engine
from shared.store.seed import seed_timeline
from shared.store.storage import LocalStorage
from shared.timefmt import format_iso, parse_iso, utcnow
from web import create_app

JOB_FIELDS = {
    "id",
    "type",
    "status",
    "params",
    "attempt",
    "created_at",
    "started_at",
    "finished_at",
    "progress",
    "error",
    "result",
    "preview",
}


class RowCheckingPublisher(RecordingPublisher):
    """Records, at the moment of each publish, whether the job's row was already committed."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._engine = engine
        self.row_committed: dict[str, bool] = {}

    def publish(self, job_id: str, *, countdown: float | None = None) -> None:
        """Look for the row from another connection, then record the request."""
        with self._engine.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM jobs WHERE id = :id"), {"id": job_id}).first()
        self.row_committed[job_id] = found is not None
        super().publish(job_id, countdown=countdown)


@dataclass
class Api:
    """The app under test and the collaborators a test inspects."""

    client: FlaskClient
    live: MemoryLiveStore
    publisher: RowCheckingPublisher
    engine: Engine
    settings: Settings
    store: JobStore

    def post_export(
        self, token: str, body: Any = None, *, data: bytes | None = None, key: str | None = None
    ) -> Any:
        headers = bearer(token)
        if key is not None:
            headers["Idempotency-Key"] = key
        if data is not None:
            return self.client.post(
                "/api/v1/exports", data=data, headers=headers, content_type="application/json"
            )
        return self.client.post("/api/v1/exports", json=body, headers=headers)

    def new_job(self, token: str, body: Any = None) -> dict[str, Any]:
        response = self.post_export(token, body or {"type": "archive"})
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["job"]

    def jobs_in_db(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict:
    """The response is SPEC 9's error object with this status, code and (maybe) field."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "details"} <= set(error)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if field is not None:
        assert error["details"].get("field") == field, error
    return error


def progress_at(when: datetime, *, phase: str = "places", done: int = 10) -> dict[str, Any]:
    """A progress object (SPEC 6) stamped `when`."""
    return {
        "phase": phase,
        "phase_index": 2,
        "phase_count": 5,
        "phase_done": done,
        "phase_total": 100,
        "rows_done": done,
        "rows_total": 1000,
        "overall": done / 1000,
        "eta_seconds": 5.0,
        "updated_at": format_iso(when),
    }


def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[Api]:
    publisher = RowCheckingPublisher(engine)
    live = MemoryLiveStore()
    app = create_app(settings, live=live, publisher=publisher)
    app.config["TESTING"] = True
    yield Api(app.test_client(), live, publisher, engine, settings, JobStore(engine))
    app.extensions["ferry"].engine.dispose()


@pytest.fixture
def other(engine: Engine) -> tuple[Account, str]:
    """A second account and its user token."""
    found = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    return found, issue_token(engine, found.id, role="user")


# --- authentication ----------------------------------------------------------------------


def test_given_no_authorization_header_when_calling_the_api_then_401_with_an_error_object(
    api: Api,
) -> None:
    """Given no token, When a client lists jobs or posts an export, Then 401 and nothing runs."""
    assert_error(api.client.get("/api/v1/jobs"), 401, "unauthorized")
    response = api.client.post("/api/v1/exports", json={"type": "archive"})
    assert_error(response, 401, "unauthorized")
    assert api.jobs_in_db() == 0
    assert api.publisher.job_ids() == []


def test_given_an_unknown_token_when_calling_the_api_then_401(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a token nobody issued, When it is used, Then 401."""
    _, token = account
    assert_error(api.client.get("/api/v1/jobs", headers=bearer(token + "x")), 401, "unauthorized")
    assert_error(api.client.get("/api/v1/jobs", headers=bearer("nope")), 401, "unauthorized")


@pytest.mark.parametrize("scheme", ["Basic", "Token", ""])
def test_given_a_known_token_in_the_wrong_scheme_when_calling_then_401(
    api: Api, account: tuple[Account, str], scheme: str
) -> None:
    """Given a valid token sent without the Bearer scheme, When used, Then 401."""
    _, token = account
    header = f"{scheme} {token}".strip()
    response = api.client.get("/api/v1/jobs", headers={"Authorization": header})
    assert_error(response, 401, "unauthorized")


def test_given_a_job_of_another_account_when_touching_it_then_404_as_if_it_did_not_exist(
    api: Api, account: tuple[Account, str], other: tuple[Account, str]
) -> None:
    """Given B's job, When A reads, cancels, retries, follows or downloads it, Then 404 like
    a job that does not exist, and B's job is unchanged."""
    _, token_a = account
    _, token_b = other
    job = api.new_job(token_b)
    missing = str(uuid.uuid4())
    calls = [
        ("get", "/api/v1/jobs/{id}"),
        ("post", "/api/v1/jobs/{id}/cancel"),
        ("post", "/api/v1/jobs/{id}/retry"),
        ("get", "/api/v1/jobs/{id}/events"),
        ("get", "/api/v1/jobs/{id}/download"),
    ]
    for method, path in calls:
        theirs = getattr(api.client, method)(path.format(id=job["id"]), headers=bearer(token_a))
        nobody = getattr(api.client, method)(path.format(id=missing), headers=bearer(token_a))
        error = assert_error(theirs, 404, "not_found")
        assert error == assert_error(nobody, 404, "not_found"), path

    malformed = api.client.get("/api/v1/jobs/not-a-uuid", headers=bearer(token_a))
    assert_error(malformed, 404, "not_found")

    still = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token_b))
    assert still.status_code == 200
    assert still.get_json()["job"]["status"] == "queued"
    assert still.get_json()["job"]["attempt"] == 1
    assert api.publisher.job_ids() == [job["id"]]


def test_given_an_unknown_path_or_method_when_called_then_the_same_error_object(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a path or method the API does not have, When called, Then 404/405 as JSON errors."""
    _, token = account
    assert_error(api.client.get("/api/v1/nothing", headers=bearer(token)), 404, "not_found")
    wrong_method = api.client.delete("/api/v1/jobs", headers=bearer(token))
    assert_error(wrong_method, 405, "method_not_allowed")


# --- POST /exports -------------------------------------------------------------------------


def test_given_an_export_request_when_posted_then_202_with_a_full_job_and_a_location(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a valid body, When posted, Then 202 {"job": Job} with every SPEC 9 field, and
    the Location header leads to the same job."""
    _, token = account
    before = utcnow()
    response = api.post_export(
        token, {"type": "archive", "from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"}
    )

    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    assert set(job) == JOB_FIELDS
    assert job["type"] == "export.archive"
    assert job["status"] == "queued"
    assert job["attempt"] == 1
    assert job["params"]["compress"] == "samples"
    assert job["params"]["incremental"] is False
    assert parse_iso(job["params"]["from"]) == datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_iso(job["params"]["to"]) == datetime(2024, 2, 1, tzinfo=UTC)
    assert job["created_at"].endswith("Z")
    assert parse_iso(job["created_at"]) >= before - timedelta(seconds=5)
    for empty in ("started_at", "finished_at", "progress", "error", "result", "preview"):
        assert job[empty] is None, empty

    location = response.headers["Location"]
    assert location.endswith(f"/api/v1/jobs/{job['id']}")
    found = api.client.get(location, headers=bearer(token))
    assert found.status_code == 200
    assert found.get_json()["job"] == job


def test_given_dates_with_an_offset_when_posted_then_params_hold_them_in_utc(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given from/to with a +02:00 offset, When posted, Then the job's params say the same
    instants in UTC, ending in Z."""
    _, token = account
    job = api.new_job(
        token,
        {"type": "archive", "from": "2024-01-01T02:00:00+02:00", "to": "2024-01-02T02:00:00+02:00"},
    )
    assert job["params"]["from"] == "2024-01-01T00:00:00Z"
    assert job["params"]["to"] == "2024-01-02T00:00:00Z"


def test_given_an_export_request_when_posted_then_the_row_is_committed_before_publishing(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a valid body, When posted, Then the job was published once, and its row was
    visible from another connection when the publisher was called."""
    person, token = account
    job = api.new_job(token)

    assert api.publisher.job_ids() == [job["id"]]
    assert api.publisher.row_committed == {job["id"]: True}
    stored = api.store.get(job["id"], account_id=person.id)
    assert stored.status == "queued"


def test_given_the_same_idempotency_key_and_account_when_posted_twice_then_one_job(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given an Idempotency-Key, When the same request is posted again, Then the same job
    comes back, and nothing is published a second time."""
    _, token = account
    first = api.post_export(token, {"type": "archive"}, key="k-1")
    second = api.post_export(token, {"type": "archive"}, key="k-1")

    assert first.status_code == 202
    assert second.status_code == 202
    assert second.get_json()["job"]["id"] == first.get_json()["job"]["id"]
    assert api.publisher.job_ids() == [first.get_json()["job"]["id"]]
    assert api.jobs_in_db() == 1


def test_given_the_same_idempotency_key_from_two_accounts_when_posted_then_two_jobs(
    api: Api, account: tuple[Account, str], other: tuple[Account, str]
) -> None:
    """Given one key used by two accounts, When both post, Then each gets its own job."""
    _, token_a = account
    _, token_b = other
    mine = api.post_export(token_a, {"type": "archive"}, key="shared-key")
    theirs = api.post_export(token_b, {"type": "archive"}, key="shared-key")

    assert mine.status_code == 202
    assert theirs.status_code == 202
    mine_id, theirs_id = mine.get_json()["job"]["id"], theirs.get_json()["job"]["id"]
    assert mine_id != theirs_id
    assert sorted(api.publisher.job_ids()) == sorted([mine_id, theirs_id])
    assert api.client.get(f"/api/v1/jobs/{theirs_id}", headers=bearer(token_a)).status_code == 404


def test_given_a_used_idempotency_key_when_posted_with_a_different_body_then_409(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a key used for one request, When another body comes with it, Then 409 and the
    first job stays the only one."""
    _, token = account
    first = api.post_export(token, {"type": "archive"}, key="k-2")
    clash = api.post_export(token, {"type": "archive", "compress": "all"}, key="k-2")

    assert_error(clash, 409, "conflict")
    assert api.jobs_in_db() == 1
    assert api.publisher.job_ids() == [first.get_json()["job"]["id"]]


# --- bad input (SPEC 11) ---------------------------------------------------------------------

# (raw body, status, field named); 400 is `bad_request`, 422 `validation_failed`.
BAD_BODIES = {
    "malformed-json": (b'{"type": "archive",', 400, "body"),
    "empty-body": (b"", 400, "body"),
    "array": (b'["archive"]', 400, "body"),
    "string": (b'"archive"', 400, "body"),
    "unknown-field": (b'{"type": "archive", "colour": "red"}', 422, "colour"),
    "incremental-not-bool": (b'{"type": "archive", "incremental": "yes"}', 422, "incremental"),
    "bad-from": (b'{"type": "archive", "from": "yesterday"}', 422, "from"),
    "bad-to": (b'{"type": "archive", "to": "2024-13-01T00:00:00Z"}', 422, "to"),
    "from-number": (b'{"type": "archive", "from": 1704067200}', 422, "from"),
    "to-before-from": (
        b'{"type": "archive", "from": "2024-02-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"}',
        422,
        "to",
    ),
    "bad-compress": (b'{"type": "archive", "compress": "max"}', 422, "compress"),
    "missing-type": (b'{"from": "2024-01-01T00:00:00Z"}', 422, "type"),
    "unknown-type": (b'{"type": "archives"}', 422, "type"),
}
CODES = {400: "bad_request", 422: "validation_failed"}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_given_a_bad_export_body_when_posted_then_refused_naming_the_field_and_nothing_written(
    api: Api, account: tuple[Account, str], case: str
) -> None:
    """Given a bad body, When posted, Then 400/422 naming the field, no job row, no publish."""
    _, token = account
    raw, status, field = BAD_BODIES[case]
    response = api.post_export(token, data=raw)

    assert_error(response, status, CODES[status], field)
    assert api.jobs_in_db() == 0
    assert api.publisher.job_ids() == []


def test_given_incremental_with_a_range_when_posted_then_422_naming_a_conflicting_field(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given incremental=true with from/to, When posted, Then 422 naming one of them."""
    _, token = account
    response = api.post_export(
        token, {"type": "archive", "incremental": True, "from": "2024-01-01T00:00:00Z"}
    )

    error = assert_error(response, 422, "validation_failed")
    assert error["details"].get("field") in {"incremental", "from", "to"}
    assert api.jobs_in_db() == 0
    assert api.publisher.job_ids() == []


# --- GET /jobs -------------------------------------------------------------------------------


def test_given_jobs_of_two_accounts_when_listing_then_only_mine_newest_first(
    api: Api, account: tuple[Account, str], other: tuple[Account, str]
) -> None:
    """Given three jobs of mine and one of someone else, When I list, Then mine, newest first."""
    _, token = account
    _, token_b = other
    mine = [api.new_job(token)["id"] for _ in range(3)]
    api.new_job(token_b)

    response = api.client.get("/api/v1/jobs", headers=bearer(token))

    assert response.status_code == 200
    body = response.get_json()
    assert [j["id"] for j in body["jobs"]] == list(reversed(mine))
    assert body["next_cursor"] is None
    assert all(set(j) == JOB_FIELDS for j in body["jobs"])


def test_given_jobs_in_several_statuses_when_filtering_then_only_matching_jobs(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a queued and a cancelled job, When filtering by status or type, Then the match."""
    _, token = account
    queued = api.new_job(token)["id"]
    cancelled = api.new_job(token)["id"]
    cancel = api.client.post(f"/api/v1/jobs/{cancelled}/cancel", headers=bearer(token))
    assert cancel.status_code == 202

    def ids(**query: str) -> list[str]:
        response = api.client.get("/api/v1/jobs", query_string=query, headers=bearer(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        return [j["id"] for j in response.get_json()["jobs"]]

    assert ids(status="queued") == [queued]
    assert ids(status="cancelled") == [cancelled]
    assert ids(status="queued,cancelled") == [cancelled, queued]
    assert ids(status="failed") == []
    assert ids(type="export.archive") == [cancelled, queued]
    assert ids(type="import.archive") == []
    assert ids(type="export.archive", status="cancelled") == [cancelled]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "done"}, "status"),
        ({"status": "queued,done"}, "status"),
        ({"type": "archive"}, "type"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"colour": "red"}, "colour"),
        ({"account": "someone"}, "account"),
        ({"error_code": "internal"}, "error_code"),
    ],
)
def test_given_a_bad_listing_query_when_listing_then_422_naming_it(
    api: Api, account: tuple[Account, str], query: dict[str, str], field: str
) -> None:
    """Given an unknown status or type, a limit out of bounds, When listing, Then 422."""
    _, token = account
    response = api.client.get("/api/v1/jobs", query_string=query, headers=bearer(token))
    assert_error(response, 422, "validation_failed", field)


def test_given_limits_at_the_bounds_when_listing_then_accepted(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given limit=1 and limit=200, When listing, Then 200 and at most that many jobs."""
    _, token = account
    api.new_job(token)
    api.new_job(token)
    one = api.client.get("/api/v1/jobs", query_string={"limit": "1"}, headers=bearer(token))
    many = api.client.get("/api/v1/jobs", query_string={"limit": "200"}, headers=bearer(token))
    assert one.status_code == 200
    assert len(one.get_json()["jobs"]) == 1
    assert one.get_json()["next_cursor"]
    assert many.status_code == 200
    assert len(many.get_json()["jobs"]) == 2


def test_given_more_jobs_than_a_page_when_following_cursors_then_every_job_once(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given seven jobs, When paging by three, Then 3+3+1 jobs, each once, newest first."""
    _, token = account
    created = [api.new_job(token)["id"] for _ in range(7)]

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        query = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        response = api.client.get("/api/v1/jobs", query_string=query, headers=bearer(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        sizes.append(len(body["jobs"]))
        seen += [j["id"] for j in body["jobs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert sizes == [3, 3, 1]
    assert seen == list(reversed(created))


@pytest.mark.parametrize("cursor", ["not-a-cursor!!", "eHx5", "MjAyNC0wMS0wMVQwMDowMDowMFp8bm8"])
def test_given_a_bad_cursor_when_listing_then_400_naming_cursor(
    api: Api, account: tuple[Account, str], cursor: str
) -> None:
    """Given a cursor Ferry never issued, When listing, Then 400 naming `cursor`."""
    _, token = account
    response = api.client.get(
        "/api/v1/jobs", query_string={"cursor": cursor}, headers=bearer(token)
    )
    assert_error(response, 400, "bad_request", "cursor")


# --- cancel and retry ------------------------------------------------------------------------


def test_given_a_queued_job_when_cancelled_then_cancelled_and_a_second_cancel_is_409(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a queued job, When cancelled, Then 202 `cancelled` at once; again, Then 409."""
    _, token = account
    job = api.new_job(token)

    response = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(token))

    assert response.status_code == 202
    cancelled = response.get_json()["job"]
    assert cancelled["id"] == job["id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None
    again = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(token))
    assert_error(again, 409, "conflict")
    assert api.store.get(job["id"]).status == "cancelled"


def test_given_a_running_job_when_cancelled_then_cancelling_and_the_flag_is_raised(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a running job, When cancelled, Then 202 `cancelling` and the worker's flag is up."""
    _, token = account
    job = api.new_job(token)
    assert api.store.claim(job["id"], worker="test") is not None

    response = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(token))

    assert response.status_code == 202
    assert response.get_json()["job"]["status"] == "cancelling"
    assert api.live.cancel_requested(job["id"])


def test_given_a_cancelled_job_when_retried_then_queued_again_as_the_next_attempt(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a cancelled job, When retried, Then 202, same id, attempt 2, queued, published."""
    _, token = account
    job = api.new_job(token)
    api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(token))

    response = api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=bearer(token))

    assert response.status_code == 202, response.get_data(as_text=True)
    again = response.get_json()["job"]
    assert again["id"] == job["id"]
    assert again["status"] == "queued"
    assert again["attempt"] == 2
    assert again["finished_at"] is None
    assert again["error"] is None
    assert api.publisher.job_ids() == [job["id"], job["id"]]
    assert api.publisher.row_committed[job["id"]] is True


def test_given_a_failed_job_when_retried_then_queued_with_its_error_cleared(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a job a worker failed, When its owner retries it, Then 202, attempt 2, queued,
    error and finish time cleared, published again."""
    _, token = account
    job = api.new_job(token)
    claimed = api.store.claim(job["id"], worker="test")
    assert claimed is not None
    api.store.fail(
        job["id"], claimed.attempt, error={"code": "internal", "message": "x", "retryable": False}
    )

    response = api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=bearer(token))

    assert response.status_code == 202, response.get_data(as_text=True)
    again = response.get_json()["job"]
    assert (again["status"], again["attempt"]) == ("queued", 2)
    assert again["error"] is None
    assert again["finished_at"] is None
    assert api.publisher.job_ids() == [job["id"], job["id"]]


def test_given_a_failed_job_with_live_progress_when_retried_then_old_progress_is_not_shown(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a job that failed at 73 % (its last progress still in the live store), When it is
    retried and read while queued, Then it shows no progress: the new attempt has not begun,
    and the restart cleared the stored snapshot."""
    _, token = account
    job = api.new_job(token)
    claimed = api.store.claim(job["id"], worker="test")
    assert claimed is not None
    last = progress_at(utcnow(), phase="samples", done=730)
    api.store.save_progress(job["id"], claimed.attempt, last)
    api.live.put_progress(job["id"], last)
    api.store.fail(
        job["id"], claimed.attempt, error={"code": "internal", "message": "x", "retryable": False}
    )
    retried = api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=bearer(token))
    assert retried.status_code == 202

    shown = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token)).get_json()["job"]

    assert shown["status"] == "queued"
    assert shown["attempt"] == 2
    assert api.store.get(job["id"]).progress is None
    assert shown["progress"] is None, "a queued restart shows the previous attempt's progress"


def test_given_a_queued_job_when_retried_then_409_and_nothing_published(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a job that has not ended, When retried, Then 409 and it stays as it was."""
    _, token = account
    job = api.new_job(token)

    response = api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=bearer(token))

    assert_error(response, 409, "conflict")
    assert api.publisher.job_ids() == [job["id"]]
    assert api.store.get(job["id"]).attempt == 1


# --- download --------------------------------------------------------------------------------


def test_given_an_export_not_finished_when_downloading_then_409(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a queued, then a running export, When downloading, Then 409 each time."""
    _, token = account
    job = api.new_job(token)

    queued = api.client.get(f"/api/v1/jobs/{job['id']}/download", headers=bearer(token))
    assert_error(queued, 409, "conflict")
    assert api.store.claim(job["id"], worker="test") is not None
    running = api.client.get(f"/api/v1/jobs/{job['id']}/download", headers=bearer(token))
    assert_error(running, 409, "conflict")


def _run_export(api: Api, person: Account, token: str) -> dict[str, Any]:
    """Seed a small timeline, post an export, run it in process; the succeeded Job."""
    seed_timeline(
        api.settings.database_url,
        person.id,
        days=2,
        samples_per_day=200,
        seed=7,
        start=datetime(2024, 3, 1, tzinfo=UTC),
    )
    job = api.new_job(token)
    runner = JobRunner(
        pipelines=PIPELINES,
        settings=api.settings,
        engine=api.engine,
        live=api.live,
        storage=LocalStorage(api.settings.storage_root),
        publisher=api.publisher,
    )
    assert runner.run(job["id"]) == "succeeded"
    response = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token))
    assert response.status_code == 200
    return response.get_json()["job"]


def test_given_a_succeeded_export_when_downloading_then_a_zip_named_like_its_folder(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given an export that ran, When downloaded, Then 200, a zip attachment whose name is
    the folder's, holding metadata.json in that folder."""
    person, token = account
    job = _run_export(api, person, token)
    assert job["status"] == "succeeded"
    assert job["progress"]["overall"] == 1.0
    result = job["result"]
    assert {"download_url", "bytes", "files", "stats", "expires_at"} <= set(result)
    assert parse_iso(result["expires_at"]) > utcnow()

    response = api.client.get(result["download_url"], headers=bearer(token))

    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "filename=export-" in disposition
    name = disposition.split("filename=", 1)[1].strip('"')
    assert name.endswith(".zip")
    payload = response.get_data()
    assert len(payload) == result["bytes"]
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = archive.namelist()
    folder = name.removesuffix(".zip")
    assert f"{folder}/metadata.json" in members
    assert all(m.startswith(folder + "/") for m in members)


def test_given_a_succeeded_export_when_cancelled_or_retried_then_409_and_it_stays(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a succeeded export, When cancelled or retried, Then 409, still downloadable."""
    person, token = account
    job = _run_export(api, person, token)

    cancel = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(token))
    retry = api.client.post(f"/api/v1/jobs/{job['id']}/retry", headers=bearer(token))

    assert_error(cancel, 409, "conflict")
    assert_error(retry, 409, "conflict")
    shown = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token)).get_json()["job"]
    assert shown["status"] == "succeeded"
    assert shown["attempt"] == 1
    download = api.client.get(f"/api/v1/jobs/{job['id']}/download", headers=bearer(token))
    assert download.status_code == 200


def test_given_a_download_past_its_retention_when_downloading_then_410(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a succeeded export whose expiry passed, When downloaded, Then 410 — before and
    after the sweeper removed its file."""
    person, token = account
    job = _run_export(api, person, token)
    stored = api.store.get(job["id"])
    assert stored.result is not None
    past = format_iso(utcnow() - timedelta(minutes=1))
    api.store.update_result(job["id"], {**stored.result, "expires_at": past})

    expired = api.client.get(f"/api/v1/jobs/{job['id']}/download", headers=bearer(token))
    assert_error(expired, 410, "gone")

    sweeper = Sweeper(
        pipelines=PIPELINES,
        settings=api.settings,
        engine=api.engine,
        live=api.live,
        storage=LocalStorage(api.settings.storage_root),
        publisher=api.publisher,
    )
    assert job["id"] in sweeper.sweep().expired_downloads
    swept = api.client.get(f"/api/v1/jobs/{job['id']}/download", headers=bearer(token))
    assert_error(swept, 410, "gone")
    shown = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token)).get_json()["job"]
    assert shown["status"] == "succeeded"


# --- GET /jobs/{id}: progress ------------------------------------------------------------------


def test_given_a_running_job_when_read_then_progress_is_the_newer_of_live_and_snapshot(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a running job with a Postgres snapshot, When Redis has newer progress, Then the
    API shows it; when Redis only has older progress, Then the snapshot."""
    _, token = account
    job = api.new_job(token)
    claimed = api.store.claim(job["id"], worker="test")
    assert claimed is not None
    now = utcnow()
    snapshot = progress_at(now - timedelta(seconds=10), done=10)
    api.store.save_progress(job["id"], claimed.attempt, snapshot)

    def shown() -> dict[str, Any]:
        response = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token))
        assert response.status_code == 200
        return response.get_json()["job"]["progress"]

    assert shown() == snapshot
    newer = progress_at(now, done=40)
    api.live.put_progress(job["id"], newer)
    assert shown() == newer
    api.live.put_progress(job["id"], progress_at(now - timedelta(seconds=20), done=5))
    assert shown() == snapshot


def test_given_a_finished_job_when_read_then_progress_is_the_postgres_snapshot(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a failed job whose live store still holds newer progress, When read, Then the
    stored snapshot, which is final."""
    _, token = account
    job = api.new_job(token)
    claimed = api.store.claim(job["id"], worker="test")
    assert claimed is not None
    now = utcnow()
    snapshot = progress_at(now - timedelta(seconds=5), done=30)
    api.store.save_progress(job["id"], claimed.attempt, snapshot)
    api.store.fail(
        job["id"], claimed.attempt, error={"code": "internal", "message": "x", "retryable": False}
    )
    api.live.put_progress(job["id"], progress_at(now, done=90))

    response = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token))

    shown = response.get_json()["job"]
    assert shown["status"] == "failed"
    assert shown["progress"] == snapshot
    assert shown["error"] == {"code": "internal", "message": "x", "retryable": False}


# --- SSE -------------------------------------------------------------------------------------


def parse_events(raw: str) -> list[tuple[str, str]]:
    """(event name, data) of each SSE event in `raw`; comments and retry lines dropped."""
    events = []
    for block in raw.split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
        if name is not None:
            events.append((name, "\n".join(data)))
    return events


def test_given_a_terminal_job_when_following_events_then_snapshot_first_and_end_last(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a cancelled job, When its events are read, Then an SSE stream that opens with
    `snapshot`, closes with `end`, and ends by itself."""
    _, token = account
    job = api.new_job(token)
    api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=bearer(token))

    response = api.client.get(f"/api/v1/jobs/{job['id']}/events", headers=bearer(token))

    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = parse_events(response.get_data(as_text=True))
    assert events[0][0] == "snapshot"
    assert events[-1][0] == "end"
    assert orjson.loads(events[0][1])["job"]["id"] == job["id"]
    assert orjson.loads(events[-1][1])["job"]["status"] == "cancelled"


def test_given_a_running_job_when_following_events_then_live_progress_and_the_end_arrive(
    api: Api, account: tuple[Account, str]
) -> None:
    """Given a running job's open stream, When progress is put in the live store and the job
    then fails, Then the stream carries that progress and ends with `end` (failed)."""
    _, token = account
    job = api.new_job(token)
    claimed = api.store.claim(job["id"], worker="test")
    assert claimed is not None
    response = api.client.get(
        f"/api/v1/jobs/{job['id']}/events", headers=bearer(token), buffered=False
    )
    assert response.status_code == 200
    chunks: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        try:
            for chunk in response.response:
                chunks.put(chunk.decode() if isinstance(chunk, bytes) else chunk)
        finally:
            chunks.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    received = ""

    def wait_for(text_: str, timeout: float = 30.0) -> None:
        nonlocal received
        deadline = time.monotonic() + timeout
        while text_ not in received:
            left = deadline - time.monotonic()
            assert left > 0, f"{text_!r} never arrived; got {received!r}"
            try:
                chunk = chunks.get(timeout=left)
            except queue.Empty:
                continue
            assert chunk is not None, f"stream ended before {text_!r}; got {received!r}"
            received += chunk

    wait_for("event: snapshot")
    sent = progress_at(utcnow(), phase="items", done=77)
    api.live.put_progress(job["id"], sent)
    wait_for("event: progress")
    api.store.fail(
        job["id"],
        claimed.attempt,
        error={"code": "bad_archive", "message": "broken", "retryable": False},
    )
    api.live.announce(job["id"], {"type": "status", "status": "failed", "attempt": 1})
    wait_for("event: end")
    reader.join(timeout=30)
    assert not reader.is_alive()
    while (chunk := chunks.get(timeout=5)) is not None:
        received += chunk

    events = parse_events(received)
    names = [name for name, _ in events]
    assert names[0] == "snapshot"
    assert names[-1] == "end"
    progress = [orjson.loads(data)["progress"] for name, data in events if name == "progress"]
    assert sent in progress
    assert orjson.loads(events[-1][1])["job"]["status"] == "failed"


# --- health ----------------------------------------------------------------------------------


def test_given_no_token_when_checking_health_then_200(api: Api) -> None:
    """Given no Authorization header, When /healthz is asked, Then 200."""
    response = api.client.get("/healthz")
    assert response.status_code == 200


def test_given_database_and_store_answer_when_checking_readiness_then_200(api: Api) -> None:
    """Given a reachable database and live store, When /readyz is asked, Then 200."""
    response = api.client.get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)


def test_given_an_unreachable_database_when_checking_readiness_then_503(
    settings: Settings,
) -> None:
    """Given an engine on a closed port, When /readyz is asked, Then 503 (and /healthz 200)."""
    dead = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/ferry")
    app = create_app(settings, engine=dead, live=MemoryLiveStore(), publisher=RecordingPublisher())
    try:
        client = app.test_client()
        response = client.get("/readyz")
        assert response.status_code == 503, response.get_data(as_text=True)
        assert client.get("/healthz").status_code == 200
    finally:
        dead.dispose()


def test_given_an_unreachable_live_store_when_checking_readiness_then_503(
    settings: Settings, engine: Engine
) -> None:
    """Given Redis on a closed port, When /readyz is asked, Then 503."""
    live = RedisLiveStore.from_url(f"redis://127.0.0.1:{closed_port()}/0", prefix="ferry-dead")
    app = create_app(settings, engine=engine, live=live, publisher=RecordingPublisher())
    response = app.test_client().get("/readyz")
    assert response.status_code == 503, response.get_data(as_text=True)
