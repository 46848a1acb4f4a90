"""`POST /imports` with `type=table` and `POST /jobs/{id}/remap` over HTTP (SPEC 9, 11, 13).

Flask's test client against real PostgreSQL; the jobs run in this process with the real
pipelines, so a preview, a 409 on confirm and a remap are seen as a client sees them.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.pipelines import PIPELINES
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.storage import LocalStorage
from tests.integration.test_api import assert_error, bearer
from tests.polling import wait_for
from tests.table_check import db_rows
from web import create_app


@pytest.fixture
def client(settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(settings, live=MemoryLiveStore(), publisher=RecordingPublisher())
    app.config["TESTING"] = True
    yield app.test_client()
    app.extensions["ferry"].engine.dispose()


def _run(settings: Settings, engine: Engine, job_id: str) -> None:
    runner = JobRunner(
        settings=settings,
        engine=engine,
        live=MemoryLiveStore(),
        storage=LocalStorage(settings.storage_root),
        publisher=RecordingPublisher(),
        pipelines=PIPELINES,
        name="test-worker",
    )
    wait_for(lambda: runner.run(job_id), timeout=60, what=f"job {job_id} to run")


def _post(client: FlaskClient, token: str, data: bytes, **fields: Any) -> Any:
    form = {"type": "table", "table": "samples", **fields, "file": (io.BytesIO(data), "mine.csv")}
    return client.post(
        "/api/v1/imports", data=form, headers=bearer(token), content_type="multipart/form-data"
    )


def _job(client: FlaskClient, token: str, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token))
    assert response.status_code == 200
    return response.get_json()["job"]


def test_a_table_import_over_http_previews_refuses_confirm_with_errors_and_remaps(
    client: FlaskClient, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    ids = [str(uuid.uuid4()) for _ in range(3)]
    data = (
        "Key,At,Speed\r\n"
        f"{ids[0]},2024-01-01T10:00:00Z,1\r\n"
        f"{ids[1]},2024-01-01T11:00:00Z,fast\r\n"
        f"{ids[2]},2024-01-01T12:00:00Z,3\r\n"
    ).encode()

    posted = _post(client, token, data, mapping=json.dumps({"Key": "id", "At": None}))

    assert posted.status_code == 202, posted.get_data(as_text=True)
    job = posted.get_json()["job"]
    assert job["type"] == "import.table" and job["params"]["table"] == "samples"
    _run(settings, engine, job["id"])
    waiting = _job(client, token, job["id"])
    assert waiting["status"] == "awaiting_confirmation"
    preview = waiting["preview"]
    # No date column: the new rows lack one; row 3 is refused for its speed already.
    assert preview["error_total"] == 3
    assert [(e["row"], e["column"]) for e in preview["errors"]] == [
        (2, None),
        (3, "Speed"),
        (4, None),
    ]

    refused = client.post(f"/api/v1/jobs/{job['id']}/confirm", headers=bearer(token))
    assert_error(refused, 409, "conflict")

    bad = client.post(
        f"/api/v1/jobs/{job['id']}/remap",
        json={"mapping": {"Key": "id", "At": "date", "Speed": "date"}},
        headers=bearer(token),
    )
    assert_error(bad, 422, "validation_failed", "mapping")

    remapped = client.post(
        f"/api/v1/jobs/{job['id']}/remap",
        json={"mapping": {"Key": "id", "At": "date"}},
        headers=bearer(token),
    )
    assert remapped.status_code == 202
    assert remapped.get_json()["job"]["status"] == "queued"
    _run(settings, engine, job["id"])
    again = _job(client, token, job["id"])
    assert again["status"] == "awaiting_confirmation"
    assert again["preview"]["error_total"] == 1
    assert again["preview"]["counts"]["valid"] == 2

    confirmed = client.post(
        f"/api/v1/jobs/{job['id']}/confirm", json={"skip_invalid": True}, headers=bearer(token)
    )
    assert confirmed.status_code == 202
    _run(settings, engine, job["id"])
    done = _job(client, token, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["counts"] == {"created": 2, "updated": 0, "skipped": 0, "invalid": 1}
    assert "apply_xid" not in done["result"]
    stored = {str(r["id"]) for r in db_rows(settings.database_url, person.id, "samples")}
    assert stored == {ids[0], ids[2]}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"mapping": json.dumps({"A": "nope"})}, "mapping"),
        ({"mapping": json.dumps({"A": "speed", "B": "speed"})}, "mapping"),
        ({"mapping": "[1]"}, "mapping"),
        ({"table": "bogus"}, "table"),
        ({"mode": "replace"}, "mode"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"on_conflict": "newer"}, "on_conflict"),
    ],
)
def test_given_bad_table_import_fields_when_posted_then_422_naming_the_field_and_no_job(
    client: FlaskClient, account: tuple[Account, str], fields: dict[str, str], field: str
) -> None:
    _, token = account
    response = _post(client, token, b"A,B\r\n1,2\r\n", **fields)
    error = assert_error(response, 422, "validation_failed")
    assert error["details"]["field"] == field
    listed = client.get("/api/v1/jobs", headers=bearer(token)).get_json()["jobs"]
    assert listed == []


def test_given_an_archive_import_when_table_fields_are_sent_then_422(
    client: FlaskClient, account: tuple[Account, str]
) -> None:
    _, token = account
    form = {"table": "samples", "file": (io.BytesIO(b"PK"), "a.zip")}
    response = client.post(
        "/api/v1/imports", data=form, headers=bearer(token), content_type="multipart/form-data"
    )
    assert_error(response, 422, "validation_failed")


def test_given_an_archive_import_job_when_remapped_then_409(
    client: FlaskClient, account: tuple[Account, str]
) -> None:
    _, token = account
    form = {"file": (io.BytesIO(b"not a zip"), "a.zip")}
    posted = client.post(
        "/api/v1/imports", data=form, headers=bearer(token), content_type="multipart/form-data"
    )
    assert posted.status_code == 202
    job = posted.get_json()["job"]
    response = client.post(
        f"/api/v1/jobs/{job['id']}/remap", json={"mapping": {}}, headers=bearer(token)
    )
    assert_error(response, 409, "conflict")
