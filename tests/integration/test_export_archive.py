"""The archive export, run in-process through the job runner, checked record by record.

Real PostgreSQL and storage; live progress in memory; the publisher only records. Every
archive is verified with `tests.archive_check` against the database (SPEC 4), so these
tests say what a person relies on: every record they own is in the archive, exactly as
stored, in the right file, and nothing of anyone else's.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg.rows import dict_row
from sqlalchemy import Engine, text

from shared.archive.export import ExportArchive
from shared.archive.records import encode_item, encode_place, encode_sample
from shared.errors import StorageError
from shared.jobs.attempt import JobContext
from shared.jobs.live import MemoryLiveStore
from shared.jobs.pipeline import Outcome
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.states import JobType
from shared.jobs.store import Job, JobStore
from shared.params import ExportArchiveParams
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from shared.store.storage import LocalStorage
from shared.timefmt import parse_iso
from tests.archive_check import (
    Archive,
    Expected,
    check_archive,
    keepers_from_archive,
    keepers_from_db,
    load_rows,
)
from tests.polling import wait_for

START = datetime(2024, 12, 28, tzinfo=UTC)
WEEK = timedelta(days=7)
PHASE_ORDER = ("prepare", "places", "items", "samples", "finalize")


@dataclass
class Ferry:
    """The export's collaborators for one test, and a way to run jobs to their end."""

    settings: Settings
    engine: Engine
    store: JobStore
    live: MemoryLiveStore = field(default_factory=MemoryLiveStore)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)

    @property
    def storage(self) -> LocalStorage:
        return LocalStorage(self.settings.storage_root)

    def runner(self, pipeline: Any = None) -> JobRunner:
        pipelines = {JobType.EXPORT_ARCHIVE.value: pipeline or ExportArchive()}
        return JobRunner(
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
            pipelines=pipelines,
            name="test-worker",
        )

    def create(self, account_id: str, **params: Any) -> Job:
        job, created = self.store.create(
            account_id=account_id,
            type=JobType.EXPORT_ARCHIVE,
            params=ExportArchiveParams(**params).to_json(),
        )
        assert created
        return job

    def run(self, job_id: str, pipeline: Any = None) -> Job:
        """Run one attempt (waiting out a retry delay); returns the job row afterwards."""
        runner = self.runner(pipeline)
        wait_for(lambda: runner.run(job_id), timeout=30, what=f"an attempt of {job_id} to run")
        return self.store.get(job_id)

    def export(self, account_id: str, **params: Any) -> Job:
        """Create an export job and run it; asserts it succeeded."""
        job = self.run(self.create(account_id, **params).id)
        assert job.status == "succeeded", job.error
        return job

    def zip_path(self, job: Job) -> Path:
        assert job.result is not None
        return self.storage.path(job.result["key"])


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> Ferry:
    return Ferry(settings=settings, engine=engine, store=JobStore(engine))


def _seed(settings: Settings, account_id: str, *, days: int = 10, seed: int = 1) -> None:
    seed_timeline(
        settings.database_url, account_id, days=days, samples_per_day=300, seed=seed, start=START
    )


def _insert(database_url: str, table: str, account_id: str, rows: list[dict[str, Any]]) -> None:
    if table == "timeline_items":
        rows = [_item(**row) for row in rows]
    with raw_connection(database_url) as conn:
        for row in rows:
            columns = ", ".join(("account_id", *row))
            marks = ", ".join(["%s"] * (len(row) + 1))
            conn.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", (account_id, *row.values())
            )
        conn.commit()


def _execute(database_url: str, sql: str, params: Mapping[str, Any] | tuple[Any, ...]) -> int:
    with raw_connection(database_url) as conn:
        count = conn.execute(sql, params).rowcount
        conn.commit()
    return count


def _uuid() -> str:
    return str(uuid.uuid4())


def _item(**row: Any) -> dict[str, Any]:
    """An item row with what its visit or trip part needs (the Arc apps' rules), if unsaid.

    The base columns the apps need have database defaults; a part's columns cannot, as
    visits and trips share the table.
    """
    saved = row.get("last_saved", START)
    if row["is_visit"]:
        part = {
            "radius_mean": 50.0,
            "radius_sd": 10.0,
            "confirmed_place": False,
            "uncertain_place": True,
            "visit_last_saved": saved,
        }
    else:
        part = {"distance": 0.0, "speed": 0.0, "uncertain_activity_type": True}
        part["trip_last_saved"] = saved
    return {**part, **row}


# --- full export -------------------------------------------------------------------------------


def test_given_a_seeded_account_when_exported_then_every_record_is_in_the_archive_as_stored(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """A full export holds every place (visited or not), item (deleted too) and sample."""
    person, _ = account
    _seed(settings, person.id)

    job = ferry.export(person.id)

    archive = check_archive(ferry.zip_path(job), settings.database_url, person.id, job_id=job.id)
    rows = load_rows(settings.database_url, person.id)
    assert archive.stats() == {
        "placeCount": len(rows["places"]),
        "itemCount": len(rows["items"]),
        "sampleCount": len(rows["samples"]),
    }
    assert any(obj["base"].get("deleted") for obj in archive.records["items"].values())
    assert len(archive.data_files("places")) > 1
    assert job.result is not None
    assert job.result["stats"] == archive.metadata["stats"]
    assert job.result["bytes"] == ferry.zip_path(job).stat().st_size
    assert job.result["files"] == len(archive.infos)


def test_given_tricky_rows_when_exported_then_the_sql_json_equals_the_python_encoder(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """What PostgreSQL writes is, object for object, what `records.encode_*` gives."""
    person, _ = account
    url = settings.database_url
    tricky = 'Joe\'s "Best" Café \\ corner\nsecond line\ttab \x01\x02\x1f / 🚀 日本語 \u2028'
    full_place, sparse_place = "0" + _uuid()[1:], "f" + _uuid()[1:]
    visit, trip, bare_visit, bare_trip = _uuid(), _uuid(), _uuid(), _uuid()
    _insert(
        url,
        "places",
        person.id,
        [
            {
                "id": full_place,
                "name": tricky,
                "street_address": "1 \\\\ Backslash Lane",
                "locality": "Zürich",
                "country_code": "CH",
                "seconds_from_gmt": -36000,
                "latitude": -33.868819999999997,
                "longitude": 151.20929,
                "radius_mean": 1 / 3,
                "radius_sd": 1e-7,
                "is_stale": True,
                "visit_count": 0,
                "visit_days": 2147483647,
                "last_visit_date": datetime(2024, 1, 31, 9, 30, 0, 250000, tzinfo=UTC),
                "mapbox_place_id": "poi.1",
                "mapbox_category": "cafe",
                "mapbox_maki_icon": "cafe",
                "google_place_id": "ChIJ",
                "google_primary_type": "cafe",
                "foursquare_place_id": "4b0",
                "foursquare_category_id": -1,
                "user_category": "{}[],:",
                "source": "",
                "last_saved": datetime(2024, 2, 1, tzinfo=UTC),
            },
            {
                "id": sparse_place,
                "name": "x",
                "latitude": 0.0,
                "longitude": -0.5,
                "last_saved": datetime(2024, 2, 1, 0, 0, 0, 123456, tzinfo=UTC),
            },
        ],
    )
    _insert(
        url,
        "timeline_items",
        person.id,
        [
            {"id": bare_visit, "is_visit": True, "start_date": START, "end_date": START},
            {
                "id": visit,
                "is_visit": True,
                "start_date": datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
                "end_date": datetime(2024, 2, 1, 0, 10, tzinfo=UTC),
                "source": tricky,
                "source_version": "9.2.0",
                "disabled": False,
                "deleted": True,
                "locked": True,
                "last_saved": datetime(2024, 2, 1, 0, 10, 0, 500000, tzinfo=UTC),
                "previous_item_id": None,
                "step_count": 2147483647,
                "floors_ascended": 0,
                "floors_descended": -2,
                "average_altitude": 5e-324,
                "active_energy_burned": 1e300,
                "average_heart_rate": 0.1 + 0.2,
                "max_heart_rate": 170.0,
                "latitude": 90.0,
                "longitude": -180.0,
                "radius_mean": 12.5,
                "radius_sd": 2.0,
                "place_id": full_place,
                "confirmed_place": True,
                "uncertain_place": False,
                "custom_title": tricky,
                "street_address": "",
                "locality": "Zürich",
                "country_code": "CH",
            },
            {
                "id": trip,
                "is_visit": False,
                "start_date": datetime(2024, 2, 1, 0, 10, tzinfo=UTC),
                "end_date": datetime(2024, 2, 1, 0, 10, 30, 500000, tzinfo=UTC),
                "last_saved": datetime(2024, 2, 2, tzinfo=UTC),
                "previous_item_id": visit,
                "distance": 1234.5678,
                "speed": 2 / 3,
                "classified_activity_type": 2,
                "confirmed_activity_type": 3,
                "uncertain_activity_type": False,
                "trip_last_saved": datetime(2024, 2, 2, 0, 0, 0, 1, tzinfo=UTC),
            },
            {
                "id": bare_trip,
                "is_visit": False,
                "start_date": datetime(2021, 1, 3, 12, tzinfo=UTC),
                "end_date": datetime(2021, 1, 3, 13, tzinfo=UTC),
            },
        ],
    )
    _execute(url, "UPDATE timeline_items SET next_item_id = %s WHERE id = %s", (trip, visit))
    _insert(
        url,
        "samples",
        person.id,
        [
            {
                "id": _uuid(),
                "date": datetime(2024, 2, 1, 0, 10, 5, 1, tzinfo=UTC),
                "seconds_from_gmt": 3600,
                "source": tricky,
                "source_version": "",
                "moving_state": -1,
                "recording_state": 5,
                "disabled": True,
                "last_saved": datetime(2024, 2, 1, 0, 11, tzinfo=UTC),
                "timeline_item_id": trip,
                "latitude": -90.0,
                "longitude": 179.99999999999997,
                "altitude": -0.001,
                "horizontal_accuracy": 1e-300,
                "vertical_accuracy": 123456789.123456789,
                "speed": 0.0,
                "course": 359.99999999999994,
                "step_hz": 1.5,
                "xy_acceleration": 1 / 7,
                "z_acceleration": -1 / 7,
                "heart_rate": 72.0,
                "classified_activity_type": 2,
                "confirmed_activity_type": -1,
            },
            {"id": _uuid(), "date": datetime(2024, 12, 29, 23, 59, 59, 999999, tzinfo=UTC)},
            {"id": _uuid(), "date": datetime(2024, 12, 30, tzinfo=UTC)},
            {"id": _uuid(), "date": datetime(2021, 1, 3, 12, 0, 0, 5000, tzinfo=UTC)},
        ],
    )

    job = ferry.export(person.id)

    archive = check_archive(ferry.zip_path(job), url, person.id)
    rows = load_rows(url, person.id)
    encoders: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
        "places": encode_place,
        "items": encode_item,
        "samples": encode_sample,
    }
    for kind, encode in encoders.items():
        assert archive.ids(kind) == set(rows[kind])
        for record_id, row in rows[kind].items():
            assert archive.records[kind][record_id] == encode(row), (kind, record_id)
    assert archive.records["places"][full_place]["name"] == tricky
    assert archive.records["items"][visit]["visit"]["customTitle"] == tricky
    # A bare row: what the Arc apps require is there all the same (the database defaults).
    bare = archive.records["items"][bare_trip]
    saved = bare["base"]["lastSaved"]
    assert bare == {
        "base": {
            "id": bare_trip.upper(),
            "isVisit": False,
            "startDate": "2021-01-03T12:00:00Z",
            "endDate": "2021-01-03T13:00:00Z",
            "source": "LocoKit2",
            "sourceVersion": "9.0.0",
            "disabled": False,
            "deleted": False,
            "locked": False,
            "samplesChanged": False,
            "lastSaved": saved,
        },
        "trip": {
            "itemId": bare_trip.upper(),
            "distance": 0.0,
            "speed": 0.0,
            "uncertainActivityType": True,
            "lastSaved": "2024-12-28T00:00:00Z",
        },
    }
    assert archive.records["items"][trip]["trip"]["lastSaved"] == "2024-02-02T00:00:00.000001Z"
    assert archive.records["items"][visit]["base"]["startDate"] == "2024-01-31T23:59:59.999999Z"
    assert archive.located["items"][visit] == "items/2024-01.json"
    assert archive.located["places"][full_place] == "places/0.json"
    assert archive.located["places"][sparse_place] == "places/F.json"
    assert {archive.located["samples"][s] for s in archive.ids("samples")} == {
        "samples/2024-W05.json.gz",
        "samples/2024-W52.json.gz",
        "samples/2025-W01.json.gz",
        "samples/2020-W53.json.gz",
    }


# --- range and incremental exports -------------------------------------------------------------


def test_given_a_range_when_exported_then_it_holds_exactly_the_spec_selection(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """Samples in [from, to), items overlapping it, and the places those items reference."""
    person, _ = account
    _seed(settings, person.id)
    start = datetime(2024, 12, 30, 10, 17, tzinfo=UTC)
    end = datetime(2025, 1, 2, 3, 0, tzinfo=UTC)
    instant_at_start, ends_at_start, starts_at_end, spanning = (_uuid() for _ in range(4))
    sample_at_start, sample_at_end = _uuid(), _uuid()
    _insert(
        settings.database_url,
        "timeline_items",
        person.id,
        [
            {"id": instant_at_start, "is_visit": False, "start_date": start, "end_date": start},
            {
                "id": ends_at_start,
                "is_visit": False,
                "start_date": start - timedelta(minutes=5),
                "end_date": start,
            },
            {
                "id": starts_at_end,
                "is_visit": False,
                "start_date": end,
                "end_date": end + timedelta(minutes=5),
            },
            {
                "id": spanning,
                "is_visit": False,
                "start_date": start - timedelta(days=1),
                "end_date": end + timedelta(days=1),
            },
        ],
    )
    _insert(
        settings.database_url,
        "samples",
        person.id,
        [{"id": sample_at_start, "date": start}, {"id": sample_at_end, "date": end}],
    )

    job = ferry.export(person.id, start=start, end=end)

    archive = check_archive(
        ferry.zip_path(job), settings.database_url, person.id, start=start, end=end
    )
    items = archive.ids("items")
    assert {instant_at_start, spanning} <= items
    assert not {ends_at_start, starts_at_end} & items
    assert sample_at_start in archive.ids("samples")
    assert sample_at_end not in archive.ids("samples")
    rows = load_rows(settings.database_url, person.id)
    assert 0 < len(archive.ids("places")) < len(rows["places"])
    assert 0 < len(items) < len(rows["items"])
    assert 0 < len(archive.ids("samples")) < len(rows["samples"])
    assert archive.metadata["exportRange"] == {
        "start": "2024-12-30T10:17:00Z",
        "end": "2025-01-02T03:00:00Z",
    }


def test_given_only_an_end_when_exported_then_everything_before_it_is_in_the_archive(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """A range open at the start: samples before `to`, items starting before it."""
    person, _ = account
    _seed(settings, person.id)
    end = datetime(2025, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)

    job = ferry.export(person.id, end=end)

    archive = check_archive(ferry.zip_path(job), settings.database_url, person.id, end=end)
    rows = load_rows(settings.database_url, person.id)
    assert 0 < len(archive.ids("samples")) < len(rows["samples"])
    assert 0 < len(archive.ids("items")) < len(rows["items"])
    assert max(parse_iso(s["date"]) for s in archive.records["samples"].values()) < end
    assert archive.metadata["exportRange"]["end"] == "2025-01-01T12:00:00.5Z"


def test_given_a_previous_export_when_exported_incrementally_then_only_later_changes_are_in_it(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """An incremental export holds the rows written after the previous export, whatever
    their lastSaved says (these writes leave it alone, or set it in the past)."""
    person, _ = account
    url = settings.database_url
    _seed(settings, person.id)
    first = ferry.export(person.id)
    check_archive(ferry.zip_path(first), url, person.id)
    rows = load_rows(url, person.id)
    changed_places = sorted(rows["places"])[:2]
    changed_items = sorted(rows["items"])[:3]
    changed_samples = sorted(rows["samples"])[:5]
    new_place = _uuid()
    for sql, ids in (
        ("UPDATE places SET name = 'Renamed \"home\"'", changed_places),
        ("UPDATE timeline_items SET step_count = 7", changed_items),
        ("UPDATE samples SET heart_rate = 61.5", changed_samples),
    ):
        touched = _execute(url, f"{sql} WHERE account_id = %s AND id = ANY(%s)", (person.id, ids))
        assert touched == len(ids)
    _insert(
        url,
        "places",
        person.id,
        [
            {
                "id": new_place,
                "name": "New",
                "latitude": 1.0,
                "longitude": 2.0,
                "last_saved": START - timedelta(days=400),
            }
        ],
    )

    job = ferry.export(person.id, incremental=True)

    expected = Expected(
        frozenset({*changed_places, new_place}),
        frozenset(changed_items),
        frozenset(changed_samples),
    )
    archive = check_archive(
        ferry.zip_path(job), url, person.id, export_type="incremental", expected=expected
    )
    assert archive.records["places"][changed_places[0]]["name"] == 'Renamed "home"'
    assert archive.metadata["appMetadata"]["incrementalSince"] == first.result["session_start"]


# --- layout options and edge cases -------------------------------------------------------------


@pytest.mark.parametrize("compress", ["all", "none"])
def test_given_a_compress_option_when_exported_then_every_folder_follows_it(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], compress: str
) -> None:
    """compress=all gzips places, items and samples; compress=none gzips nothing."""
    person, _ = account
    _seed(settings, person.id, days=3)

    job = ferry.export(person.id, compress=compress)

    archive = check_archive(
        ferry.zip_path(job), settings.database_url, person.id, compress=compress
    )
    suffixes = {path.rsplit(".", 1)[1] for path in archive.data_files()}
    assert suffixes == ({"gz"} if compress == "all" else {"json"})
    assert {p.split("/")[0] for p in archive.data_files()} == {"places", "items", "samples"}


def test_given_an_account_without_data_when_exported_then_the_archive_is_valid_and_empty(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """No places, items or samples: metadata and manifest, zero stats, progress complete."""
    person, _ = account

    job = ferry.export(person.id)

    archive = check_archive(ferry.zip_path(job), settings.database_url, person.id)
    assert archive.data_files() == []
    assert set(archive.infos) == {"metadata.json", "manifest.json"}
    assert archive.metadata["stats"] == {"placeCount": 0, "itemCount": 0, "sampleCount": 0}
    assert archive.manifest["files"] == []
    assert job.progress is not None
    assert job.progress["overall"] == 1.0
    assert job.progress["rows_done"] == job.progress["rows_total"] == 0


def test_given_two_accounts_with_a_shared_id_when_one_exports_then_the_other_never_appears(
    ferry: Ferry, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Each archive holds its own account's rows only, even where the ids collide."""
    person, _ = account
    other = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    _seed(settings, person.id, days=4, seed=1)
    _seed(settings, other.id, days=4, seed=2)
    shared_id = sorted(load_rows(settings.database_url, person.id)["places"])[0]
    _insert(
        settings.database_url,
        "places",
        other.id,
        [
            {
                "id": shared_id,
                "name": "Someone else's place",
                "latitude": 10.0,
                "longitude": 10.0,
                "last_saved": datetime.now(UTC),
            }
        ],
    )

    mine = ferry.export(person.id)
    theirs = ferry.export(other.id)

    my_archive = check_archive(ferry.zip_path(mine), settings.database_url, person.id)
    their_archive = check_archive(ferry.zip_path(theirs), settings.database_url, other.id)
    for kind in ("places", "items", "samples"):
        assert my_archive.ids(kind).isdisjoint(their_archive.ids(kind) - {shared_id})
    assert my_archive.records["places"][shared_id]["name"] != "Someone else's place"
    assert their_archive.records["places"][shared_id]["name"] == "Someone else's place"


def test_given_a_timeline_across_new_year_when_exported_then_weeks_follow_iso_week_years(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """2024-12-28..29 are in 2024-W52; 2024-12-30 and 31 are in 2025-W01 (UTC)."""
    person, _ = account
    _seed(settings, person.id, days=10)

    job = ferry.export(person.id)

    archive = check_archive(ferry.zip_path(job), settings.database_url, person.id)
    assert archive.data_files("samples") == [
        "samples/2024-W52.json.gz",
        "samples/2025-W01.json.gz",
        "samples/2025-W02.json.gz",
    ]
    assert archive.data_files("items") == ["items/2024-12.json", "items/2025-01.json"]
    w01_days = {
        parse_iso(s["date"]).date()
        for i, s in archive.records["samples"].items()
        if archive.located["samples"][i] == "samples/2025-W01.json.gz"
    }
    assert datetime(2024, 12, 30).date() in w01_days
    assert datetime(2024, 12, 31).date() in w01_days
    assert max(parse_iso(s["date"]) for s in _records_in(archive, "samples/2024-W52.json.gz")) < (
        datetime(2024, 12, 30, tzinfo=UTC)
    )
    with raw_connection(settings.database_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT to_char(date AT TIME ZONE 'UTC', 'IYYY-\"W\"IW') AS week, count(*) AS n"
            " FROM samples WHERE account_id = %s GROUP BY 1",
            (person.id,),
        )
        weeks = {f"samples/{r['week']}.json.gz": r["n"] for r in cur}
    listed = {e["path"]: e["records"] for e in archive.manifest["files"]}
    assert {p: n for p, n in listed.items() if p.startswith("samples/")} == weeks


def _records_in(archive: Archive, path: str) -> list[dict[str, Any]]:
    kind = path.split("/", maxsplit=1)[0]
    return [archive.records[kind][i] for i, p in archive.located[kind].items() if p == path]


def test_given_keepers_and_non_keepers_when_exported_then_keeper_status_is_the_same(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """Keeper status (SPEC 3) computed from the archive equals the one from the database."""
    person, _ = account
    url = settings.database_url
    _seed(settings, person.id, days=3)
    short_visit, one_sample_trip, two_sample_trip = _uuid(), _uuid(), _uuid()
    moment = datetime(2023, 6, 1, tzinfo=UTC)
    _insert(
        url,
        "timeline_items",
        person.id,
        [
            {
                "id": short_visit,
                "is_visit": True,
                "start_date": moment,
                "end_date": moment + timedelta(seconds=119.5),
            },
            {
                "id": one_sample_trip,
                "is_visit": False,
                "start_date": moment,
                "end_date": moment + timedelta(minutes=5),
            },
            {
                "id": two_sample_trip,
                "is_visit": False,
                "start_date": moment,
                "end_date": moment + timedelta(seconds=60),
            },
        ],
    )
    _insert(
        url,
        "samples",
        person.id,
        [
            {"id": _uuid(), "date": moment, "timeline_item_id": one_sample_trip},
            {"id": _uuid(), "date": moment, "timeline_item_id": two_sample_trip},
            {"id": _uuid(), "date": moment, "timeline_item_id": two_sample_trip},
        ],
    )

    job = ferry.export(person.id)

    archive = check_archive(ferry.zip_path(job), url, person.id)
    from_archive = keepers_from_archive(archive)
    assert from_archive == keepers_from_db(url, person.id)
    assert from_archive[short_visit] is False
    assert from_archive[one_sample_trip] is False
    assert from_archive[two_sample_trip] is True
    assert set(from_archive.values()) == {True, False}


# --- progress ------------------------------------------------------------------------------------


def test_given_an_export_when_it_runs_then_progress_rises_through_the_phases_to_exactly_one(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """Phases in order, overall never falls, 1.0 only at the end; rows count the records."""
    person, _ = account
    _seed(settings, person.id)
    job = ferry.create(person.id)
    subscription = ferry.live.subscribe(job.id)

    done = ferry.run(job.id)

    events = []
    while (event := subscription.next_event(0.01)) is not None:
        events.append(event)
    subscription.close()
    seen = [e["progress"] for e in events if e["type"] == "progress"]
    assert done.status == "succeeded"
    assert len(seen) >= 5
    indexes = [PHASE_ORDER.index(p["phase"]) for p in seen]
    assert indexes == sorted(indexes)
    assert set(indexes) == set(range(len(PHASE_ORDER)))
    overall = [p["overall"] for p in seen]
    assert overall == sorted(overall)
    assert all(0 <= value < 1 for value in overall[:-1])
    archive = check_archive(ferry.zip_path(done), settings.database_url, person.id)
    records = sum(archive.stats().values())
    assert done.progress is not None
    assert done.progress["overall"] == 1.0
    assert done.progress["phase"] == "finalize"
    assert done.progress["rows_done"] == done.progress["rows_total"] == records
    assert seen[-1] == done.progress


# --- resume after an interrupted attempt ---------------------------------------------------------


class _FailAfterSampleFiles:
    """The export, failing with a retryable StorageError once `files` sample files are done."""

    phases = ExportArchive.phases

    def __init__(self, files: int) -> None:
        self.files = files
        self.inner = ExportArchive()

    def run(self, ctx: JobContext) -> Outcome:
        save = ctx.save_checkpoint

        def save_then_fail() -> None:
            save()
            written = [p for p in ctx.checkpoint.get("files", {}) if p.startswith("samples/")]
            if len(written) >= self.files:
                raise StorageError("the disk went away (test)")

        ctx.save_checkpoint = save_then_fail  # type: ignore[method-assign]
        return self.inner.run(ctx)

    def discard(self, job: Job, settings: Settings) -> None:
        self.inner.discard(job, settings)


class _ObserveFinishedFiles:
    """The export, noting inode and mtime of every data file when `finalize` starts."""

    phases = ExportArchive.phases

    def __init__(self) -> None:
        self.inner = ExportArchive()
        self.seen: dict[str, tuple[int, int]] = {}

    def run(self, ctx: JobContext) -> Outcome:
        start_phase = ctx.start_phase

        def observe(name: str) -> None:
            if name == "finalize":
                folder = ctx.work_dir / ctx.checkpoint["name"]
                for path in folder.rglob("*.json*"):
                    info = path.stat()
                    self.seen[path.relative_to(folder).as_posix()] = (info.st_ino, info.st_mtime_ns)
            start_phase(name)

        ctx.start_phase = observe  # type: ignore[method-assign]
        return self.inner.run(ctx)

    def discard(self, job: Job, settings: Settings) -> None:
        self.inner.discard(job, settings)


@dataclass
class _Interrupted:
    job: Job
    checkpointed: dict[str, dict[str, Any]]
    folder: Path
    stats: dict[str, tuple[int, int]]


@pytest.fixture
def interrupted(ferry: Ferry, settings: Settings, account: tuple[Account, str]) -> _Interrupted:
    """An export whose first attempt failed (retryable) after 2 of 3 sample files."""
    person, _ = account
    _seed(settings, person.id)
    job = ferry.run(ferry.create(person.id).id, _FailAfterSampleFiles(2))
    assert job.status == "queued" and job.attempt == 2, (job.status, job.error)
    retries = [e for e in ferry.store.history(job.id) if e.kind == "retry_scheduled"]
    assert [e.detail["code"] for e in retries if e.detail] == ["storage_error"]
    assert job.checkpoint is not None
    folder = ferry.storage.work_dirs(job.id)[1] / job.checkpoint["name"]
    files = job.checkpoint["files"]
    stats = {}
    for relative in files:
        info = (folder / relative).stat()
        stats[relative] = (info.st_ino, info.st_mtime_ns)
    return _Interrupted(job, files, folder, stats)


def test_given_an_interrupted_export_when_resumed_then_finished_files_are_kept_not_rewritten(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], interrupted: _Interrupted
) -> None:
    """Attempt 2 keeps attempt 1's checkpointed files and writes only the rest."""
    person, _ = account
    assert sorted(p for p in interrupted.checkpointed if p.startswith("samples/")) == [
        "samples/2024-W52.json.gz",
        "samples/2025-W01.json.gz",
    ]
    observer = _ObserveFinishedFiles()

    done = ferry.run(interrupted.job.id, observer)

    assert done.status == "succeeded" and done.attempt == 2
    resumed = [e for e in ferry.store.history(done.id) if e.kind == "resumed"]
    assert len(resumed) == 1 and resumed[0].attempt == 2
    assert resumed[0].detail is not None
    assert sorted(resumed[0].detail["kept"]) == sorted(interrupted.checkpointed)
    for relative, before in interrupted.stats.items():
        assert observer.seen[relative] == before, relative
    assert "samples/2025-W02.json.gz" in observer.seen
    archive = check_archive(ferry.zip_path(done), settings.database_url, person.id, job_id=done.id)
    assert archive.data_files() == sorted(observer.seen)
    assert done.progress is not None
    assert done.progress["rows_done"] == done.progress["rows_total"]
    assert done.progress["rows_done"] == sum(archive.stats().values())


def test_given_a_kept_file_corrupted_between_attempts_when_resumed_then_it_is_rewritten(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], interrupted: _Interrupted
) -> None:
    """A checkpointed file whose bytes changed fails its checksum and is written again."""
    person, _ = account
    corrupted = "samples/2025-W01.json.gz"
    path = interrupted.folder / corrupted
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    old = 978_307_200 * 1_000_000_000
    os.utime(path, ns=(old, old))
    observer = _ObserveFinishedFiles()

    done = ferry.run(interrupted.job.id, observer)

    assert done.status == "succeeded", done.error
    resumed = next(e for e in ferry.store.history(done.id) if e.kind == "resumed")
    assert resumed.detail is not None
    assert sorted(resumed.detail["kept"]) == sorted(set(interrupted.checkpointed) - {corrupted})
    assert observer.seen[corrupted][1] != old
    archive = check_archive(ferry.zip_path(done), settings.database_url, person.id)
    rewritten = archive.stored[corrupted]
    assert json.loads(gzip.decompress(rewritten))
    assert any(e["path"] == corrupted for e in archive.manifest["files"])


def test_given_data_changed_between_attempts_when_resumed_then_the_archive_is_the_new_snapshots(
    ferry: Ferry, settings: Settings, account: tuple[Account, str], interrupted: _Interrupted
) -> None:
    """SPEC 4: a resumed export gives the archive an uninterrupted export would give at the
    resumed attempt's snapshot. Between the attempts a sample changes in a week already
    written and in one not yet written, one is deleted, one moves to another week, and an
    item changes: exactly the files of the changed buckets are written again."""
    person, _ = account
    url = settings.database_url
    rows = load_rows(url, person.id)

    def week_of(day: datetime) -> list[str]:
        return sorted(i for i, r in rows["samples"].items() if day <= r["date"] < day + WEEK)

    w52, w01, w02 = (week_of(datetime(2024, 12, 23, tzinfo=UTC) + n * WEEK) for n in range(3))
    changed_in_written, moved = w52[0], w52[1]
    changed_in_unwritten, deleted = w02[0], w01[0]
    item = next(i for i, r in sorted(rows["items"].items()) if r["start_date"].month == 12)
    for sql, params in (
        (
            "UPDATE samples SET heart_rate = 77 WHERE account_id = %s AND id = %s",
            changed_in_written,
        ),
        ("UPDATE samples SET speed = 3.5 WHERE account_id = %s AND id = %s", changed_in_unwritten),
        ("DELETE FROM samples WHERE account_id = %s AND id = %s", deleted),
        (
            "UPDATE samples SET date = date + interval '14 days' WHERE account_id = %s AND id = %s",
            moved,
        ),
        ("UPDATE timeline_items SET step_count = 99 WHERE account_id = %s AND id = %s", item),
    ):
        assert _execute(url, sql, (person.id, params)) == 1
    observer = _ObserveFinishedFiles()

    done = ferry.run(interrupted.job.id, observer)

    assert done.status == "succeeded" and done.attempt == 2, done.error
    archive = check_archive(ferry.zip_path(done), url, person.id, job_id=done.id)
    assert archive.records["samples"][changed_in_written]["heartRate"] == 77
    assert archive.records["samples"][changed_in_unwritten]["speed"] == 3.5
    assert deleted not in archive.ids("samples")
    assert archive.located["samples"][moved] == "samples/2025-W02.json.gz"
    assert archive.records["items"][item]["base"]["stepCount"] == 99
    resumed = next(e for e in ferry.store.history(done.id) if e.kind == "resumed")
    assert resumed.detail is not None
    rewritten = {"samples/2024-W52.json.gz", "samples/2025-W01.json.gz", "items/2024-12.json"}
    assert set(resumed.detail["rewritten"]) == rewritten
    assert set(resumed.detail["kept"]) == set(interrupted.checkpointed) - rewritten
    for relative, before in interrupted.stats.items():
        kept = observer.seen[relative] == before
        assert kept is (relative not in rewritten), relative


class _TakenBeforeFinalize:
    """The export; as it reaches `finalize`, another attempt takes the job (the sweeper
    judged this one lost while it was frozen, say) and starts work of its own."""

    phases = ExportArchive.phases

    def __init__(self, engine: Engine) -> None:
        self.inner = ExportArchive()
        self.engine = engine
        self.newer: Path | None = None

    def run(self, ctx: JobContext) -> Outcome:
        start_phase = ctx.start_phase

        def take_then_start(name: str) -> None:
            start_phase(name)
            if name == "finalize":
                with self.engine.begin() as conn:
                    conn.execute(
                        text(
                            "UPDATE jobs SET attempt = attempt + 1, heartbeat_at = now()"
                            " WHERE id = :id"
                        ),
                        {"id": ctx.job.id},
                    )
                self.newer = ctx.storage.work_dir(ctx.job.id, ctx.attempt + 1) / "newer.bin"
                self.newer.write_bytes(b"attempt 2 owns this")

        ctx.start_phase = take_then_start  # type: ignore[method-assign]
        return self.inner.run(ctx)

    def discard(self, job: Job, settings: Settings) -> None:
        self.inner.discard(job, settings)


def test_given_an_export_whose_lease_was_taken_when_it_finalizes_then_it_publishes_nothing(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """SPEC 8: an attempt publishes only while it holds the lease, and its cleanup never
    touches another attempt's work."""
    person, _ = account
    _seed(settings, person.id, days=3)
    job = ferry.create(person.id)
    pipeline = _TakenBeforeFinalize(ferry.engine)

    status = ferry.runner(pipeline).run(job.id)

    assert status is None
    after = ferry.store.get(job.id)
    assert after.status == "running" and after.attempt == 2 and after.result is None
    assert not (ferry.storage.root / "exports" / job.id).exists()
    assert pipeline.newer is not None and pipeline.newer.read_bytes() == b"attempt 2 owns this"
