"""`POST /exports` of a table over HTTP (SPEC 9 and 13): the file itself or a job.

What a client sees: a small export is a 200 whose body Python's `csv` module reads row for
row as the database holds them; a large one is a 202 job whose download openpyxl reads and
whose Content-Type names the format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from shared.jobs.live import MemoryLiveStore
from shared.jobs.runner import JobRunner
from shared.jobs.store import JobStore
from shared.pipelines import PIPELINES
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.seed import seed_timeline
from shared.store.storage import LocalStorage
from tests.integration.test_api import Api, RowCheckingPublisher, assert_error, bearer
from tests.table_check import db_rows, read_delimited, read_xlsx
from web import create_app

LIMIT = 50  # FERRY_SYNC_EXPORT_MAX_ROWS for these tests
# `{table}-YYYY-MM-DD-HHmmss.{ext}` (SPEC 13); quoted or not, as RFC 6266 allows both.
NAME = re.compile(r'attachment; filename="?(samples|items|places)-\d{4}-\d\d-\d\d-\d{6}\.(\w+)"?')


@pytest.fixture
def api(settings: Settings, engine: Engine) -> Iterator[Api]:
    small = settings.with_overrides(sync_export_max_rows=LIMIT)
    publisher = RowCheckingPublisher(engine)
    live = MemoryLiveStore()
    app = create_app(small, live=live, publisher=publisher)
    app.config["TESTING"] = True
    yield Api(app.test_client(), live, publisher, engine, small, JobStore(engine))
    app.extensions["ferry"].engine.dispose()


def _seed(api: Api, account_id: str, *, days: int) -> None:
    seed_timeline(
        api.settings.database_url,
        account_id,
        days=days,
        samples_per_day=20,
        seed=3,
        start=datetime(2024, 5, 1, tzinfo=UTC),
    )


def test_given_a_small_table_when_posted_then_200_the_csv_itself_and_no_job(
    api: Api, account: tuple[Account, str]
) -> None:
    person, token = account
    _seed(api, person.id, days=2)  # fewer samples than the limit
    columns = ["date", "id", "latitude", "moving_state"]

    response = api.post_export(
        token, {"type": "table", "table": "samples", "format": "csv", "columns": columns}
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert NAME.fullmatch(response.headers["Content-Disposition"])
    assert response.headers["Content-Disposition"].rstrip('"').endswith(".csv")
    header, records = read_delimited(response.get_data(), ",")
    assert header == columns
    stored = db_rows(api.settings.database_url, person.id, "samples")
    assert 0 < len(stored) <= LIMIT
    assert [r[1] for r in records] == [str(row["id"]) for row in stored]
    assert [float(r[2]) for r in records] == [row["latitude"] for row in stored]
    assert [int(r[3]) for r in records] == [row["moving_state"] for row in stored]
    assert api.jobs_in_db() == 0


def test_given_more_rows_than_the_limit_when_posted_then_202_and_the_download_is_the_xlsx(
    api: Api, account: tuple[Account, str]
) -> None:
    person, token = account
    _seed(api, person.id, days=5)  # more samples than the limit

    response = api.post_export(token, {"type": "table", "table": "samples", "format": "xlsx"})

    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    assert job["type"] == "export.table"
    runner = JobRunner(
        pipelines=PIPELINES,
        settings=api.settings,
        engine=api.engine,
        live=api.live,
        storage=LocalStorage(api.settings.storage_root),
        publisher=api.publisher,
    )
    assert runner.run(job["id"]) == "succeeded"
    done = api.client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token)).get_json()["job"]

    download = api.client.get(done["result"]["download_url"], headers=bearer(token))

    assert download.status_code == 200
    assert download.mimetype == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert NAME.fullmatch(download.headers["Content-Disposition"])
    sheets = read_xlsx(download.get_data())
    rows = sheets["samples"]
    stored = db_rows(api.settings.database_url, person.id, "samples")
    assert len(stored) > LIMIT
    assert len(rows) == 1 + len(stored)
    ids = rows[0].index("id")
    assert [r[ids] for r in rows[1:]] == [str(row["id"]) for row in stored]


def test_given_background_delivery_when_posted_then_a_job_even_for_few_rows(
    api: Api, account: tuple[Account, str]
) -> None:
    person, token = account
    _seed(api, person.id, days=1)

    response = api.post_export(
        token, {"type": "table", "table": "places", "format": "json", "delivery": "background"}
    )

    assert response.status_code == 202
    assert api.jobs_in_db() == 1


def test_given_inline_over_the_limit_or_a_bad_column_when_posted_then_422_and_no_job(
    api: Api, account: tuple[Account, str]
) -> None:
    person, token = account
    _seed(api, person.id, days=5)

    over = api.post_export(
        token, {"type": "table", "table": "samples", "format": "csv", "delivery": "inline"}
    )
    unknown = api.post_export(
        token, {"type": "table", "table": "samples", "format": "csv", "columns": ["nope"]}
    )
    twice = api.post_export(
        token, {"type": "table", "table": "items", "format": "csv", "columns": ["id", "id"]}
    )

    assert_error(over, 422, "validation_failed", "delivery")
    assert "nope" in assert_error(unknown, 422, "validation_failed")["message"]
    assert "id" in assert_error(twice, 422, "validation_failed")["message"]
    assert api.jobs_in_db() == 0
