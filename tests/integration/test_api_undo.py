"""The import history and undo over HTTP (SPEC 9, 11, 13), through Flask's test client;
imports and rollbacks run in this process with the real runner and pipelines."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from shared.jobs.states import Status
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.db import raw_connection
from tests.archive_check import load_rows
from tests.integration.test_api import Api, api, assert_error, bearer, other
from tests.integration.test_undo import Undo, _source

__all__ = ["api", "other"]

RECORD_FIELDS = {
    "id",
    "type",
    "table",
    "filename",
    "status",
    "counts",
    "finished_at",
    "rollback_until",
    "rolled_back_at",
    "rollback_job",
}


@pytest.fixture
def undo(settings: Settings, engine: Engine) -> Undo:
    return Undo(settings=settings, engine=engine)


def _imports(api: Api, token: str, **query: Any) -> Any:
    return api.client.get("/api/v1/imports", query_string=query, headers=bearer(token))


def _rollback(api: Api, token: str, import_id: str) -> Any:
    return api.client.post(f"/api/v1/imports/{import_id}/rollback", headers=bearer(token))


def test_given_imports_when_listed_then_each_record_has_the_history_fields(
    api: Api, undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)

    response = _imports(api, token)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"imports", "next_cursor"}
    assert body["next_cursor"] is None
    [record] = body["imports"]
    assert set(record) == RECORD_FIELDS
    assert record["id"] == done.id
    assert record["type"] == "archive"
    assert record["status"] == "succeeded"
    assert record["counts"]["created"] > 0
    assert record["rollback_until"] > record["finished_at"]
    assert record["rolled_back_at"] is None and record["rollback_job"] is None


def test_given_an_import_when_rolled_back_over_http_then_202_a_rollback_job_and_then_409(
    api: Api, undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)

    response = _rollback(api, token, done.id)

    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    assert job["type"] == "import.rollback"
    assert job["status"] == "queued"
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["id"] in api.publisher.job_ids()
    # A second request while the first is queued is refused.
    assert_error(_rollback(api, token, done.id), 409, "conflict")
    assert undo.run(job["id"]).status == "succeeded"
    [record] = _imports(api, token).get_json()["imports"]
    assert record["rolled_back_at"] is not None
    assert record["rollback_job"] == job["id"]
    rows = load_rows(api.settings.database_url, person.id)
    assert rows == {"places": {}, "items": {}, "samples": {}}
    assert_error(_rollback(api, token, done.id), 409, "conflict")


def test_given_an_import_past_rollback_until_when_rolled_back_then_409_rollback_expired(
    api: Api, undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)
    with raw_connection(api.settings.database_url) as conn:
        conn.execute(
            "UPDATE jobs SET finished_at = now() - interval '25 hours' WHERE id = %s", (done.id,)
        )
        conn.commit()
    rows = load_rows(api.settings.database_url, person.id)

    assert_error(_rollback(api, token, done.id), 409, "rollback_expired")

    assert load_rows(api.settings.database_url, person.id) == rows
    assert api.publisher.job_ids() == []


def test_given_another_accounts_import_when_listed_or_rolled_back_then_404(
    api: Api,
    undo: Undo,
    engine: Engine,
    account: tuple[Account, str],
    other: tuple[Account, str],
) -> None:
    person, _ = account
    _, stranger = other
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)

    assert _imports(api, stranger).get_json()["imports"] == []
    assert_error(_rollback(api, stranger, done.id), 404, "not_found")
    # An id that is a job but not an import is not an import either.
    export = api.new_job(stranger)
    assert_error(_rollback(api, stranger, export["id"]), 404, "not_found")


def test_given_a_failed_import_when_rolled_back_then_409_conflict(
    api: Api, account: tuple[Account, str]
) -> None:
    person, token = account
    job, _ = api.store.create(account_id=person.id, type="import.archive", params={})
    with raw_connection(api.settings.database_url) as conn:
        conn.execute(
            "UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = %s", (job.id,)
        )
        conn.commit()

    assert_error(_rollback(api, token, job.id), 409, "conflict")
    [record] = _imports(api, token).get_json()["imports"]
    assert record["status"] == "failed" and record["rollback_until"] is None


def test_given_a_rollback_awaiting_its_choice_when_confirmed_then_modified_is_required(
    api: Api, undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)
    with raw_connection(api.settings.database_url) as conn:
        changed = conn.execute(
            "UPDATE places SET name = 'Mine' WHERE id = (SELECT id FROM places"
            " WHERE account_id = %s ORDER BY id LIMIT 1) RETURNING id::text",
            (person.id,),
        ).fetchone()
        conn.commit()
    assert changed is not None
    job = _rollback(api, token, done.id).get_json()["job"]
    waiting = undo.run(job["id"])
    assert waiting.status == "awaiting_confirmation"
    url = f"/api/v1/jobs/{job['id']}/confirm"

    assert_error(api.client.post(url, headers=bearer(token)), 422, "validation_failed", "modified")
    response = api.client.post(url, json={"modified": "keep"}, headers=bearer(token))

    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["job"]["params"]["modified"] == "keep"
    assert undo.run(job["id"]).status == "succeeded"
    places = load_rows(api.settings.database_url, person.id)["places"]
    assert list(places) == [changed[0]]  # the changed one was kept, the rest undone
    assert places[changed[0]]["name"] == "Mine"


def test_given_an_import_awaiting_confirmation_when_confirmed_with_modified_then_422(
    api: Api, account: tuple[Account, str]
) -> None:
    person, token = account
    job, _ = api.store.create(
        account_id=person.id,
        type="import.archive",
        params={},
        status=Status.AWAITING_CONFIRMATION,
    )

    response = api.client.post(
        f"/api/v1/jobs/{job.id}/confirm", json={"modified": "revert"}, headers=bearer(token)
    )

    assert_error(response, 422, "validation_failed", "modified")
    assert api.store.get(job.id).status == "awaiting_confirmation"


def test_given_a_bad_history_query_when_listed_then_refused_naming_it(
    api: Api, account: tuple[Account, str]
) -> None:
    _, token = account
    assert_error(_imports(api, token, limit=0), 422, "validation_failed", "limit")
    assert_error(_imports(api, token, cursor="nope"), 400, "bad_request", "cursor")
