"""The archive import, run in-process through the job runner, checked against the database.

Real PostgreSQL and storage; live progress in memory; the publisher only records. The
archives are built by `tests.arc_fixtures` the way the Arc timeline apps write them (SPEC
4), never by Ferry's exporter, and what lands in the account is compared with the
fixture's own record of every field (SPEC 3, 4, 6, 11).
"""

from __future__ import annotations

import contextlib
import copy
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.archive.importer import ImportArchive
from shared.archive.records import FastBlock, fast_sample_rows
from shared.errors import Conflict, StorageError
from shared.jobs.attempt import JobContext
from shared.jobs.pipeline import Outcome
from shared.jobs.store import Job, JobFilter
from shared.jobs.sweeper import Sweeper
from shared.pipelines import PIPELINES
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from tests.arc_fixtures import (
    KINDS,
    SAMPLE_DEFAULTS,
    ArcArchive,
    InProcess,
    Invalid,
    Planted,
    Style,
    Timeline,
    account_digest,
    arc_archive,
    arc_record,
    arc_timeline,
    assert_rows_match,
    expected_rows,
    id_starting,
    insert_timeline,
    keepers_of,
    load_account,
    new_id,
    plant_bad_references,
    plant_invalid_records,
    render_sample,
    staging_tables,
)
from tests.archive_check import keepers_from_db

IMPORT_PHASES = ("unpack", "validate", "stage", "apply", "edges", "finalize")


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> InProcess:
    return InProcess(settings=settings, engine=engine)


def _other_account(engine: Engine) -> Account:
    return create_account(engine, f"other-{uuid.uuid4().hex[:8]}")


def _seed(settings: Settings, account_id: str) -> None:
    """Some unrelated data, so 'unchanged' is about rows that exist."""
    seed_timeline(
        settings.database_url,
        account_id,
        days=2,
        samples_per_day=60,
        seed=5,
        start=datetime(2023, 3, 1, tzinfo=UTC),
    )


def _gone(ferry: InProcess, job_id: str) -> None:
    """Nothing of the job is left: no staging tables, no work folder, and no upload once it
    succeeded (a failed or cancelled one keeps it for a restart, SPEC 8)."""
    assert staging_tables(ferry.settings.database_url, job_id) == []
    succeeded = ferry.store.get(job_id).status == "succeeded"
    assert ferry.storage.upload_path(job_id).exists() is not succeeded
    assert ferry.storage.work_dirs(job_id) == {}


def _listed(findings: list[dict[str, Any]], file: str, index: int) -> list[dict[str, Any]]:
    return [f for f in findings if f["file"] == file and f["index"] == index]


# --- an Arc archive: preview, confirm, every record ------------------------------------------


@dataclass
class ArcImport:
    """An Arc archive with planted bad references, imported without confirm."""

    account: Account
    timeline: Timeline
    archive: ArcArchive
    planted: list[Planted]
    known_place: dict[str, Any]
    before: dict[str, dict[str, dict[str, Any]]]
    digest: dict[str, tuple[int, str]]
    job: Job


@pytest.fixture
def arc_import(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> ArcImport:
    """The account already holds one of the archive's places (the same record)."""
    person, _ = account
    _seed(settings, person.id)
    timeline = arc_timeline()
    planted = plant_bad_references(timeline)
    known = timeline.places[0]
    insert_timeline(settings.database_url, person.id, Timeline(places=[known]))
    before = load_account(settings.database_url, person.id)
    digest = account_digest(settings.database_url, person.id)
    archive = arc_archive(timeline)
    path = archive.write(tmp_path / "arc.zip")

    job = ferry.import_archive(person.id, path)

    return ArcImport(person, timeline, archive, planted, known, before, digest, job)


def test_given_an_arc_archive_when_imported_without_confirm_then_it_waits_with_its_preview(
    ferry: InProcess, settings: Settings, arc_import: ArcImport
) -> None:
    """The preview counts every kind, the conflict and the warnings; nothing is written yet."""
    job, timeline = arc_import.job, arc_import.timeline
    assert job.status == "awaiting_confirmation", job.error
    preview = job.preview
    assert preview is not None
    for kind, count in timeline.counts().items():
        assert preview["counts"][kind]["records"] == count, (kind, preview["counts"])
        assert preview["counts"][kind].get("invalid", 0) == 0
    assert preview["counts"]["places"]["existing"] == 1
    assert preview["counts"]["items"].get("existing", 0) == 0
    assert preview["errors"] == [] and preview["error_count"] == 0
    assert account_digest(settings.database_url, arc_import.account.id) == arc_import.digest


def test_given_planted_bad_references_when_previewed_then_each_is_a_warning_naming_its_record(
    arc_import: ArcImport,
) -> None:
    """Edges to nowhere, previous == next, self edges, missing item or place: all listed."""
    preview = arc_import.job.preview
    assert preview is not None
    warnings = preview["warnings"]
    assert preview["warning_count"] == len(warnings) >= len(arc_import.planted)
    planted_places = set()
    for planted in arc_import.planted:
        [(file, index)] = arc_import.archive.where(planted.kind, planted.record_id)
        planted_places.add((file, index))
        found = _listed(warnings, file, index)
        assert any(planted.what in w["field"] for w in found), (planted, found, warnings)
        assert all(isinstance(w["reason"], str) and w["reason"] for w in found)
    assert {(w["file"], w["index"]) for w in warnings} == planted_places


def test_given_an_awaiting_arc_import_when_confirmed_then_every_record_is_stored_field_for_field(
    ferry: InProcess, settings: Settings, arc_import: ArcImport
) -> None:
    """Dates as instants, floats exact, ids lower case; bad references null; keepers kept."""
    person, timeline = arc_import.account, arc_import.timeline

    done = ferry.confirm(arc_import.job.id, person.id)

    assert done.status == "succeeded", done.error
    rows = load_account(settings.database_url, person.id)
    imported = {kind: {i: rows[kind][i] for i in timeline.ids(kind)} for kind in rows}
    assert_rows_match(expected_rows(timeline, nulled=arc_import.planted), imported)
    others = {k: {i: r for i, r in rows[k].items() if i not in timeline.ids(k)} for k in rows}
    before = arc_import.before
    assert others == {k: {i: r for i, r in before[k].items() if i not in imported[k]} for k in rows}
    keepers = keepers_from_db(settings.database_url, person.id)
    assert {i: keepers[i] for i in timeline.ids("items")} == keepers_of(
        timeline, nulled=arc_import.planted
    )
    assert set(keepers_of(timeline).values()) == {True, False}
    assert done.result is not None
    counts = timeline.counts()
    assert done.result["written"] == {**counts, "places": counts["places"] - 1}
    assert done.result["kept_existing"] == {"places": 1, "items": 0, "samples": 0}
    assert done.result["replaced"] == {"places": 0, "items": 0, "samples": 0}
    assert arc_import.job.preview is not None
    assert done.result["warnings"] == arc_import.job.preview["warning_count"]
    assert done.progress is not None and done.progress["overall"] == 1.0
    _gone(ferry, done.id)


@dataclass(frozen=True)
class Packing:
    """How an archive is packed: container, top folder, which files gzipped, JSON layout."""

    fmt: str
    folder: str | None
    gzipped: Any
    layout: Any
    style: Style
    unix_modes: bool = True


PACKINGS = [
    pytest.param(
        Packing("zip", "export-2025-01-02-030405", ("samples",), "pretty", Style()), id="zip"
    ),
    pytest.param(
        Packing("zip", None, KINDS, "lines", Style(uuid_case="lower")), id="zip-flat-all-gzipped"
    ),
    pytest.param(
        Packing("tar", "Arc Export", (), "compact", Style(dates="apple", uuid_case="upper")),
        id="tar-plain",
    ),
    pytest.param(
        Packing(
            "tar.gz",
            None,
            lambda kind, bucket: sum(map(ord, bucket)) % 2 == 0,
            lambda path: ("pretty", "lines", "compact")[len(path) % 3],
            Style(dates="unix", extra_keys=False, integral_floats_as_ints=False),
        ),
        id="tar.gz-mixed",
    ),
    # ZipFile.writestr(name, data) records permissions without a file type; such members
    # are plain files to every unzip tool.
    pytest.param(
        Packing("zip", "export-2025-01-02-030405", ("samples",), "lines", Style(), False),
        id="zip-from-python-writestr",
    ),
]


@pytest.mark.parametrize("packing", PACKINGS)
def test_given_any_container_and_file_layout_when_imported_then_every_record_arrives(
    ferry: InProcess,
    settings: Settings,
    account: tuple[Account, str],
    tmp_path: Path,
    packing: Packing,
) -> None:
    """zip, tar, tar.gz; a top folder or none; gzipped or plain files; any JSON layout."""
    person, _ = account
    timeline = arc_timeline(seed=11)
    archive = arc_archive(
        timeline, style=packing.style, gzipped=packing.gzipped, layout=packing.layout
    )
    assert any(p.endswith(".gz") for p in archive.files) == bool(packing.gzipped)
    path = archive.write(
        tmp_path / f"arc.{packing.fmt}",
        fmt=packing.fmt,
        folder=packing.folder,
        unix_modes=packing.unix_modes,
    )

    done = ferry.import_archive(person.id, path, confirm=True)

    assert done.status == "succeeded", done.error
    assert_rows_match(expected_rows(timeline), load_account(settings.database_url, person.id))


def test_given_bad_references_and_confirm_when_imported_then_the_finished_job_lists_the_warnings(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """With confirm=true nobody saw a preview: the job must still say which references
    were set to null (SPEC 11: "a warning in the report"), not only how many."""
    person, _ = account
    timeline = arc_timeline(seed=13)
    planted = plant_bad_references(timeline)
    archive = arc_archive(timeline)
    path = archive.write(tmp_path / "arc.zip")

    done = ferry.import_archive(person.id, path, confirm=True)

    assert done.status == "succeeded", done.error
    assert_rows_match(
        expected_rows(timeline, nulled=planted), load_account(settings.database_url, person.id)
    )
    listed = (done.preview or {}).get("warnings")
    if listed is None and isinstance((done.result or {}).get("warnings"), list):
        listed = (done.result or {})["warnings"]
    assert isinstance(listed, list), (
        f"the succeeded job names no warnings: preview={done.preview!r}, result={done.result!r}"
    )
    for item in planted:
        [(file, index)] = archive.where(item.kind, item.record_id)
        assert _listed(listed, file, index), (item, listed)


# --- validation errors -------------------------------------------------------------------------


@dataclass
class InvalidImport:
    account: Account
    timeline: Timeline
    archive: ArcArchive
    invalid: list[Invalid]
    orphan: tuple[str, int]  # a valid sample whose item is one of the invalid records
    before: dict[str, dict[str, dict[str, Any]]]
    digest: dict[str, tuple[int, str]]
    job: Job


@pytest.fixture
def invalid_import(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> InvalidImport:
    """An Arc archive with one record of every kind of validation failure, not confirmed."""
    person, _ = account
    _seed(settings, person.id)
    before = load_account(settings.database_url, person.id)
    digest = account_digest(settings.database_url, person.id)
    timeline = arc_timeline(seed=21)
    archive = arc_archive(timeline)
    invalid = plant_invalid_records(archive, timeline)
    broken = next(p for p in invalid if p.what == "end before start")
    at = datetime(2024, 12, 31, 9, tzinfo=UTC)
    sample = {"id": new_id(), "date": at, **SAMPLE_DEFAULTS, "last_saved": at}
    timeline.samples.append(sample)  # its item is refused: in the account it has none
    orphan = archive.add(
        "samples/2025-W01.json.gz",
        {
            **render_sample(sample, Style(), random.Random(1)),
            "timelineItemId": archive.files[broken.file][broken.index]["base"]["id"],
        },
    )
    path = archive.write(tmp_path / "invalid.zip")
    job = ferry.import_archive(person.id, path)
    return InvalidImport(person, timeline, archive, invalid, orphan, before, digest, job)


def test_given_invalid_records_when_previewed_then_each_is_listed_with_file_index_and_field(
    settings: Settings, invalid_import: InvalidImport
) -> None:
    """Missing id, wrong type, end before start, out of range, duplicate: each one named."""
    job = invalid_import.job
    assert job.status == "awaiting_confirmation", job.error
    preview = job.preview
    assert preview is not None
    errors = preview["errors"]
    assert preview["error_count"] == len(errors) == len(invalid_import.invalid)
    for planted in invalid_import.invalid:
        [error] = _listed(errors, planted.file, planted.index)
        assert error["field"].split(".")[-1] == planted.field, (planted, error)
        assert isinstance(error["reason"], str) and error["reason"], error
    duplicates = [e for e in errors if "duplicate" in e["reason"]]
    assert len(duplicates) == 2
    assert account_digest(settings.database_url, invalid_import.account.id) == (
        invalid_import.digest
    )


def test_given_a_report_with_errors_when_confirmed_then_it_is_a_conflict_and_nothing_is_written(
    ferry: InProcess, settings: Settings, invalid_import: InvalidImport
) -> None:
    """Confirming without skip_invalid is refused (409) and the job keeps waiting."""
    person, job = invalid_import.account, invalid_import.job

    with pytest.raises(Conflict) as refused:
        ferry.service().confirm(job.id, account_id=person.id)

    assert refused.value.code == "conflict"
    assert ferry.store.get(job.id).status == "awaiting_confirmation"
    assert account_digest(settings.database_url, person.id) == invalid_import.digest


def test_given_a_report_with_errors_when_confirmed_with_skip_invalid_then_only_valid_records_land(
    ferry: InProcess, settings: Settings, invalid_import: InvalidImport
) -> None:
    """The valid records are imported (a duplicate's first occurrence); the rest reported."""
    person, timeline = invalid_import.account, invalid_import.timeline

    done = ferry.confirm(invalid_import.job.id, person.id, skip_invalid=True)

    assert done.status == "succeeded", done.error
    rows = load_account(settings.database_url, person.id)
    seeded = {
        kind: {i: r for i, r in rows[kind].items() if i not in timeline.ids(kind)} for kind in rows
    }
    imported = {
        kind: {i: r for i, r in rows[kind].items() if i in timeline.ids(kind)} for kind in rows
    }
    assert_rows_match(expected_rows(timeline), imported)
    assert seeded == invalid_import.before
    assert done.result is not None
    assert done.result["written"] == timeline.counts()
    assert done.result["invalid_skipped"] == len(invalid_import.invalid)
    preview = invalid_import.job.preview
    assert preview is not None
    [warning] = _listed(preview["warnings"], *invalid_import.orphan)
    assert "timelineItemId" in warning["field"]
    _gone(ferry, done.id)


def test_given_more_than_100_problems_and_confirm_when_imported_then_validation_failed_no_change(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """The report lists the first 100 and the total; the job fails; the account is as before."""
    person, _ = account
    _seed(settings, person.id)
    digest = account_digest(settings.database_url, person.id)
    timeline = arc_timeline(seed=31)
    archive = arc_archive(timeline)
    bad = [
        archive.add(
            "samples/2024-W52.json.gz",
            {"id": new_id(), "date": "2024-12-28T10:00:00Z", "latitude": 95.0 + n / 10},
        )
        for n in range(130)
    ]
    no_start = {"id": new_id(), "isVisit": True, "endDate": "2024-12-02T10:00:00Z"}
    bad.append(archive.add("items/2024-12.json", {"base": no_start, "visit": {}}))
    path = archive.write(tmp_path / "many.zip")

    done = ferry.import_archive(person.id, path, confirm=True)

    assert done.status == "failed"
    assert done.error is not None and done.error["code"] == "validation_failed", done.error
    assert done.error["retryable"] is False
    assert done.preview is not None
    assert done.preview["error_count"] == 131
    listed = done.preview["errors"]
    assert len(listed) == 100
    assert all({"file", "index", "field", "reason"} <= set(e) for e in listed)
    assert {(e["file"], e["index"]) for e in listed} <= set(bad)
    assert account_digest(settings.database_url, person.id) == digest
    _gone(ferry, done.id)


# --- conflicts with the account's records ------------------------------------------------------


def _conflicting(rng_seed: int) -> tuple[Timeline, Timeline, dict[str, dict[str, str]]]:
    """The account's records, and an archive holding older, equal and newer versions of them.

    Returns (account, archive, ids) where ids[kind] names the 'older', 'same', 'newer'
    and 'fresh' (archive only) records.
    """
    rng = random.Random(rng_seed)
    then = datetime(2024, 6, 1, 12, tzinfo=UTC)
    saved = {"older": then - timedelta(days=30), "same": then, "newer": then + timedelta(days=30)}
    mine, theirs = Timeline(), Timeline()
    ids: dict[str, dict[str, str]] = {k: {} for k in ("places", "items", "samples")}
    for version in ("older", "same", "newer", "fresh"):
        place_id, item_id, sample_id = new_id(rng), new_id(rng), new_id(rng)
        ids["places"][version], ids["items"][version] = place_id, item_id
        ids["samples"][version] = sample_id
        start = then + timedelta(hours=len(mine.items))
        account_place = arc_record(
            "places",
            id=place_id,
            name="mine",
            latitude=1.0,
            longitude=2.0,
            last_saved=then,
        )
        account_item = arc_record(
            "items",
            id=item_id,
            is_visit=True,
            start_date=start,
            end_date=start + timedelta(minutes=5),
            last_saved=then,
            custom_title="mine",
            place_id=place_id,
        )
        account_sample = arc_record(
            "samples",
            id=sample_id,
            date=start,
            altitude=1.0,
            timeline_item_id=item_id,
            last_saved=then,
        )
        archive_time = saved.get(version, then)
        if version != "fresh":
            mine.places.append(account_place)
            mine.items.append(account_item)
            mine.samples.append(account_sample)
        theirs.places.append(
            {**account_place, "name": f"archive {version}", "last_saved": archive_time}
        )
        theirs.items.append(
            {
                **account_item,
                "custom_title": f"archive {version}",
                "end_date": start + timedelta(minutes=7),
                "last_saved": archive_time,
                "visit_last_saved": archive_time,
            }
        )
        theirs.samples.append({**account_sample, "altitude": 99.5, "last_saved": archive_time})
    # The fresh item follows the 'older' one, which both sides hold.
    theirs.items[-1]["previous_item_id"] = ids["items"]["older"]
    return mine, theirs, ids


@pytest.mark.parametrize("on_conflict", ["skip", "newer"])
def test_given_records_the_account_has_when_imported_then_on_conflict_decides_and_counts_say_so(
    ferry: InProcess,
    settings: Settings,
    account: tuple[Account, str],
    tmp_path: Path,
    on_conflict: str,
) -> None:
    """skip keeps the account's record; newer replaces it only when lastSaved is newer."""
    person, _ = account
    mine, theirs, ids = _conflicting(4)
    insert_timeline(settings.database_url, person.id, mine)
    path = arc_archive(theirs).write(tmp_path / "conflicts.zip")

    waiting = ferry.import_archive(person.id, path, on_conflict=on_conflict)
    done = ferry.confirm(waiting.id, person.id)

    assert waiting.preview is not None, waiting.error
    for kind in KINDS:
        assert waiting.preview["counts"][kind]["existing"] == 3
        assert waiting.preview["counts"][kind]["newer_in_archive"] == 1
    assert done.status == "succeeded", done.error
    expected = expected_rows(mine)
    archive_rows = expected_rows(theirs)
    replaced = ["newer"] if on_conflict == "newer" else []
    for kind in expected:
        for version in ["fresh", *replaced]:
            record_id = ids[kind][version]
            expected[kind][record_id] = archive_rows[kind][record_id]
    assert_rows_match(expected, load_account(settings.database_url, person.id))
    assert done.result is not None
    one = {"places": 1, "items": 1, "samples": 1}
    assert done.result["written"] == one
    assert done.result["replaced"] == {k: len(replaced) for k in one}
    assert done.result["kept_existing"] == {k: 3 - len(replaced) for k in one}


@pytest.mark.parametrize("on_conflict", ["skip", "newer"])
def test_given_two_overlapping_imports_of_one_archive_when_both_confirmed_then_both_succeed(
    ferry: InProcess,
    settings: Settings,
    account: tuple[Account, str],
    tmp_path: Path,
    on_conflict: str,
) -> None:
    """Both previewed an empty account (no conflicts), both confirmed: the second finds the
    first's records under the lock and keeps them, as on_conflict promises, and its counts
    say what it did, not what its preview saw."""
    person, _ = account
    timeline = arc_timeline(seed=61)
    path = arc_archive(timeline).write(tmp_path / "twice.zip")
    first = ferry.import_archive(person.id, path, on_conflict=on_conflict)
    second = ferry.import_archive(person.id, path, on_conflict=on_conflict)
    for waiting in (first, second):
        assert waiting.status == "awaiting_confirmation", waiting.error
        assert waiting.preview is not None
        assert {k: waiting.preview["counts"][k]["existing"] for k in KINDS} == dict.fromkeys(
            KINDS, 0
        )

    done_first = ferry.confirm(first.id, person.id)
    done_second = ferry.confirm(second.id, person.id)

    assert done_first.status == "succeeded", done_first.error
    assert done_second.status == "succeeded", done_second.error
    counts = timeline.counts()
    assert done_first.result is not None and done_second.result is not None
    assert done_first.result["written"] == counts
    assert done_second.result["written"] == dict.fromkeys(KINDS, 0)
    assert done_second.result["replaced"] == dict.fromkeys(KINDS, 0)
    assert done_second.result["kept_existing"] == counts
    assert_rows_match(expected_rows(timeline), load_account(settings.database_url, person.id))
    # Every record carries the transaction of the import that wrote it (change tracking).
    with raw_connection(settings.database_url) as conn:
        writers = {
            row[0]
            for table in ("places", "timeline_items", "samples")
            for row in conn.execute(
                f"SELECT DISTINCT written_xid::text FROM {table} WHERE account_id = %s",
                (person.id,),
            )
        }
    assert writers == {done_first.result["apply_xid"]}
    assert done_second.result["apply_xid"] != done_first.result["apply_xid"]


def test_given_references_to_the_accounts_own_records_when_imported_then_they_are_kept(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """An edge, a visit's place and a sample's item that only the account holds resolve."""
    person, _ = account
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    place = arc_record(
        "places",
        id=id_starting("d"),
        name="Mine",
        latitude=1.0,
        longitude=1.0,
        last_saved=start,
    )
    earlier = arc_record(
        "items",
        id=new_id(),
        is_visit=True,
        start_date=start,
        end_date=start + timedelta(hours=1),
        place_id=place["id"],
    )
    mine = Timeline(places=[place], items=[earlier])
    insert_timeline(settings.database_url, person.id, mine)
    trip = arc_record(
        "items",
        id=new_id(),
        is_visit=False,
        start_date=start + timedelta(hours=1),
        end_date=start + timedelta(hours=2),
        previous_item_id=earlier["id"],
    )
    visit = arc_record(
        "items",
        id=new_id(),
        is_visit=True,
        start_date=start + timedelta(hours=2),
        end_date=start + timedelta(hours=3),
        previous_item_id=trip["id"],
        place_id=place["id"],
        confirmed_place=True,
        uncertain_place=False,
    )
    trip["next_item_id"] = visit["id"]
    sample = arc_record(
        "samples",
        id=new_id(),
        date=start + timedelta(minutes=5),
        timeline_item_id=earlier["id"],
    )
    theirs = Timeline(items=[trip, visit], samples=[sample])
    path = arc_archive(theirs).write(tmp_path / "refs.zip")

    waiting = ferry.import_archive(person.id, path)
    done = ferry.confirm(waiting.id, person.id)

    assert waiting.preview is not None, waiting.error
    assert waiting.preview["warnings"] == [] and waiting.preview["warning_count"] == 0
    assert done.status == "succeeded", done.error
    expected = expected_rows(mine)
    for kind, records in expected_rows(theirs).items():
        expected[kind].update(records)
    assert_rows_match(expected, load_account(settings.database_url, person.id))


def test_given_references_to_another_accounts_records_when_imported_then_they_are_nulled(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """Ids that only someone else's account holds do not resolve: null, with a warning."""
    person, _ = account
    stranger = _other_account(ferry.engine)
    start = datetime(2024, 5, 1, 8, tzinfo=UTC)
    place = arc_record(
        "places",
        id=id_starting("e"),
        name="Theirs",
        latitude=1.0,
        longitude=1.0,
        last_saved=start,
    )
    item = arc_record(
        "items", id=new_id(), is_visit=False, start_date=start, end_date=start + timedelta(hours=1)
    )
    theirs = Timeline(places=[place], items=[item])
    insert_timeline(settings.database_url, stranger.id, theirs)
    stranger_before = load_account(settings.database_url, stranger.id)
    # A confirmed place: losing it takes the confirmation with it (the Arc apps' rules).
    visit = arc_record(
        "items",
        id=new_id(),
        is_visit=True,
        start_date=start + timedelta(hours=1),
        end_date=start + timedelta(hours=2),
        previous_item_id=item["id"],
        place_id=place["id"],
        confirmed_place=True,
        uncertain_place=False,
    )
    sample = arc_record("samples", id=new_id(), date=start, timeline_item_id=item["id"])
    mine = Timeline(items=[visit], samples=[sample])
    archive = arc_archive(mine)
    path = archive.write(tmp_path / "strangers.zip")

    waiting = ferry.import_archive(person.id, path)
    done = ferry.confirm(waiting.id, person.id)

    assert done.status == "succeeded", done.error
    nulled = [
        Planted(
            "items",
            visit["id"],
            ("previous_item_id", "place_id"),
            "",
            also=(("confirmed_place", False), ("uncertain_place", True)),
        ),
        Planted("samples", sample["id"], ("timeline_item_id",), ""),
    ]
    assert_rows_match(
        expected_rows(mine, nulled=nulled), load_account(settings.database_url, person.id)
    )
    assert load_account(settings.database_url, stranger.id) == stranger_before
    assert waiting.preview is not None
    fields = {w["field"] for w in waiting.preview["warnings"]}
    for key in ("previousItemId", "placeId", "timelineItemId"):
        assert any(key in f for f in fields), (key, fields)


# --- cancel and resume --------------------------------------------------------------------------


def test_given_an_import_in_apply_when_cancelled_then_the_account_is_unchanged_and_nothing_stays(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """Cancel lands mid-apply (some rows written in the transaction): all of it goes."""
    person, _ = account
    _seed(settings, person.id)
    digest = account_digest(settings.database_url, person.id)
    timeline = arc_timeline(seed=41)
    path = arc_archive(timeline).write(tmp_path / "slow.zip")
    job = ferry.import_archive(person.id, path)
    assert job.status == "awaiting_confirmation", job.error
    ferry.service().confirm(job.id, account_id=person.id)
    slow = settings.with_overrides(max_rows_per_second=60.0)
    outcome: list[Job] = []
    worker = threading.Thread(target=lambda: outcome.append(ferry.run(job.id, settings=slow)))
    worker.start()

    def applying() -> bool:
        progress = ferry.live.get_progress(job.id)
        return bool(progress and progress["phase"] == "apply" and progress["phase_done"] > 0)

    try:
        _poll(applying, timeout=30, what="the apply to write its first file")
        ferry.service().cancel(job.id, account_id=person.id)
    finally:
        worker.join(timeout=60)
    assert not worker.is_alive()

    [done] = outcome
    assert done.status == "cancelled", (done.status, done.error)
    assert account_digest(settings.database_url, person.id) == digest
    _gone(ferry, job.id)


def test_given_an_awaiting_import_when_cancelled_then_its_staging_goes_at_once(
    ferry: InProcess, settings: Settings, arc_import: ArcImport
) -> None:
    """A waiting import holds staged rows and the upload; cancelling it removes the staged
    rows at once, and keeps the upload for a restart (SPEC 8)."""
    job = arc_import.job
    assert job.status == "awaiting_confirmation", job.error
    assert staging_tables(settings.database_url, job.id) != []
    assert ferry.storage.upload_path(job.id).is_file()

    cancelled = ferry.service().cancel(job.id, account_id=arc_import.account.id)

    assert cancelled.status == "cancelled"
    assert account_digest(settings.database_url, arc_import.account.id) == arc_import.digest
    _gone(ferry, job.id)
    with pytest.raises(Conflict):
        ferry.service().confirm(job.id, account_id=arc_import.account.id)


# --- restart (SPEC 8) ----------------------------------------------------------------------------


def test_given_a_cancelled_import_when_retried_then_it_runs_from_its_kept_upload(
    ferry: InProcess, settings: Settings, arc_import: ArcImport
) -> None:
    """Cancelled while it awaited confirmation, then restarted: it validates the kept upload
    again, waits for confirmation, and imports every record."""
    person = arc_import.account
    ferry.service().cancel(arc_import.job.id, account_id=person.id)

    restarted = ferry.service().retry(arc_import.job.id, account_id=person.id)
    waiting = ferry.run(restarted.id)
    done = ferry.confirm(waiting.id, person.id)

    assert restarted.status == "queued" and restarted.attempt == 2
    assert waiting.status == "awaiting_confirmation", waiting.error
    assert waiting.preview == arc_import.job.preview
    assert done.status == "succeeded", done.error
    assert done.result is not None
    assert done.result["written"]["samples"] == len(arc_import.timeline.samples)
    _gone(ferry, done.id)


def test_given_an_import_failed_on_a_limit_when_retried_after_raising_it_then_it_succeeds(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """An operator's case: the archive expands past FERRY_MAX_EXPANDED_BYTES, the import
    fails (bad_archive), the limit is raised and the job restarted: same id, same upload."""
    person, _ = account
    timeline = arc_timeline(seed=71)
    path = arc_archive(timeline).write(tmp_path / "big.zip")
    strict = settings.with_overrides(max_expanded_bytes=1024)
    job_id = ferry.submit(person.id, path, confirm=True)
    failed = ferry.run(job_id, settings=strict)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["code"] == "bad_archive", failed.error

    ferry.service().retry(job_id, by="ops:test")
    done = ferry.run(job_id)

    assert done.status == "succeeded", done.error
    assert_rows_match(expected_rows(timeline), load_account(settings.database_url, person.id))
    _gone(ferry, job_id)


def test_given_an_import_ended_past_the_upload_retention_when_retried_then_409_upload_expired(
    ferry: InProcess, settings: Settings, arc_import: ArcImport
) -> None:
    """FERRY_UPLOAD_RETENTION_HOURS after it ended, a restart is refused (by the database's
    clock, the one the sweeper removes the upload by), and once swept it is refused too."""
    person = arc_import.account
    job_id = arc_import.job.id
    ferry.service().cancel(job_id, account_id=person.id)
    with ferry.engine.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET finished_at = now() - make_interval(secs => :s) WHERE id = :id"),
            {"s": (settings.upload_retention_hours + 0.01) * 3600, "id": job_id},
        )
    before = ferry.store.get(job_id)

    with pytest.raises(Conflict, match="upload expired; upload the file again"):
        ferry.service().retry(job_id, account_id=person.id)
    assert ferry.service().retry_matching(JobFilter(account_id=person.id)) == []
    assert ferry.store.get(job_id) == before
    sweeper = Sweeper(
        pipelines=PIPELINES,
        settings=settings,
        engine=ferry.engine,
        live=ferry.live,
        storage=ferry.storage,
        publisher=ferry.publisher,
    )
    assert job_id in sweeper.sweep().removed_uploads
    assert not ferry.storage.upload_path(job_id).exists()
    with pytest.raises(Conflict, match="upload expired; upload the file again"):
        ferry.service().retry(job_id, account_id=person.id)
    assert ferry.store.get(job_id).status == "cancelled"


def _poll(check: Any, *, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class _Crash(BaseException):
    """The worker process dies here (nothing is recorded, as with kill -9)."""


class _Interrupt:
    """The import, interrupted once: in `apply` after its first file, or as `finalize` starts.

    `how`: "error" raises a retryable StorageError; "crash" kills the attempt outright.
    Remembers the phases each attempt started.
    """

    phases = ImportArchive.phases

    def __init__(self, where: str, how: str) -> None:
        self.inner = ImportArchive()
        self.where = where
        self.how = how
        self.done = False
        self.started: dict[int, list[str]] = {}

    def _interrupt(self) -> None:
        self.done = True
        if self.how == "crash":
            raise _Crash
        raise StorageError("the disk went away (test)")

    def run(self, ctx: JobContext) -> Outcome:
        start_phase, advance = ctx.start_phase, ctx.advance

        def start(name: str) -> None:
            self.started.setdefault(ctx.attempt, []).append(name)
            if name == self.where == "finalize" and not self.done:
                self._interrupt()
            start_phase(name)

        def step(rows: int, *, paced: bool = True) -> None:
            advance(rows, paced=paced)
            if self.where == "apply" and ctx.tracker.phase.name == "apply" and not self.done:
                self._interrupt()

        ctx.start_phase = start  # type: ignore[method-assign]
        ctx.advance = step  # type: ignore[method-assign]
        return self.inner.run(ctx)

    def discard(self, job: Job, settings: Settings) -> None:
        self.inner.discard(job, settings)


def _run_through(ferry: InProcess, job_id: str, pipeline: _Interrupt, settings: Settings) -> Job:
    """Run attempts as a worker and the sweeper would until the job ends."""
    runner = ferry.runner(pipeline, settings=settings)
    sweeper = Sweeper(
        pipelines=PIPELINES,
        settings=settings,
        engine=ferry.engine,
        live=ferry.live,
        storage=ferry.storage,
        publisher=ferry.publisher,
    )

    def step() -> bool:
        with contextlib.suppress(_Crash):
            runner.run(job_id)
        sweeper.sweep()
        return ferry.store.get(job_id).terminal

    _poll(step, timeout=60, what=f"job {job_id} to end", interval=0.1)
    return ferry.store.get(job_id)


@pytest.mark.parametrize("flow", ["confirmed", "previewed"])
@pytest.mark.parametrize(
    "interruption", ["apply-error", "apply-crash", "finalize-error", "finalize-crash"]
)
def test_given_an_import_interrupted_once_when_resumed_then_data_equals_an_uninterrupted_import(
    ferry: InProcess,
    account: tuple[Account, str],
    tmp_path: Path,
    interruption: str,
    flow: str,
) -> None:
    """No duplicates, nothing missing; after the commit, the apply is not run again.

    `error`: the attempt fails with a retryable error; `crash`: the worker dies (as with
    kill -9) and the sweeper re-queues the job once its lease runs out.
    `confirmed` (confirm=true into an account without samples): the samples went into
    the live table inside the apply's transaction (shared/archive/direct.py), so an
    apply interrupted leaves nothing and the next attempt starts over from the upload.
    `previewed`: everything was staged before the confirmation, and the next attempt
    applies from staging without validating again.
    """
    person, _ = account
    settings = ferry.settings
    where, how = interruption.split("-")
    quick = settings.with_overrides(lease_seconds=1.0)
    timeline = arc_timeline(seed=51)
    planted = plant_bad_references(timeline)
    path = arc_archive(timeline).write(tmp_path / "resume.zip")
    reference = _other_account(ferry.engine)
    clean = ferry.import_archive(reference.id, path, confirm=True)
    assert clean.status == "succeeded", clean.error
    pipeline = _Interrupt(where, how)
    if flow == "confirmed":
        job_id = ferry.submit(person.id, path, confirm=True)
    else:
        job_id = ferry.submit(person.id, path)
        assert ferry.run(job_id).status == "awaiting_confirmation"
        ferry.service().confirm(job_id, account_id=person.id)

    done = _run_through(ferry, job_id, pipeline, quick)

    assert done.status == "succeeded", done.error
    assert done.attempt == 2 and pipeline.done
    assert load_account(settings.database_url, person.id) == load_account(
        settings.database_url, reference.id
    )
    assert_rows_match(
        expected_rows(timeline, nulled=planted), load_account(settings.database_url, person.id)
    )
    assert done.result is not None and clean.result is not None
    # The same counts (each import's apply ran in a transaction of its own).
    marks = {"apply_xid": None, "apply_xmin": None}
    assert {**done.result, **marks} == {**clean.result, **marks}
    starts_over = flow == "confirmed" and where == "apply"
    assert ("validate" in pipeline.started[2]) is starts_over, pipeline.started
    if where == "finalize":
        assert "apply" not in pipeline.started[2], pipeline.started
    _gone(ferry, done.id)


def test_given_staging_emptied_between_attempts_when_resumed_then_it_starts_over_from_the_upload(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """UNLOGGED staging tables come back empty after a database crash: the next attempt
    must notice and prepare again, not apply an empty staging as if it were the archive."""
    person, _ = account
    timeline = arc_timeline(seed=61)
    path = arc_archive(timeline).write(tmp_path / "again.zip")
    job_id = ferry.submit(person.id, path, confirm=True)
    pipeline = _Interrupt("apply", "error")
    first = ferry.runner(pipeline).run(job_id)
    assert first == "queued" and pipeline.done
    tables = staging_tables(settings.database_url, job_id)
    assert len(tables) == 3
    with raw_connection(settings.database_url) as conn:
        for table in tables:
            conn.execute(f'TRUNCATE ferry_staging."{table}"')
        conn.commit()

    done = _run_through(ferry, job_id, pipeline, settings)

    assert done.status == "succeeded", done.error
    assert done.attempt == 2
    assert "validate" in pipeline.started[2]
    assert_rows_match(expected_rows(timeline), load_account(settings.database_url, person.id))
    _gone(ferry, job_id)


def test_given_an_import_confirmed_after_its_preview_when_it_runs_then_progress_never_goes_back(
    ferry: InProcess, account: tuple[Account, str], tmp_path: Path
) -> None:
    """Phases in SPEC 6 order across both deliveries; overall rises to exactly 1; rows add up."""
    person, _ = account
    timeline = arc_timeline(seed=71)
    path = arc_archive(timeline).write(tmp_path / "progress.zip")
    job_id = ferry.submit(person.id, path)
    subscription = ferry.live.subscribe(job_id)

    waiting = ferry.run(job_id)
    done = ferry.confirm(job_id, person.id)

    events = []
    while (event := subscription.next_event(0.01)) is not None:
        events.append(event)
    subscription.close()
    assert waiting.status == "awaiting_confirmation" and done.status == "succeeded"
    seen = [e["progress"] for e in events if e["type"] == "progress"]
    phases = [p["phase"] for p in seen]
    overall = [p["overall"] for p in seen]
    shown = list(zip(phases, overall, strict=True))
    order = [IMPORT_PHASES.index(p) for p in phases]
    assert order == sorted(order), shown
    assert set(phases) == set(IMPORT_PHASES), shown
    assert overall == sorted(overall), shown
    assert all(0 <= value < 1 for value in overall[:-1])
    assert waiting.progress is not None and waiting.progress["overall"] < 1
    assert done.progress is not None and done.progress["overall"] == 1.0
    assert done.progress["rows_done"] == done.progress["rows_total"] > 0


def test_given_an_import_when_validation_starts_then_overall_shows_little_done(
    ferry: InProcess, account: tuple[Account, str], tmp_path: Path
) -> None:
    """SPEC 6 weighs phases by their rows: once unpacked, with every row still to read,
    the bar must not claim half the work is done (the ETA would be off by as much)."""
    person, _ = account
    timeline = arc_timeline(seed=81)
    path = arc_archive(timeline).write(tmp_path / "weights.zip")
    job_id = ferry.submit(person.id, path, confirm=True)
    subscription = ferry.live.subscribe(job_id)

    done = ferry.run(job_id)

    events = []
    while (event := subscription.next_event(0.01)) is not None:
        events.append(event)
    subscription.close()
    assert done.status == "succeeded", done.error
    seen = [e["progress"] for e in events if e["type"] == "progress"]
    starting = [p for p in seen if p["phase"] in ("unpack", "validate") and p["rows_done"] == 0]
    assert starting, seen
    shown = [(p["phase"], p["overall"], p["rows_total"]) for p in starting]
    assert all(p["overall"] < 0.1 for p in starting), shown


def test_given_a_report_with_duplicates_when_confirmed_then_apply_uses_staging_as_checked(
    ferry: InProcess, invalid_import: InvalidImport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging as the stage phase left it (repeats removed) is what confirmation picks up:
    the confirmed delivery goes straight to apply, and no repeat is counted as kept."""
    from shared.archive.importer import ImportArchive

    prepared: list[str] = []
    original = ImportArchive._prepare

    def counting(self: ImportArchive, ctx: Any, *args: Any, **kwargs: Any) -> Any:
        prepared.append(ctx.job.id)
        return original(self, ctx, *args, **kwargs)

    monkeypatch.setattr(ImportArchive, "_prepare", counting)

    done = ferry.confirm(invalid_import.job.id, invalid_import.account.id, skip_invalid=True)

    assert done.status == "succeeded", done.error
    assert prepared == []
    assert done.result is not None
    assert done.result["kept_existing"] == {"places": 0, "items": 0, "samples": 0}


def test_given_copies_of_records_when_imported_then_the_newest_lands_and_each_copy_is_a_warning(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """SPEC 4: several copies of one id keep the newest by lastSaved, with a warning; an
    identical copy is a warning too; only equally new, different copies are errors."""
    person, _ = account
    timeline = arc_timeline(seed=41)
    archive = arc_archive(timeline, style=Style(dates="iso", uuid_case="upper"))
    sample = timeline.samples[3]
    [(path, index)] = archive.where("samples", sample["id"])
    identical = archive.add("samples/2024-W52.json.gz", dict(archive.files[path][index]))
    place = timeline.places[1]
    [(place_file, place_index)] = archive.where("places", place["id"])
    old_copy = dict(archive.files[place_file][place_index])
    newer = dict(old_copy, name="Renamed later", lastSaved="2025-06-01T00:00:00Z")
    newer_at = archive.add(place_file, newer)  # later in the file, and newer
    item = timeline.items[2]
    [(item_file, item_index)] = archive.where("items", item["id"])
    stale = copy.deepcopy(archive.files[item_file][item_index])
    stale["base"]["lastSaved"] = "2000-01-01T00:00:00Z"
    stale["base"]["endDate"] = stale["base"]["startDate"]
    stale_at = archive.add("items/2021-01.json", stale)  # an older copy, in another month
    path_zip = archive.write(tmp_path / "copies.zip")

    done = ferry.import_archive(person.id, path_zip, confirm=True)

    assert done.status == "succeeded", done.error
    place.update(name="Renamed later", last_saved=datetime(2025, 6, 1, tzinfo=UTC))
    assert_rows_match(expected_rows(timeline), load_account(settings.database_url, person.id))
    preview = done.preview
    assert preview is not None and preview["error_count"] == 0
    listed = {(w["file"], w["index"]): w["reason"] for w in preview["warnings"]}
    assert set(listed) == {identical, (place_file, place_index), stale_at}
    assert "same record" in listed[identical]
    assert "older copy" in listed[(place_file, place_index)]
    assert f"{newer_at[0]} at index {newer_at[1]}" in listed[(place_file, place_index)]
    assert "older copy" in listed[stale_at]
    assert {k: preview["counts"][k]["older_copies"] for k in KINDS} == {
        "places": 1,
        "items": 1,
        "samples": 1,
    }
    assert done.result is not None and done.result["written"] == timeline.counts()


# --- the block fast path ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["lines", "pretty"])
def test_given_an_archive_with_problems_when_imported_in_blocks_then_report_and_rows_as_record_by_record(  # noqa: E501
    ferry: InProcess,
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    layout: str,
) -> None:
    """Given an Arc archive with every kind of invalid record, defaults to fill and unknown
    keys, in files of several blocks, When imported with the block decoder and again with
    every record decoded on its own, Then the same preview (errors, warnings, counts) and,
    with skip_invalid, the same rows."""
    timeline = arc_timeline(seed=21)
    archive = arc_archive(timeline, layout=layout)
    plant_invalid_records(archive, timeline)
    files = sorted(f for f in archive.files if f.startswith("samples/"))
    for file in files[:2]:
        records = archive.files[file]
        records[len(records) // 2].pop("source", None)  # a default to fill: a warning
        records[-1]["category"] = "walking"  # a key Ferry has no column for
    path = archive.write(tmp_path / "blocks.zip")
    # Small blocks: every sample file spans several, the planted records land in some.
    monkeypatch.setattr("shared.archive.reader.BLOCK", 2048)
    taken: list[bool] = []

    def counted(block: bytes, file_no: int, start: int) -> FastBlock | None:
        rows = fast_sample_rows(block, file_no, start)
        taken.append(rows is not None)
        return rows

    outcomes = []
    for fast in (True, False):
        monkeypatch.setattr(
            "shared.archive.importer.FAST_ROWS", {"samples": counted} if fast else {}
        )
        person = _other_account(engine)
        job = ferry.import_archive(person.id, path)
        assert job.status == "awaiting_confirmation", job.error
        done = ferry.confirm(job.id, person.id, skip_invalid=True)
        assert done.status == "succeeded", done.error
        preview = dict(job.preview or {})
        preview["archive"] = {k: v for k, v in preview["archive"].items() if k != "imported_at"}
        rows = load_account(settings.database_url, person.id)
        outcomes.append((preview, rows, done.result))
    (fast_preview, fast_rows, fast_result), (slow_preview, slow_rows, slow_result) = outcomes

    if layout == "lines":
        assert True in taken and False in taken  # blocks both ways
    else:
        assert True not in taken  # no block of a pretty-printed file is an array
    assert fast_preview["errors"] and fast_preview["warnings"]
    assert fast_preview == slow_preview
    assert fast_rows == slow_rows
    assert {k: fast_result[k] for k in ("written", "invalid_skipped", "warnings")} == {
        k: slow_result[k] for k in ("written", "invalid_skipped", "warnings")
    }
