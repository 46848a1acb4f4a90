"""Table exports through the job runner, read back by outside readers, row by row (SPEC 13).

Real PostgreSQL and storage, in-process runner with live progress in memory. Every file is
read with Python's `csv`, `json` or openpyxl (`tests.table_check`) and compared with the
rows PostgreSQL holds: the rows and their order, the columns and their order as asked,
each value as SPEC 13 says it is written.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.states import JobType
from shared.jobs.store import Job, JobStore
from shared.pipelines import PIPELINES
from shared.service import JobService
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from shared.store.storage import LocalStorage
from shared.tables.columns import TABLES
from shared.tables.params import parse_table_export
from shared.timefmt import parse_iso, utcnow
from tests.polling import wait_for
from tests.table_check import (
    BOM,
    check_delimited_cell,
    check_json_value,
    check_xlsx_cell,
    db_rows,
    read_delimited,
    read_json,
    read_xlsx,
)

START = datetime(2024, 3, 28, tzinfo=UTC)  # the days around Europe's switch to summer time
FORMATS = ("csv", "tsv", "json", "jsonl", "xlsx")


@dataclass
class Ferry:
    """The table export's collaborators for one test, and a way to run its jobs."""

    settings: Settings
    engine: Engine
    store: JobStore
    live: MemoryLiveStore = field(default_factory=MemoryLiveStore)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)

    @property
    def storage(self) -> LocalStorage:
        return LocalStorage(self.settings.storage_root)

    def service(self) -> JobService:
        return JobService(
            pipelines=PIPELINES,
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
        )

    def runner(self) -> JobRunner:
        return JobRunner(
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
            pipelines=PIPELINES,
            name="test-worker",
        )

    def export(self, account_id: str, **body: Any) -> Job:
        """Queue a table export through the service, run it, assert it succeeded."""
        job, created = self.service().submit_export(account_id, {"type": "table", **body})
        assert created and job.type == JobType.EXPORT_TABLE
        runner = self.runner()
        wait_for(lambda: runner.run(job.id), timeout=60, what=f"job {job.id} to run")
        done = self.store.get(job.id)
        assert done.status == "succeeded", done.error
        return done

    def file(self, job: Job) -> Path:
        assert job.result is not None
        return self.storage.path(job.result["key"])


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> Ferry:
    return Ferry(settings=settings, engine=engine, store=JobStore(engine))


def _seed(settings: Settings, account_id: str, *, days: int = 4) -> None:
    seed_timeline(
        settings.database_url, account_id, days=days, samples_per_day=120, seed=5, start=START
    )


# What the Arc apps require of a visit or a trip (CHECKs of timeline_items), for rows a
# test writes directly; a test's own values win.
_VISIT_REQUIRED = {
    "radius_mean": 50.0,
    "radius_sd": 10.0,
    "confirmed_place": False,
    "uncertain_place": True,
}
_TRIP_REQUIRED = {"distance": 0.0, "speed": 0.0, "uncertain_activity_type": True}


def _insert(database_url: str, table: str, account_id: str, rows: list[dict[str, Any]]) -> None:
    with raw_connection(database_url) as conn:
        for given in rows:
            row = dict(given)
            if table == "timeline_items":
                required = _VISIT_REQUIRED if row["is_visit"] else _TRIP_REQUIRED
                saved = "visit_last_saved" if row["is_visit"] else "trip_last_saved"
                row = {**required, saved: row.get("last_saved", START), **row}
            columns = ", ".join(("account_id", *row))
            marks = ", ".join(["%s"] * (len(row) + 1))
            conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", (account_id, *row.values())
            )
        conn.commit()


def _uuid() -> str:
    return str(uuid.uuid4())


def check_file(
    data: bytes,
    fmt: str,
    table: str,
    rows: list[dict[str, Any]],
    *,
    columns: list[str] | None = None,
    zone: str = "UTC",
) -> None:
    """The file holds exactly `rows`, in order, with `columns` (default all) as asked."""
    spec = TABLES[table]
    picked = spec.pick(columns)
    names = [c.name for c in picked]
    if fmt in ("csv", "tsv"):
        header, records = read_delimited(data, "," if fmt == "csv" else "\t")
        assert header == names
        assert len(records) == len(rows)
        for record, row in zip(records, rows, strict=True):
            assert len(record) == len(picked)
            for column, cell in zip(picked, record, strict=True):
                check_delimited_cell(column, cell, row, zone)
    elif fmt in ("json", "jsonl"):
        objects = read_json(data, lines=fmt == "jsonl")
        assert len(objects) == len(rows)
        for obj, row in zip(objects, rows, strict=True):
            assert list(obj) == names
            for column in picked:
                check_json_value(column, obj[column.name], row, zone)
    else:
        sheets = read_xlsx(data)
        assert list(sheets) == [table]
        found = sheets[table]
        assert found[0] == tuple(names)
        assert len(found) - 1 == len(rows)
        for cells, row in zip(found[1:], rows, strict=True):
            for column, cell in zip(picked, cells, strict=True):
                check_xlsx_cell(column, cell, row, zone)


# --- every table, every format -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("table", ["samples", "items", "places"])
def test_given_a_seeded_account_when_a_table_is_exported_then_an_outside_reader_gets_every_row(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], table: str, fmt: str
) -> None:
    """All columns in SPEC 3's order; every row of the account, in the table's order."""
    person, _ = account
    _seed(settings, person.id)
    rows = db_rows(settings.database_url, person.id, table)
    assert rows

    job = ferry.export(person.id, table=table, format=fmt)

    data = ferry.file(job).read_bytes()
    check_file(data, fmt, table, rows)
    assert job.result is not None
    assert job.result["stats"]["rows"] == len(rows)
    assert job.result["bytes"] == len(data)
    assert job.result["files"] == 1
    assert job.result["download_url"] == f"/api/v1/jobs/{job.id}/download"
    stamp = job.created_at.astimezone(UTC).strftime("%Y-%m-%d-%H%M%S")
    assert job.result["name"] == f"{table}-{stamp}.{fmt}"
    retention = timedelta(hours=settings.export_retention_hours)
    assert abs(parse_iso(job.result["expires_at"]) - (utcnow() + retention)) < timedelta(minutes=5)
    download = ferry.service().download(job.id, account_id=person.id)
    assert download.name == job.result["name"] and download.size == len(data)


def test_given_items_when_exported_then_visit_columns_are_empty_for_trips_and_trip_for_visits(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """Base columns, then visit, then trip; a value stored in the wrong kind is not shown."""
    person, _ = account
    visit, trip = _uuid(), _uuid()
    _insert(
        settings.database_url,
        "timeline_items",
        person.id,
        [
            {
                "id": visit,
                "is_visit": True,
                "start_date": START,
                "end_date": START + timedelta(minutes=5),
                "latitude": 52.5,
                "longitude": 13.4,
                "custom_title": "Home",
                "distance": 99.0,  # a trip column on a visit: not exported
            },
            {
                "id": trip,
                "is_visit": False,
                "start_date": START + timedelta(minutes=5),
                "end_date": START + timedelta(minutes=9),
                "latitude": 1.0,  # a visit column on a trip: not exported
                "distance": 1234.5,
                "uncertain_activity_type": True,
            },
        ],
    )

    job = ferry.export(person.id, table="items", format="jsonl")

    objects = read_json(ferry.file(job).read_bytes(), lines=True)
    by_id = {o["id"]: o for o in objects}
    names = list(TABLES["items"].names)
    assert list(by_id[visit]) == names
    assert names.index("is_visit") < names.index("latitude") < names.index("distance")
    assert "account_id" not in names
    assert (by_id[visit]["latitude"], by_id[visit]["distance"]) == (52.5, None)
    assert (by_id[trip]["latitude"], by_id[trip]["distance"]) == (None, 1234.5)
    assert by_id[trip]["uncertain_activity_type"] is True
    assert by_id[visit]["custom_title"] == "Home" and by_id[trip]["custom_title"] is None


# --- columns, range, time zone ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_given_chosen_columns_and_a_zone_when_exported_then_only_those_in_that_order_and_zone(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], fmt: str
) -> None:
    """Dates in Europe/Berlin across the switch to summer time (+01:00, then +02:00)."""
    person, _ = account
    _seed(settings, person.id)
    columns = ["heart_rate", "date", "id", "disabled", "source", "last_saved"]
    rows = db_rows(settings.database_url, person.id, "samples")

    job = ferry.export(
        person.id, table="samples", format=fmt, columns=columns, timezone="Europe/Berlin"
    )

    data = ferry.file(job).read_bytes()
    check_file(data, fmt, "samples", rows, columns=columns, zone="Europe/Berlin")
    if fmt == "csv":
        _, records = read_delimited(data, ",")
        offsets = {record[1][-6:] for record in records}
        assert offsets == {"+01:00", "+02:00"}, "the seeded days cross 2024-03-31"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_given_a_range_when_exported_then_samples_by_date_items_overlapping_places_by_saved(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], fmt: str
) -> None:
    """`[from, to)`: samples by `date`, items overlapping, places by `last_saved`."""
    person, _ = account
    _seed(settings, person.id)
    url = settings.database_url
    start, end = START + timedelta(days=1, hours=3), START + timedelta(days=2, hours=5)
    spanning, ends_at_start, instant_at_start = _uuid(), _uuid(), _uuid()
    _insert(
        url,
        "timeline_items",
        person.id,
        [
            {
                "id": spanning,
                "is_visit": True,
                "start_date": start - timedelta(days=3),
                "end_date": end + timedelta(days=3),
            },
            {
                "id": ends_at_start,
                "is_visit": True,
                "start_date": start - timedelta(hours=1),
                "end_date": start,
            },
            {"id": instant_at_start, "is_visit": False, "start_date": start, "end_date": start},
        ],
    )
    _insert(
        url,
        "places",
        person.id,
        [
            {"id": _uuid(), "name": "at start", "latitude": 1, "longitude": 2, "last_saved": start},
            {"id": _uuid(), "name": "at end", "latitude": 1, "longitude": 2, "last_saved": end},
        ],
    )
    body = {"from": start.isoformat(), "to": end.isoformat(), "format": fmt}
    window = {"start": start, "end": end}
    expected = {
        "samples": db_rows(
            url,
            person.id,
            "samples",
            where="AND date >= %(start)s AND date < %(end)s",
            values=window,
        ),
        "items": db_rows(
            url,
            person.id,
            "items",
            where="AND start_date < %(end)s AND (end_date > %(start)s OR start_date >= %(start)s)",
            values=window,
        ),
        "places": db_rows(
            url,
            person.id,
            "places",
            where="AND last_saved >= %(start)s AND last_saved < %(end)s",
            values=window,
        ),
    }

    for table, rows in expected.items():
        job = ferry.export(person.id, table=table, **body)
        check_file(ferry.file(job).read_bytes(), fmt, table, rows)
        everything = db_rows(url, person.id, table)
        assert 0 < len(rows) < len(everything), table
    item_ids = {row["id"] for row in expected["items"]}
    assert {spanning, instant_at_start} <= item_ids and ends_at_start not in item_ids
    assert [p["name"] for p in expected["places"] if p["name"].startswith("at ")] == ["at start"]


def test_given_another_account_when_exporting_then_its_rows_never_appear(
    ferry: Ferry, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    stranger = create_account(engine, f"stranger-{uuid.uuid4().hex[:6]}")
    _seed(settings, stranger.id)
    mine = _uuid()
    _insert(settings.database_url, "samples", person.id, [{"id": mine, "date": START}])

    job = ferry.export(person.id, table="samples", format="json", columns=["id"])

    assert read_json(ferry.file(job).read_bytes(), lines=False) == [{"id": mine}]


# --- values: text, numbers, dates --------------------------------------------------------------

FORMULA_LIKE = [
    "=SUM(A1:A9)",
    "+1",
    "-1",
    "@cmd",
    "\tTab first",
    "\rCR first",
    "\nLF first",
    "\uff1dfull-width equals",
    "\uff0bfull-width plus",
    "\uff0dfull-width minus",
    "\uff20full-width at",
    "'already quoted",
]
MERELY_CONTAINING = [
    "a=b",
    "1+1",
    "x-y",
    "me@host",
    "in\ttab",
    "two\r\nlines",
    "one\nline",
    "a\uff1db",
]
TRICKY = [
    'quote " inside, comma',
    "",
    " leading and trailing space ",
    "control \x01\x02\x1f chars",
    "a literal _x0041_ escape",
    "non-characters \ufffe \uffff",
    "emoji 🚀 and 日本語 and \u2028",
    "back\\slash",
]


def _text_places(person_id: str, url: str, texts: list[str]) -> dict[str, str]:
    rows = [
        {
            "id": _uuid(),
            "name": f"place {index:03d}",
            "locality": text,
            "latitude": -33.5,
            "longitude": -0.25,
            "seconds_from_gmt": -3600,
            "last_saved": START,
        }
        for index, text in enumerate(texts)
    ]
    _insert(url, "places", person_id, rows)
    return {row["name"]: row["locality"] for row in rows}


@pytest.mark.parametrize("fmt", FORMATS)
def test_given_formula_like_text_when_exported_then_it_is_neutralised_and_numbers_are_not(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], fmt: str
) -> None:
    """SPEC 13: a leading `=`, `+`, `-`, `@`, tab, CR, LF or full-width form gets one `'`
    in CSV, TSV and XLSX; text that merely contains them later and negative numbers do not;
    JSON carries the text as stored."""
    person, _ = account
    url = settings.database_url
    texts = _text_places(person.id, url, FORMULA_LIKE + MERELY_CONTAINING + TRICKY)
    rows = db_rows(url, person.id, "places")

    job = ferry.export(person.id, table="places", format=fmt)

    data = ferry.file(job).read_bytes()
    check_file(data, fmt, "places", rows)  # every cell, by the rule in tests.table_check
    columns = list(TABLES["places"].names)
    name, locality = columns.index("name"), columns.index("locality")
    latitude, offset = columns.index("latitude"), columns.index("seconds_from_gmt")
    if fmt in ("csv", "tsv"):
        _, records = read_delimited(data, "," if fmt == "csv" else "\t")
        found = {r[name]: (r[locality], r[latitude], r[offset]) for r in records}
    elif fmt == "xlsx":
        sheet = read_xlsx(data)["places"][1:]
        found = {r[name]: (r[locality] or "", r[latitude], r[offset]) for r in sheet}
    else:
        objects = read_json(data, lines=fmt == "jsonl")
        found = {o["name"]: (o["locality"], o["latitude"], o["seconds_from_gmt"]) for o in objects}
    for place, text in texts.items():
        shown, lat, off = found[place]
        if fmt in ("json", "jsonl"):
            assert shown == text
        elif text in FORMULA_LIKE:
            assert shown == "'" + text, place
        else:
            assert shown == text, place
        assert str(lat) == "-33.5" and str(off) == "-3600", "numbers are never escaped"


def test_given_csv_when_a_text_holds_line_breaks_then_only_record_ends_become_crlf(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """RFC 4180: records end in CRLF; a quoted field keeps its LF or CRLF exactly."""
    person, _ = account
    _text_places(person.id, settings.database_url, ["one\nline", "two\r\nlines", "plain"])

    job = ferry.export(person.id, table="places", format="csv", columns=["name", "locality"])

    data = ferry.file(job).read_bytes()
    assert data == (
        b'name,locality\r\nplace 000,"one\nline"\r\nplace 001,"two\r\nlines"\r\nplace 002,plain\r\n'
    )


def test_given_null_and_empty_text_when_exported_as_csv_then_empty_field_and_quoted_empty(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """NULL is an empty field, an empty text `""`; JSON says null and ""."""
    person, _ = account
    _text_places(person.id, settings.database_url, [""])
    _insert(
        settings.database_url,
        "places",
        person.id,
        [{"id": _uuid(), "name": "place 001", "latitude": 0, "longitude": 0, "last_saved": START}],
    )
    body = {"table": "places", "columns": ["name", "locality", "foursquare_category_id"]}

    csv_job = ferry.export(person.id, format="csv", **body)
    json_job = ferry.export(person.id, format="json", **body)

    assert ferry.file(csv_job).read_bytes() == (
        b'name,locality,foursquare_category_id\r\nplace 000,"",\r\nplace 001,,\r\n'
    )
    assert read_json(ferry.file(json_job).read_bytes(), lines=False) == [
        {"name": "place 000", "locality": "", "foursquare_category_id": None},
        {"name": "place 001", "locality": None, "foursquare_category_id": None},
    ]


FLOATS = [
    0.1 + 0.2,
    -0.0,
    5e-324,
    1e-05,
    -1.2345e-07,
    1.5e20,
    1e15,
    123456789012345.67,
    2.5e-4,
    1 / 3,
    179.99999999999997,
    math.nan,
    math.inf,
    -math.inf,
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_given_extreme_floats_when_exported_then_each_reads_back_as_the_stored_double(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], fmt: str
) -> None:
    """No rounding; CSV/TSV never in exponent form; NaN and infinities as empty/null."""
    person, _ = account
    _insert(
        settings.database_url,
        "samples",
        person.id,
        [
            {"id": _uuid(), "date": START + timedelta(seconds=i), "altitude": value}
            for i, value in enumerate(FLOATS)
        ],
    )
    rows = db_rows(settings.database_url, person.id, "samples")

    job = ferry.export(person.id, table="samples", format=fmt, columns=["altitude", "date"])

    check_file(ferry.file(job).read_bytes(), fmt, "samples", rows, columns=["altitude", "date"])
    if fmt == "csv":
        _, records = read_delimited(ferry.file(job).read_bytes(), ",")
        assert records[2][0] == "0." + "0" * 323 + "5"
        assert records[5][0] == "150000000000000000000"


def test_given_dates_at_the_edges_when_exported_then_each_zone_and_format_holds_them(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """Whole and fractional seconds, a local-mean-time date (an offset with seconds, written
    in UTC), and a date before Excel's first serial (text in XLSX)."""
    person, _ = account
    dates = [
        datetime(2024, 3, 31, 0, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
        datetime(2024, 10, 27, 0, 30, 0, 250000, tzinfo=UTC),
        datetime(1880, 1, 1, 12, tzinfo=UTC),
        datetime(1900, 2, 28, 23, 0, tzinfo=UTC),
    ]
    _insert(
        settings.database_url,
        "samples",
        person.id,
        [{"id": _uuid(), "date": moment, "last_saved": moment} for moment in dates],
    )
    rows = db_rows(settings.database_url, person.id, "samples")

    for zone in ("UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kolkata"):
        for fmt in ("csv", "json", "xlsx"):
            job = ferry.export(
                person.id,
                table="samples",
                format=fmt,
                columns=["date", "last_saved"],
                timezone=zone,
            )
            check_file(
                ferry.file(job).read_bytes(),
                fmt,
                "samples",
                rows,
                columns=["date", "last_saved"],
                zone=zone,
            )
    job = ferry.export(person.id, table="samples", format="csv", columns=["date"], timezone="UTC")
    _, records = read_delimited(ferry.file(job).read_bytes(), ",")
    assert [r[0] for r in records][:4] == [
        "1880-01-01T12:00:00Z",
        "1900-02-28T23:00:00Z",
        "2024-03-31T00:59:59.999999Z",
        "2024-03-31T01:00:00Z",
    ]


def test_given_bom_when_exported_as_csv_then_the_file_starts_with_it_and_the_header_is_clean(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    _seed(settings, person.id, days=1)

    job = ferry.export(person.id, table="places", format="tsv", bom=True, columns=["id", "name"])

    data = ferry.file(job).read_bytes()
    assert data.startswith(BOM + b"id\tname\r\n")
    header, records = read_delimited(data[len(BOM) :], "\t")
    assert header == ["id", "name"] and records


@pytest.mark.parametrize("fmt", FORMATS)
def test_given_no_rows_when_exported_then_the_file_is_valid_and_empty(
    ferry: Ferry, account: tuple[Account, str], fmt: str
) -> None:
    """A header only (CSV, TSV, XLSX), `[]` (JSON), nothing (JSON Lines)."""
    person, _ = account

    job = ferry.export(person.id, table="items", format=fmt, columns=["id", "start_date"])

    data = ferry.file(job).read_bytes()
    check_file(data, fmt, "items", [], columns=["id", "start_date"])
    assert job.result is not None and job.result["stats"]["rows"] == 0
    if fmt == "json":
        assert data == b"[]\n"
    if fmt == "jsonl":
        assert data == b""


# --- the job: progress, cancel, result -----------------------------------------------------


def test_given_an_export_when_it_runs_then_progress_counts_rows_to_exactly_one(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """Phases prepare, rows, finalize; rows_total is the row count; overall ends at 1."""
    person, _ = account
    _seed(settings, person.id)
    seen: list[dict[str, Any]] = []
    original = ferry.live.put_progress

    def record(job_id: str, progress: Mapping[str, Any]) -> None:
        seen.append(dict(progress))
        original(job_id, dict(progress))

    ferry.live.put_progress = record  # type: ignore[method-assign]
    rows = len(db_rows(settings.database_url, person.id, "samples"))

    job = ferry.export(person.id, table="samples", format="csv")

    phases = [p["phase"] for p in seen]
    assert phases[0] == "prepare" and phases[-1] == "finalize" and "rows" in phases
    assert all(p["phase_count"] == 3 for p in seen)
    assert all(p["rows_total"] == rows for p in seen if p["phase"] != "prepare")
    overall = [p["overall"] for p in seen]
    assert overall == sorted(overall) and overall[-1] == 1.0
    assert job.progress is not None and job.progress["rows_done"] == rows


def test_given_a_running_export_when_cancelled_then_nothing_of_it_stays(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """Cancelled mid-rows: the job says cancelled and storage holds nothing of it."""
    person, _ = account
    # 6,000 rows: three of the writer's fetches, so rows are still coming when the first
    # batch's progress shows (a single batch could finish before the cancel arrives).
    _seed(settings, person.id, days=50)
    ferry.settings = settings.with_overrides(max_rows_per_second=500)
    job, _ = ferry.service().submit_export(
        person.id, {"type": "table", "table": "samples", "format": "xlsx"}
    )
    runner = ferry.runner()
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(status=runner.run(job.id)), daemon=True)
    thread.start()
    wait_for(
        lambda: (
            (p := ferry.live.get_progress(job.id)) is not None
            and p["phase"] == "rows"
            and p["phase_done"] > 0
        ),
        timeout=30,
        what="the export to be writing rows",
    )
    work = Path(ferry.storage.root) / "work" / job.id
    assert any(work.rglob("*")), "the export writes into its work folder"

    asked = time.monotonic()
    ferry.service().cancel(job.id, account_id=person.id)
    thread.join(timeout=30)

    assert outcome["status"] == "cancelled"
    assert time.monotonic() - asked < 5
    done = ferry.store.get(job.id)
    assert done.status == "cancelled" and done.result is None
    for area in ("work", "exports", "uploads"):
        assert not (Path(ferry.storage.root) / area / job.id).exists(), area


def test_given_a_zone_postgres_does_not_know_when_run_then_the_job_fails_naming_it(
    ferry: Ferry, account: tuple[Account, str]
) -> None:
    """A name zoneinfo accepts but the server lacks fails clean, not as an internal error."""
    person, _ = account
    params = parse_table_export({"type": "table", "table": "samples", "format": "csv"})
    job, _ = ferry.store.create(
        account_id=person.id,
        type=JobType.EXPORT_TABLE,
        params={**params.to_json(), "timezone": "Not/A_Zone"},
    )
    runner = ferry.runner()
    wait_for(lambda: runner.run(job.id), timeout=30, what="the job to run")

    done = ferry.store.get(job.id)
    assert done.status == "failed"
    assert done.error is not None and done.error["code"] == "validation_failed"
    assert "timezone" in done.error["message"]
    assert not (Path(ferry.storage.root) / "exports" / job.id).exists()
