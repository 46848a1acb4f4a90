"""Where a table export's file goes (SPEC 13 `delivery`), and XLSX past one sheet's rows.

`JobService.request_export` is what `POST /exports` calls: small exports come back as an
inline answer whose chunks are the file, large ones (or `background`) as a queued job.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.errors import ValidationFailed
from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.store import Job, JobStore
from shared.pipelines import PIPELINES
from shared.service import JobService, QueuedExport
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.db import raw_connection
from shared.store.storage import LocalStorage
from shared.tables.inline import InlineExport
from shared.tables.values import SHEET_ROWS
from tests.polling import wait_for
from tests.table_check import db_rows, read_delimited, read_xlsx

ROWS = 40


def _service(settings: Settings, engine: Engine, **overrides: Any) -> JobService:
    return JobService(
        pipelines=PIPELINES,
        settings=settings.with_overrides(**overrides),
        engine=engine,
        live=MemoryLiveStore(),
        storage=LocalStorage(settings.storage_root),
        publisher=RecordingPublisher(),
    )


def _samples(database_url: str, account_id: str, count: int) -> None:
    """`count` samples one second apart, `seconds_from_gmt` numbering them from 1."""
    with raw_connection(database_url) as conn:
        conn.execute(
            "INSERT INTO samples (account_id, id, date, seconds_from_gmt)"
            " SELECT %s, gen_random_uuid(), %s + n * interval '1 second', n"
            " FROM generate_series(1, %s) AS n",
            (account_id, datetime(2024, 1, 1, tzinfo=UTC), count),
        )
        conn.commit()


def _body(**extra: Any) -> dict[str, Any]:
    return {"type": "table", "table": "samples", "format": "csv", **extra}


def _run(settings: Settings, engine: Engine, account_id: str, body: dict[str, Any]) -> Job:
    """Queue an export job through the service and run it in-process to success."""
    job, _ = _service(settings, engine).submit_export(account_id, body)
    runner = JobRunner(
        pipelines=PIPELINES,
        settings=settings,
        engine=engine,
        live=MemoryLiveStore(),
        storage=LocalStorage(settings.storage_root),
        publisher=RecordingPublisher(),
    )
    wait_for(lambda: runner.run(job.id), timeout=600, what=f"job {job.id} to run")
    done = JobStore(engine).get(job.id)
    assert done.status == "succeeded", done.error
    return done


def _backends(database_url: str) -> int:
    with raw_connection(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


# --- delivery ----------------------------------------------------------------------------------


@pytest.mark.parametrize("delivery", ["auto", "inline"])
def test_given_few_rows_when_requested_then_the_answer_is_the_file_itself_and_no_job(
    settings: Settings, engine: Engine, account: tuple[Account, str], delivery: str
) -> None:
    person, _ = account
    _samples(settings.database_url, person.id, ROWS)
    service = _service(settings, engine, sync_export_max_rows=ROWS)

    answer = service.request_export(person.id, _body(delivery=delivery, columns=["date"]))

    assert isinstance(answer, InlineExport)
    assert answer.rows == ROWS
    assert answer.content_type == "text/csv; charset=utf-8"
    assert answer.name.startswith("samples-") and answer.name.endswith(".csv")
    assert answer.disposition == f'attachment; filename="{answer.name}"'
    header, records = read_delimited(b"".join(answer.chunks), ",")
    assert header == ["date"] and len(records) == ROWS
    assert service.page(_all(person.id))[0] == [], "an inline export leaves no job"


def _all(account_id: str) -> Any:
    from shared.jobs.store import JobFilter

    return JobFilter(account_id=account_id)


def test_given_more_rows_than_the_limit_when_auto_then_a_job_is_queued(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    _samples(settings.database_url, person.id, ROWS + 1)
    service = _service(settings, engine, sync_export_max_rows=ROWS)

    answer = service.request_export(person.id, _body(), idempotency_key="k1")

    assert isinstance(answer, QueuedExport) and answer.created
    assert answer.job.type == "export.table" and answer.job.status == "queued"
    again = service.request_export(person.id, _body(), idempotency_key="k1")
    assert isinstance(again, QueuedExport) and again.job.id == answer.job.id
    assert not again.created


def test_given_more_rows_than_the_limit_when_inline_then_422_naming_delivery(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    _samples(settings.database_url, person.id, ROWS + 1)
    service = _service(settings, engine, sync_export_max_rows=ROWS)

    with pytest.raises(ValidationFailed) as refused:
        service.request_export(person.id, _body(delivery="inline"))

    assert refused.value.details == {"field": "delivery"}
    assert str(ROWS) in refused.value.message


def test_given_background_when_requested_then_even_one_row_is_queued(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    _samples(settings.database_url, person.id, 1)
    service = _service(settings, engine)

    answer = service.request_export(person.id, _body(delivery="background"))

    assert isinstance(answer, QueuedExport) and answer.job.type == "export.table"


def test_given_an_inline_xlsx_when_streamed_then_openpyxl_reads_every_row(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    _samples(settings.database_url, person.id, ROWS)
    service = _service(settings, engine)

    answer = service.request_export(person.id, _body(format="xlsx", columns=["seconds_from_gmt"]))

    assert isinstance(answer, InlineExport)
    assert answer.content_type.endswith("spreadsheetml.sheet")
    sheet = read_xlsx(b"".join(answer.chunks))["samples"]
    assert sheet == [("seconds_from_gmt",), *((n,) for n in range(1, ROWS + 1))]


def test_given_a_client_gone_mid_stream_when_the_body_is_closed_then_its_connection_closes(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """The web closes the body's generator when the client disconnects."""
    person, _ = account
    _samples(settings.database_url, person.id, 5000)
    service = _service(settings, engine, sync_export_max_rows=10_000)
    before = _backends(settings.database_url)
    answer = service.request_export(person.id, _body(format="jsonl"))
    assert isinstance(answer, InlineExport)

    first = next(answer.chunks)
    assert first and _backends(settings.database_url) == before + 1
    answer.chunks.close()  # type: ignore[attr-defined]

    wait_for(
        lambda: _backends(settings.database_url) == before,
        timeout=10,
        what="the stream's connection to close",
    )


def test_given_a_queued_table_export_when_downloaded_then_it_names_its_content_type(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    _samples(settings.database_url, person.id, 3)
    service = _service(settings, engine)
    job = _run(settings, engine, person.id, _body(format="tsv"))

    download = service.download(job.id, account_id=person.id)

    assert download.name.endswith(".tsv")
    assert download.content_type == "text/tab-separated-values; charset=utf-8"
    assert service.view(service.get(job.id))["result"]["content_type"] == download.content_type


# --- XLSX past one sheet -----------------------------------------------------------------------


def test_given_more_rows_than_a_sheet_holds_when_exported_as_xlsx_then_no_row_is_dropped(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """1,048,575 data rows under the header of `samples`, the rest in `samples (2)`."""
    person, _ = account
    extra = 30
    _samples(settings.database_url, person.id, SHEET_ROWS + extra)

    done = _run(settings, engine, person.id, _body(format="xlsx", columns=["seconds_from_gmt"]))

    assert done.result is not None
    sheets = read_xlsx(LocalStorage(settings.storage_root).path(done.result["key"]))

    assert list(sheets) == ["samples", "samples (2)"]
    first, second = sheets["samples"], sheets["samples (2)"]
    assert first[0] == second[0] == ("seconds_from_gmt",)
    assert len(first) == SHEET_ROWS + 1 == 1_048_576
    values = [row[0] for row in first[1:]] + [row[0] for row in second[1:]]
    assert values == list(range(1, SHEET_ROWS + extra + 1))
    assert done.result["stats"] == {"rows": SHEET_ROWS + extra, "sheets": 2, "truncated": 0}


def test_given_a_text_longer_than_a_cell_when_exported_as_xlsx_then_it_is_cut_and_counted(
    settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Excel holds 32,767 characters a cell; the rest is cut and the result says how often."""
    person, _ = account
    long = "x" * 40_000
    with raw_connection(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO samples (account_id, id, date, source) VALUES (%s, %s, now(), %s)",
            (person.id, str(uuid.uuid4()), long),
        )
        conn.commit()

    done = _run(settings, engine, person.id, _body(format="xlsx", columns=["source"]))

    assert done.result is not None and done.result["stats"]["truncated"] == 1
    sheet = read_xlsx(LocalStorage(settings.storage_root).path(done.result["key"]))["samples"]
    assert sheet[1][0] == "x" * 32_767
    assert db_rows(settings.database_url, person.id, "samples")[0]["source"] == long
