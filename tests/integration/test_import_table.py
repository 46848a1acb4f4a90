"""Table imports through the job runner, checked against the database (SPEC 11, 13).

Real PostgreSQL and storage; the in-process runner with live progress in memory. Files
are Ferry's own table exports (export → import round trips) or written here with the
standard library and openpyxl, as a spreadsheet user would make them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import Engine

from shared.errors import Conflict, ValidationFailed
from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.store import Job, JobStore
from shared.pipelines import PIPELINES
from shared.service import JobService
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from shared.store.storage import LocalStorage
from shared.tables.params import parse_table_import
from tests.polling import wait_for
from tests.table_check import db_rows

START = datetime(2024, 3, 28, tzinfo=UTC)
FORMATS = ("csv", "tsv", "json", "jsonl", "xlsx")
# What the tables' rows are compared by: every column but the change tracking's.
_TRACKING = {"account_id", "written_xid", "created_xid"}


@dataclass
class Ferry:
    """The table import's collaborators for one test, and a way to run its jobs."""

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

    def run(self, job_id: str) -> Job:
        runner = JobRunner(
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
            pipelines=PIPELINES,
            name="test-worker",
        )
        wait_for(lambda: runner.run(job_id), timeout=60, what=f"job {job_id} to run")
        return self.store.get(job_id)

    def export(self, account_id: str, **body: Any) -> bytes:
        job, _ = self.service().submit_export(
            account_id, {"type": "table", "delivery": "background", **body}
        )
        done = self.run(job.id)
        assert done.status == "succeeded", done.error
        assert done.result is not None
        return self.storage.path(done.result["key"]).read_bytes()

    def submit(self, account_id: str, data: bytes, name: str, **fields: Any) -> Job:
        received = self.storage.incoming_file()
        received.write(data)
        received.close()
        params = parse_table_import(**fields)
        return self.service().submit_import(
            account_id, received=Path(received.name), filename=name, params=params
        )

    def import_(self, account_id: str, data: bytes, name: str, **fields: Any) -> Job:
        return self.run(self.submit(account_id, data, name, **fields).id)

    def confirm(self, job: Job, *, skip_invalid: bool = False) -> Job:
        self.service().confirm(job.id, skip_invalid=skip_invalid)
        return self.run(job.id)


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> Ferry:
    return Ferry(settings=settings, engine=engine, store=JobStore(engine))


def _seed(settings: Settings, account_id: str, *, days: int = 2) -> None:
    seed_timeline(
        settings.database_url, account_id, days=days, samples_per_day=60, seed=5, start=START
    )


def _rows(settings: Settings, account_id: str, table: str) -> dict[str, dict[str, Any]]:
    """The account's rows by id, without the change-tracking columns."""
    return {
        str(r["id"]): {k: v for k, v in r.items() if k not in _TRACKING}
        for r in db_rows(settings.database_url, account_id, table)
    }


def _assert_same(after: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]) -> None:
    """The same rows, column for column (the first difference named)."""
    assert set(after) == set(before)
    for key, row in before.items():
        for column, value in row.items():
            got = after[key][column]
            assert got == value, (key, column, got, value)


def _other(engine: Engine) -> Account:
    return create_account(engine, f"other-{uuid.uuid4().hex[:8]}")


def _csv(header: list[str], rows: list[list[Any]], *, delimiter: str = ",") -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _sample_ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


# --- export → import: every table, every format ------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("table", ["places", "items", "samples"])
def test_given_an_export_when_it_is_imported_into_an_empty_account_then_every_row_is_the_same(
    ferry: Ferry,
    engine: Engine,
    account: tuple[Account, str],
    table: str,
    fmt: str,
) -> None:
    """Export → import is lossless, in every format: every column of every row."""
    settings = ferry.settings
    person, _ = account
    _seed(settings, person.id)
    target = _other(engine)
    # Items reference places, samples items: the target gets them first, as a user would.
    order = {"places": [], "items": ["places"], "samples": ["places", "items"]}[table]
    for needed in order:
        data = ferry.export(person.id, table=needed, format="csv")
        done = ferry.import_(target.id, data, f"{needed}.csv", table=needed, confirm=True)
        assert done.status == "succeeded", done.error
    data = ferry.export(person.id, table=table, format=fmt)

    done = ferry.import_(target.id, data, f"{table}.{fmt}", table=table, confirm=True)

    assert done.status == "succeeded", (done.error, done.preview and done.preview["errors"][:3])
    assert done.preview is not None and done.preview["format"] == fmt
    assert done.preview["error_total"] == 0
    before = _rows(settings, person.id, table)
    after = _rows(settings, target.id, table)
    _assert_same(after, before)
    assert done.result is not None
    assert done.result["counts"] == {
        "created": len(before),
        "updated": 0,
        "skipped": 0,
        "invalid": 0,
    }
    assert done.result["apply_xid"]


# --- formula-like texts and numbers ----------------------------------------------------------

CORPUS = [
    "=1+2",
    "+49 30 1234",
    "-minus",
    "@SUM(A1)",
    "\tTab",
    "\rCR",
    "\nLF",
    "\uff1dfull",
    "\uff0bfull",
    "\uff0dfull",
    "\uff20full",
    "'quoted",
    "''twice",
    "'=already",
    "plain",
    'a,b;c|d\te"f',
    "multi\r\nline",
    "_x000D_ literal",
    "ü ß 漢字 😀",
]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx", "json", "jsonl"])
def test_given_formula_like_texts_and_edge_numbers_when_round_tripped_then_nothing_changes(
    ferry: Ferry, settings: Settings, engine: Engine, account: tuple[Account, str], fmt: str
) -> None:
    """Each text comes back exactly (one `'` of Ferry's escaping removed, no more); each
    float is the same double."""
    person, _ = account
    numbers = [0.1 + 0.2, 1e-05, 5e-324, 1.5e20, -0.0, 123456789.123456789, -42.0, 1e15]
    with raw_connection(settings.database_url) as conn:
        for i, text in enumerate(CORPUS):
            conn.execute(
                "INSERT INTO places (account_id, id, name, latitude, longitude, locality,"
                " radius_mean, last_saved) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    person.id,
                    str(uuid.uuid4()),
                    text,
                    -numbers[i % len(numbers)] % 90,
                    (i - 9) * 1.000000001,
                    text,
                    numbers[i % len(numbers)],
                    START + timedelta(microseconds=i * 1001),
                ),
            )
        conn.commit()
    target = _other(engine)
    data = ferry.export(person.id, table="places", format=fmt)

    done = ferry.import_(target.id, data, f"places.{fmt}", table="places", confirm=True)

    assert done.status == "succeeded", done.preview and done.preview["errors"][:3]
    before = _rows(settings, person.id, "places")
    after = _rows(settings, target.id, "places")
    assert after == before
    assert sorted(r["name"] for r in after.values()) == sorted(CORPUS)


# --- a mapping and planted bad cells ------------------------------------------------------------


def _planted(settings: Settings, account_id: str) -> tuple[bytes, dict[str, Any]]:
    """A CSV of samples with the user's own header names and bad cells at known places."""
    header = ["Sample", "When", "Lat", "Lon", "Speed km", "Moving", "Item", "Notes"]
    ids = _sample_ids(8)
    rows = [
        [ids[0], "2024-01-01T10:00:00Z", "52.5", "13.4", "1.5", "1", "", "x"],
        [ids[1], "not a date", "52.5", "13.4", "", "0", "", "x"],  # row 3: When
        [ids[2], "2024-01-01T10:02:00Z", "95", "13.4", "", "0", "", "x"],  # row 4: Lat
        [ids[3], "2024-01-01T10:03:00Z", "52.5", "13.4", "fast", "0", "", "x"],  # row 5
        [ids[0], "2024-01-01T10:04:00Z", "52.5", "13.4", "", "0", "", "x"],  # row 6: dup
        [ids[5], "2024-01-01 10:05:00", "52.5", "13.4", "", "7", "", "x"],  # row 7: Moving
        [ids[6], "2024-01-01T10:06:00+02:00", "52.5", "13.4", "", "-1", str(uuid.uuid4()), ""],
        ["nope", "2024-01-01T10:07:00Z", "52.5", "13.4", "", "0", "", ""],  # row 9: Sample
    ]
    mapping = {
        "Sample": "id",
        "When": "date",
        "Lat": "latitude",
        "Lon": "longitude",
        "Speed km": "speed",
        "Moving": "moving_state",
        "Item": "timeline_item_id",
        "Notes": None,
    }
    return _csv(header, rows), {"ids": ids, "mapping": mapping}


def test_given_a_mapping_and_bad_cells_when_previewed_then_counts_and_errors_are_exact(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    data, planted = _planted(settings, person.id)

    job = ferry.import_(
        person.id, data, "mine.csv", table="samples", mapping=json.dumps(planted["mapping"])
    )

    assert job.status == "awaiting_confirmation"
    preview = job.preview
    assert preview is not None
    assert (
        preview["format"] == "csv"
        and preview["delimiter"] == ","
        and preview["encoding"] == "utf-8"
    )
    assert preview["header"] == [
        "Sample",
        "When",
        "Lat",
        "Lon",
        "Speed km",
        "Moving",
        "Item",
        "Notes",
    ]
    assert preview["mapping"] == planted["mapping"]
    assert preview["unmapped"] == []
    assert preview["counts"] == {
        "rows": 8,
        "valid": 2,
        "invalid": 6,
        "would_create": 2,
        "would_update": 0,
        "unchanged": 0,
    }
    found = [(e["row"], e["column"], e["reason"]) for e in preview["errors"]]
    assert [(r, c) for r, c, _ in found] == [
        (3, "When"),
        (4, "Lat"),
        (5, "Speed km"),
        (6, "Sample"),
        (7, "Moving"),
        (9, "Sample"),
    ]
    assert found[0][2] == "not an ISO 8601 date"
    assert found[1][2] == "must be at most 90"
    assert found[3][2] == "duplicate id: row 2 has it too"
    assert preview["errors"][0]["value"] == "not a date"
    assert preview["error_total"] == 6
    # The missing item is a warning, and the sample keeps no link to it.
    assert [(w["row"], w["column"]) for w in preview["warnings"]] == [(8, "Item")]
    assert [s["id"] for s in preview["sample"]] == [planted["ids"][0], planted["ids"][6]]
    assert preview["sample"][1]["timeline_item_id"] is None
    assert preview["sample"][1]["source"] == "LocoKit2"  # the Arc default of a new row
    assert db_rows(settings.database_url, person.id, "samples") == []

    with pytest.raises(Conflict):
        ferry.service().confirm(job.id)
    assert ferry.store.get(job.id).status == "awaiting_confirmation"

    done = ferry.confirm(job, skip_invalid=True)

    assert done.status == "succeeded", done.error
    stored = _rows(settings, person.id, "samples")
    assert set(stored) == {planted["ids"][0], planted["ids"][6]}
    assert stored[planted["ids"][6]]["date"] == datetime(2024, 1, 1, 8, 6, tzinfo=UTC)
    assert stored[planted["ids"][0]]["speed"] == 1.5
    assert done.result is not None
    assert done.result["counts"] == {"created": 2, "updated": 0, "skipped": 0, "invalid": 6}


def test_given_bad_cells_and_confirm_when_imported_then_it_fails_with_validation_failed(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    data, planted = _planted(settings, person.id)

    job = ferry.import_(
        person.id,
        data,
        "mine.csv",
        table="samples",
        mapping=json.dumps(planted["mapping"]),
        confirm=True,
    )

    assert job.status == "failed"
    assert job.error is not None and job.error["code"] == "validation_failed"
    assert job.preview is not None and job.preview["error_total"] == 6
    assert db_rows(settings.database_url, person.id, "samples") == []


def test_given_an_awaiting_import_when_remapped_then_the_stored_file_is_validated_again(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    ids = _sample_ids(2)
    data = _csv(
        ["Key", "At", "Speed"],
        [[ids[0], "2024-01-01T10:00:00Z", "3"], [ids[1], "2024-01-01T11:00:00Z", "4"]],
    )
    job = ferry.import_(person.id, data, "a.csv", table="samples")
    assert job.status == "awaiting_confirmation"
    assert job.preview is not None
    assert job.preview["mapping"] == {"Speed": "speed"}
    assert job.preview["unmapped"] == ["Key", "At"]
    assert job.preview["error_total"] == 2  # new rows without a date

    ferry.service().remap(job.id, account_id=person.id, mapping={"Key": "id", "At": "date"})
    again = ferry.run(job.id)

    assert again.status == "awaiting_confirmation"
    assert again.preview is not None
    assert again.preview["mapping"] == {"Key": "id", "At": "date", "Speed": "speed"}
    assert again.preview["error_total"] == 0
    assert again.preview["counts"]["would_create"] == 2
    done = ferry.confirm(again)
    assert done.status == "succeeded"
    assert set(_rows(settings, person.id, "samples")) == set(ids)


@pytest.mark.parametrize(
    ("mapping", "column"),
    [({"A": "no_such"}, "no_such"), ({"A": "speed", "B": "speed"}, "speed")],
)
def test_given_a_bad_mapping_when_submitted_or_remapped_then_422_names_it(
    ferry: Ferry, account: tuple[Account, str], mapping: dict[str, str], column: str
) -> None:
    person, _ = account
    with pytest.raises(ValidationFailed) as refused:
        ferry.submit(
            person.id, b"A,B\r\n1,2\r\n", "a.csv", table="samples", mapping=json.dumps(mapping)
        )
    assert refused.value.details == {"field": "mapping", "column": column}
    job = ferry.import_(person.id, b"A,B\r\n1,2\r\n", "a.csv", table="samples")
    with pytest.raises(ValidationFailed):
        ferry.service().remap(job.id, account_id=person.id, mapping=mapping)


# --- insert and upsert ------------------------------------------------------------------------


def test_upsert_updates_changed_rows_keeps_unchanged_ones_and_insert_refuses_existing_ids(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    ids = _sample_ids(3)
    first = _csv(
        ["id", "date", "speed", "source"],
        [[ids[0], "2024-01-01T10:00:00Z", "1", "a"], [ids[1], "2024-01-01T11:00:00Z", "2", "b"]],
    )
    assert (
        ferry.import_(person.id, first, "a.csv", table="samples", confirm=True).status
        == "succeeded"
    )
    before = _rows(settings, person.id, "samples")
    second = _csv(
        ["id", "speed"],
        [[ids[0], "1"], [ids[1], "20"], [ids[2], "3"]],
    )

    upsert = ferry.import_(person.id, second, "b.csv", table="samples")
    insert = ferry.import_(person.id, second, "b.csv", table="samples", mode="insert")

    assert upsert.preview is not None and insert.preview is not None
    # ids[2] is new but the file has no date for it: a new sample needs one.
    assert upsert.preview["counts"] == {
        "rows": 3,
        "valid": 2,
        "invalid": 1,
        "would_create": 0,
        "would_update": 1,
        "unchanged": 1,
    }
    assert [(e["row"], e["reason"]) for e in upsert.preview["errors"]] == [
        (4, "a new row needs date; the file has no column for it")
    ]
    assert [(e["row"], e["column"]) for e in insert.preview["errors"]] == [
        (2, "id"),
        (3, "id"),
        (4, None),
    ]
    ferry.service().cancel(insert.id)
    done = ferry.confirm(upsert, skip_invalid=True)
    assert done.result is not None
    assert done.result["counts"] == {"created": 0, "updated": 1, "skipped": 1, "invalid": 1}
    after = _rows(settings, person.id, "samples")
    assert after[ids[1]] == {**before[ids[1]], "speed": 20.0}  # unmapped columns kept
    assert after[ids[0]] == before[ids[0]]


def test_insert_without_an_id_column_generates_ids(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    data = _csv(
        ["Date", "Latitude"], [["2024-01-01T10:00:00Z", "1"], ["2024-01-01T10:00:01Z", "2"]]
    )

    done = ferry.import_(person.id, data, "a.csv", table="samples", mode="insert", confirm=True)

    assert done.status == "succeeded"
    stored = _rows(settings, person.id, "samples")
    assert sorted(r["latitude"] for r in stored.values()) == [1.0, 2.0]
    assert all(uuid.UUID(i) for i in stored)


# --- XLSX as spreadsheets write it --------------------------------------------------------------


def _xlsx(tmp_path: Path, rows: list[list[Any]], *, dimension: str | None = None) -> bytes:
    """A workbook written by openpyxl; optionally with a wrong claimed dimension."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "mine"
    for row in rows:
        sheet.append(row)
    path = tmp_path / "book.xlsx"
    book.save(path)
    if dimension is None:
        return path.read_bytes()
    patched = tmp_path / "patched.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(patched, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(
                    rb'<dimension ref="[^"]*"', f'<dimension ref="{dimension}"'.encode(), data
                )
            target.writestr(item, data)
    return patched.read_bytes()


@pytest.mark.parametrize("dimension", ["A1:B2", "A1:Z1048576"])
def test_given_an_xlsx_with_a_wrong_dimension_and_formulas_when_imported_then_rows_are_as_cached(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], tmp_path: Path, dimension: str
) -> None:
    """The sheet's claimed size is not trusted; a formula gives its cached value (none when
    the writer cached none: openpyxl caches none, so the cell is empty), never evaluated."""
    person, _ = account
    ids = _sample_ids(5)
    rows: list[list[Any]] = [["id", "date", "speed", "source"]]
    for i, key in enumerate(ids):
        rows.append(
            [key, datetime(2024, 1, 1, 10, i, 0, 250000), 1.5 + i, "=1+1" if i == 4 else "app"]
        )

    done = ferry.import_(
        person.id,
        _xlsx(tmp_path, rows, dimension=dimension),
        "book.xlsx",
        table="samples",
        timezone="Europe/Berlin",
        confirm=True,
    )

    assert done.status == "succeeded", done.error
    assert done.preview is not None and done.preview["format"] == "xlsx"
    stored = _rows(settings, person.id, "samples")
    assert set(stored) == set(ids)
    assert stored[ids[0]]["date"] == datetime(2024, 1, 1, 9, 0, 0, 250000, tzinfo=UTC)
    assert [stored[k]["speed"] for k in ids] == [1.5, 2.5, 3.5, 4.5, 5.5]
    # openpyxl writes a formula without a cached value: the cell reads empty, so the
    # sample takes the Arc default; the formula text itself is never stored.
    assert stored[ids[4]]["source"] == "LocoKit2"


# --- SPEC 11's bad files: job failed, bad_file, nothing written ---------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _many_empty_rows(tmp_path: Path) -> bytes:
    path = tmp_path / "book.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "date"])
    book.save(path)
    rows = b"".join(b'<row r="%d"/>' % n for n in range(2, 1_000_002))
    patched = tmp_path / "empty.xlsx"
    with (
        zipfile.ZipFile(path) as source,
        zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", rows + b"</sheetData>")
            target.writestr(item.filename, data, zipfile.ZIP_DEFLATED)
    return patched.read_bytes()


BAD_FILES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "binary": (
        lambda _: b"\x00\x01\x02\x03gzip?\x00" * 100,
        "not a CSV, TSV, JSON, JSON Lines or XLSX",
    ),
    "a zip, not a workbook": (lambda _: _zip({"a.txt": b"hello"}), "not an XLSX workbook"),
    "undecodable": (lambda _: b"id,name\r\n1,\x81\x8d\x8f\x90\x9d\r\n", "undecodable text"),
    "empty": (lambda _: b"", "a header row is required"),
    "blank header": (lambda _: b",,\r\n1,2,3\r\n", "no header row"),
    "over 500 columns": (
        lambda _: (",".join(f"c{i}" for i in range(501)) + "\r\n").encode(),
        "501 columns; at most 500",
    ),
    "a field over 1 MiB": (
        lambda _: b"id,name\r\n1,ok\r\n2," + b"x" * (1024 * 1024 + 10) + b"\r\n",
        "row 3: a field over 1 MiB",
    ),
    "a JSON field over 1 MiB": (
        lambda _: json.dumps([{"id": "a"}, {"id": "x" * (1024 * 1024 + 10)}]).encode(),
        "row 3: a field over 1 MiB",
    ),
    "truncated JSON": (lambda _: b'[{"id": "a"}, {"id": ', "invalid JSON"),
    "a zip bomb": (
        lambda _: _zip(
            {"xl/workbook.xml": b"<w/>", "xl/worksheets/sheet1.xml": b" " * 300_000_000}
        ),
        "a zip bomb",
    ),
    "a million empty rows": (_many_empty_rows, "empty rows in a row"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_given_a_bad_file_when_imported_then_the_job_fails_with_bad_file_and_nothing_is_written(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], tmp_path: Path, case: str
) -> None:
    person, _ = account
    _seed(settings, person.id, days=1)
    before = _rows(settings, person.id, "samples")
    make, message = BAD_FILES[case]

    done = ferry.import_(person.id, make(tmp_path), "file.csv", table="samples", confirm=True)

    assert done.status == "failed"
    assert done.error is not None and done.error["code"] == "bad_file"
    assert message in done.error["message"]
    assert _rows(settings, person.id, "samples") == before
    with raw_connection(settings.database_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'ferry_staging'"
            " AND tablename LIKE %s",
            (f"j_{done.id.replace('-', '')}%",),
        ).fetchone()
        assert left == (0,)


def test_given_rows_with_too_many_or_too_few_fields_when_previewed_then_each_is_a_row_error(
    ferry: Ferry, account: tuple[Account, str]
) -> None:
    person, _ = account
    ids = _sample_ids(3)
    data = (
        f"id;date\r\n{ids[0]};2024-01-01T00:00:00Z\r\n{ids[1]}\r\n"
        f"{ids[2]};2024-01-01T00:00:00Z;extra\r\n"
    ).encode("windows-1252")

    job = ferry.import_(person.id, data, "semi.txt", table="samples")

    assert job.preview is not None
    assert job.preview["delimiter"] == ";"
    assert [(e["row"], e["column"], e["reason"]) for e in job.preview["errors"]] == [
        (3, None, "1 fields; the header has 2"),
        (4, None, "3 fields; the header has 2"),
    ]
    assert job.preview["counts"]["valid"] == 1


def test_given_windows_1252_text_and_a_bom_when_read_then_the_encoding_is_reported(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    places = [str(uuid.uuid4()), str(uuid.uuid4())]
    latin = f"id\tname\tlatitude\tlongitude\r\n{places[0]}\tCaf\xe9\t1\t2\r\n".encode(
        "windows-1252"
    )
    bom = ("\ufeff" + f"ID,Name,Latitude,Longitude\r\n{places[1]},Café,1,2\r\n").encode("utf-8")

    first = ferry.import_(person.id, latin, "p.tsv", table="places", confirm=True)
    second = ferry.import_(person.id, bom, "p.csv", table="places", confirm=True)

    assert first.preview is not None and second.preview is not None
    assert (first.preview["format"], first.preview["encoding"]) == ("tsv", "windows-1252")
    assert (second.preview["format"], second.preview["encoding"]) == ("csv", "utf-8")
    assert second.preview["header"] == ["ID", "Name", "Latitude", "Longitude"]
    names = {k: r["name"] for k, r in _rows(settings, person.id, "places").items()}
    assert names == {places[0]: "Café", places[1]: "Café"}


# --- undo data ------------------------------------------------------------------------------------


def test_given_an_upsert_when_applied_then_the_rows_it_replaced_are_recorded_for_undo(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    person, _ = account
    ids = _sample_ids(3)
    first = _csv(["id", "date", "speed"], [[k, "2024-01-01T10:00:00Z", "1"] for k in ids])
    assert (
        ferry.import_(person.id, first, "a.csv", table="samples", confirm=True).status
        == "succeeded"
    )
    before = _rows(settings, person.id, "samples")
    second = _csv(["id", "speed"], [[ids[0], "1"], [ids[1], "9"], [ids[2], "8"]])

    done = ferry.import_(person.id, second, "b.csv", table="samples", confirm=True)

    assert done.status == "succeeded"
    with raw_connection(settings.database_url) as conn:
        recorded = conn.execute(
            "SELECT id::text, before->>'speed' FROM import_undo_rows WHERE job_id = %s"
            " AND kind = 'samples' ORDER BY 1",
            (done.id,),
        ).fetchall()
    # ids[0] was unchanged (not written, nothing to undo); the other two as they were.
    assert recorded == sorted((k, "1") for k in (ids[1], ids[2]))
    assert before[ids[1]]["speed"] == 1.0


def test_given_rows_written_since_the_preview_when_confirmed_then_conflicts_are_decided_at_apply(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """The preview saw new rows; another import wrote them meanwhile: the apply, under the
    lock, still takes the conflict path and nothing fails or doubles."""
    person, _ = account
    ids = _sample_ids(2)
    data = _csv(["id", "date", "speed"], [[k, "2024-01-01T10:00:00Z", "1"] for k in ids])
    first = ferry.import_(person.id, data, "a.csv", table="samples")
    assert first.preview is not None and first.preview["counts"]["would_create"] == 2
    other = _csv(["id", "date", "speed"], [[k, "2024-01-01T10:00:00Z", "5"] for k in ids])
    assert ferry.import_(person.id, other, "b.csv", table="samples", confirm=True).status == (
        "succeeded"
    )

    done = ferry.confirm(first)

    assert done.status == "succeeded", done.error
    assert done.result is not None
    assert done.result["counts"] == {"created": 0, "updated": 2, "skipped": 0, "invalid": 0}
    assert {r["speed"] for r in _rows(settings, person.id, "samples").values()} == {1.0}
