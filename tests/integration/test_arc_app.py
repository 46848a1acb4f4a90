"""Archives the Arc apps read, and Arc backups Ferry reads, judged by LocoKit2's own rules.

The judge is `tests.arc.conformance`, written from LocoKit2's Swift source: it decodes
every file the way the apps' ImportManager does and applies their database's rules, so
"every record passes" means the app would import every record. The app-side archives
come from `tests.arc.app_export`, written from the apps' ExportManager (local-month item
files, gzipped weeks, pretty-printed JSON, whole-second dates). Real PostgreSQL and
storage; jobs run in-process through the job runner.
"""

from __future__ import annotations

import copy
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from tests.arc.app_export import AppTimeline, Phone, update_backup, write_export
from tests.arc.app_timeline import app_timeline
from tests.arc.conformance import Conformance, check_zip
from tests.arc_fixtures import COLUMNS, KINDS, InProcess, load_account

STARTED = datetime(2025, 2, 2, 1, 0, 0, tzinfo=UTC)
# Keys the apps write that Ferry has no column for: the place's spatial-index row id and
# its derived category (the apps do not read `category` back), the sample's rtreeId.
NOT_KEPT = {"places": {"rtreeId", "category"}, "samples": {"rtreeId"}}


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> InProcess:
    return InProcess(settings=settings, engine=engine)


def _account(engine: Engine, name: str) -> Account:
    return create_account(engine, f"{name}-{datetime.now().timestamp():.6f}")


def _zip(folder: Path, dest: Path) -> Path:
    """A folder zipped as a person would before uploading it."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return dest


def _conforms(zip_path: Path, tmp_path: Path) -> Conformance:
    """The download, unzipped, as the apps would import it; every record must pass."""
    into = tmp_path / f"unzipped-{zip_path.stem}"
    into.mkdir()
    result = check_zip(zip_path, into)
    assert result.ok, result.report()
    return result


# --- what Ferry holds -> the apps ----------------------------------------------------------------


@pytest.mark.parametrize("compress", ["samples", "none"])
def test_given_a_seeded_account_when_exported_then_the_arc_apps_import_every_record(
    ferry: InProcess,
    settings: Settings,
    account: tuple[Account, str],
    tmp_path: Path,
    compress: str,
) -> None:
    """The demo data (`ferry seed`) exported: every place, item and sample decodes in the
    app and passes its database's rules; nothing is lost."""
    person, _ = account
    seed_timeline(
        settings.database_url,
        person.id,
        days=12,
        samples_per_day=200,
        seed=7,
        start=datetime(2024, 12, 20, tzinfo=UTC),
    )

    result = _conforms(ferry.export(person.id, compress=compress), tmp_path)

    rows = load_account(settings.database_url, person.id)
    for kind in KINDS:
        assert len(result.stored[kind]) == len(rows[kind]) > 0, kind
    assert any(i["base"]["deleted"] for i in result.stored["items"].values())
    assert any(
        "trip" in i and "confirmedActivityType" in i["trip"]
        for i in result.stored["items"].values()
    )


def test_given_compress_all_when_exported_then_the_apps_would_import_no_places_and_no_items(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """`compress: "all"` is for Ferry and other tools: the apps read places and items only
    from plain .json files (the README and the CLI say so)."""
    person, _ = account
    seed_timeline(settings.database_url, person.id, days=2, samples_per_day=50, seed=2)
    into = tmp_path / "all"
    into.mkdir()

    result = check_zip(ferry.export(person.id, compress="all"), into)

    unread = {f.file.split("/")[0] for f in result.failures if "not read by the apps" in f.reason}
    assert unread == {"places", "items"}
    assert result.stored["places"] == {} and result.stored["items"] == {}


# --- the apps -> Ferry -> the apps -------------------------------------------------------------


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def _value(key: str, value: Any) -> Any:
    if key in ("id", "itemId", "placeId", "previousItemId", "nextItemId", "timelineItemId"):
        return None if value is None else value.lower()
    return value


def ferry_rows(timeline: AppTimeline) -> dict[str, dict[str, dict[str, Any]]]:
    """The rows SPEC 3 says the app's records become: snake_case columns, a visit's and a
    trip's own lastSaved in `visit_last_saved`/`trip_last_saved`, ids lower case."""
    out: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
    for kind, records in (("places", timeline.places), ("samples", timeline.samples)):
        for record in records:
            row = dict.fromkeys(COLUMNS[kind])
            for key, value in record.items():
                if key not in NOT_KEPT[kind]:
                    row[_snake(key)] = _value(key, value)
            out[kind][row["id"]] = row
    for item in timeline.items:
        row = dict.fromkeys(COLUMNS["items"])
        row.update({_snake(k): _value(k, v) for k, v in item["base"].items()})
        for part in ("visit", "trip"):
            for key, value in item.get(part, {}).items():
                if key == "lastSaved":
                    row[f"{part}_last_saved"] = value
                elif key != "itemId":
                    row[_snake(key)] = _value(key, value)
        out["items"][row["id"]] = row
    return out


def as_the_app_holds_it(timeline: AppTimeline) -> dict[str, dict[str, dict[str, Any]]]:
    """The app's records by id, nil properties and keys Ferry does not keep left out."""

    def clean(record: dict[str, Any], drop: set[str]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if v is not None and k not in drop}

    return {
        "places": {p["id"]: clean(p, NOT_KEPT["places"]) for p in timeline.places},
        "items": {
            i["base"]["id"]: {part: clean(value, set()) for part, value in i.items()}
            for i in timeline.items
        },
        "samples": {s["id"]: clean(s, NOT_KEPT["samples"]) for s in timeline.samples},
    }


def _assert_rows(want: dict[str, dict[str, dict[str, Any]]], got: dict[str, Any]) -> None:
    for kind in KINDS:
        assert set(got[kind]) == set(want[kind]), kind
        for record_id, row in want[kind].items():
            for column, value in row.items():
                found = got[kind][record_id][column]
                assert found == value and type(found) is type(value), (
                    f"{kind} {record_id} {column}: Ferry holds {found!r}, the app had {value!r}"
                )


@pytest.fixture
def app_archive(tmp_path: Path) -> tuple[AppTimeline, Path]:
    """A full export as the app writes it, zipped for the upload."""
    timeline = app_timeline()
    folder = write_export(tmp_path / "phone", timeline, started=STARTED)
    assert {p.name for p in (folder / "items").iterdir()} == {"2025-01.json", "2025-02.json"}
    return timeline, _zip(folder, tmp_path / f"{folder.name}.zip")


def test_given_an_app_export_when_imported_then_every_record_lands_field_for_field(
    ferry: InProcess,
    settings: Settings,
    account: tuple[Account, str],
    app_archive: tuple[AppTimeline, Path],
) -> None:
    """Nothing Ferry has a column for is lost, the four newer fields included; the keys it
    has none for are counted in the report, and nothing else is reported."""
    person, _ = account
    timeline, path = app_archive

    done = ferry.import_archive(person.id, path, confirm=True)

    assert done.status == "succeeded", done.error
    _assert_rows(ferry_rows(timeline), load_account(settings.database_url, person.id))
    report = done.preview
    assert report is not None
    assert (report["error_count"], report["warning_count"]) == (0, 0), report
    for kind, records in (("places", timeline.places), ("samples", timeline.samples)):
        ignored = sum(1 for r in records for key in NOT_KEPT[kind] if r.get(key) is not None)
        assert report["counts"][kind]["ignored_keys"] == ignored > 0, kind
    assert report["counts"]["items"]["ignored_keys"] == 0
    assert report["archive"]["ignored_keys"] == {
        "places": ["category", "rtreeId"],
        "samples": ["rtreeId"],
    }
    rows = load_account(settings.database_url, person.id)
    assert any(r["foursquare_category_v2_id"] for r in rows["places"].values())
    assert {r["samples_changed"] for r in rows["items"].values()} == {True, False}
    assert any(r["visit_last_saved"] not in (None, r["last_saved"]) for r in rows["items"].values())
    assert any(r["trip_last_saved"] not in (None, r["last_saved"]) for r in rows["items"].values())


@pytest.mark.parametrize("compress", ["samples", "none"])
def test_given_an_app_export_when_imported_and_exported_then_the_app_reads_the_same_records(
    ferry: InProcess,
    account: tuple[Account, str],
    app_archive: tuple[AppTimeline, Path],
    tmp_path: Path,
    compress: str,
) -> None:
    """App -> Ferry -> app: every record the app wrote comes back, decoded by the app's
    rules, equal property for property (the four newer ones included)."""
    person, _ = account
    timeline, path = app_archive

    done = ferry.import_archive(person.id, path, confirm=True)
    result = _conforms(ferry.export(person.id, compress=compress), tmp_path)

    assert done.status == "succeeded", done.error
    original = as_the_app_holds_it(timeline)
    for kind in KINDS:
        assert set(result.stored[kind]) == set(original[kind]), kind
        for record_id, record in original[kind].items():
            assert result.stored[kind][record_id] == record, (kind, record_id)


def test_given_an_app_backup_with_a_stale_copy_when_imported_then_the_newer_copy_lands(
    ferry: InProcess,
    settings: Settings,
    account: tuple[Account, str],
    tmp_path: Path,
) -> None:
    """An iCloud backup updated incrementally: an item moved to the next (local) month and
    was saved again, so the new month's file has the new copy and the old month's file,
    not rewritten, still has the old one. The import keeps the newer copy and says so."""
    person, _ = account
    timeline = app_timeline()
    folder = write_export(tmp_path / "icloud", timeline, started=STARTED)
    later = copy.deepcopy(timeline)
    moved = next(
        i
        for i in later.items
        if i["base"]["startDate"].astimezone(Phone().tz).month == 1 and "visit" in i
    )
    saved = STARTED + timedelta(hours=2)
    moved["base"].update(
        startDate=datetime(2025, 1, 31, 13, 30, tzinfo=UTC),  # 1 Feb 00:30 in Sydney
        endDate=datetime(2025, 1, 31, 13, 45, tzinfo=UTC),
        lastSaved=saved,
    )
    moved["visit"]["lastSaved"] = saved
    update_backup(folder, later, since=STARTED, started=STARTED + timedelta(hours=3))
    old_file = (folder / "items" / "2025-01.json").read_text()
    assert moved["base"]["id"] in old_file
    assert moved["base"]["id"] in (folder / "items" / "2025-02.json").read_text()

    done = ferry.import_archive(person.id, _zip(folder, tmp_path / "backup.zip"), confirm=True)

    assert done.status == "succeeded", done.error
    _assert_rows(ferry_rows(later), load_account(settings.database_url, person.id))
    assert done.preview is not None
    [warning] = done.preview["warnings"]
    assert warning["file"] == "items/2025-01.json"
    assert "older copy" in warning["reason"] and "items/2025-02.json" in warning["reason"]
    assert done.preview["counts"]["items"]["older_copies"] == 1
    assert done.preview["error_count"] == 0


# --- what an import repairs, and that the result still reads in the apps ----------------------


def test_given_records_lacking_what_the_apps_require_when_imported_then_defaults_and_warnings(
    ferry: InProcess,
    settings: Settings,
    account: tuple[Account, str],
    app_archive: tuple[AppTimeline, Path],
    tmp_path: Path,
) -> None:
    """Missing required keys take the apps' defaults, each a warning; a visit detached from
    a missing place loses its confirmation; a sample on a deleted item is unlinked. The
    account then exports an archive the apps read whole."""
    person, _ = account
    timeline = app_timeline(seed=9)
    visit = next(i for i in timeline.items if i.get("visit", {}).get("confirmedPlace"))
    trip = next(i for i in timeline.items if "trip" in i)
    gone = next(i for i in timeline.items if i["base"]["deleted"])
    sample = timeline.samples[0]
    for key in ("samplesChanged", "sourceVersion", "locked"):
        del trip["base"][key]
    del trip["trip"]["uncertainActivityType"]
    del timeline.places[0]["radiusSD"], timeline.places[0]["isStale"]
    del sample["source"], sample["movingState"], sample["recordingState"]
    sample["timelineItemId"] = gone["base"]["id"]
    visit["visit"]["placeId"] = "5F0C1A3E-0000-4000-8000-000000000000"  # in no archive
    folder = write_export(tmp_path / "phone", timeline, started=STARTED)

    done = ferry.import_archive(person.id, _zip(folder, tmp_path / "x.zip"), confirm=True)

    assert done.status == "succeeded", done.error
    assert done.preview is not None
    fields = {w["field"] for w in done.preview["warnings"]}
    assert {
        "base.samplesChanged",
        "base.sourceVersion",
        "base.locked",
        "trip.uncertainActivityType",
        "radiusSD",
        "isStale",
        "source",
        "movingState",
        "recordingState",
        "visit.placeId",
        "timelineItemId",
    } <= fields
    unlinked = [w for w in done.preview["warnings"] if w["field"] == "timelineItemId"]
    assert len(unlinked) == 1 and "deleted" in unlinked[0]["reason"], unlinked
    detached = [w for w in done.preview["warnings"] if w["field"] == "visit.placeId"]
    assert len(detached) == 1 and "not confirmed" in detached[0]["reason"], detached
    rows = load_account(settings.database_url, person.id)
    stored_trip = rows["items"][trip["base"]["id"].lower()]
    assert (stored_trip["samples_changed"], stored_trip["locked"]) == (False, False)
    assert stored_trip["source_version"] == "9.0.0"
    assert stored_trip["uncertain_activity_type"] is (
        trip["trip"].get("confirmedActivityType") is None
    )
    place = rows["places"][timeline.places[0]["id"].lower()]
    assert (place["radius_sd"], place["is_stale"]) == (0.0, True)
    stored_sample = rows["samples"][sample["id"].lower()]
    assert (stored_sample["source"], stored_sample["moving_state"]) == ("LocoKit2", -1)
    assert (stored_sample["recording_state"], stored_sample["timeline_item_id"]) == (0, None)
    stored_visit = rows["items"][visit["base"]["id"].lower()]
    assert (stored_visit["place_id"], stored_visit["confirmed_place"]) == (None, False)
    assert stored_visit["uncertain_place"] is True

    _conforms(ferry.export(person.id), tmp_path)


def test_given_an_account_imported_from_ferry_when_exported_then_the_apps_import_every_record(
    ferry: InProcess,
    settings: Settings,
    engine: Engine,
    account: tuple[Account, str],
    tmp_path: Path,
) -> None:
    """Ferry -> Ferry -> the apps: an export imported into another account exports again
    as an archive the apps read whole."""
    person, _ = account
    seed_timeline(settings.database_url, person.id, days=4, samples_per_day=120, seed=4)
    other = _account(engine, "again")

    done = ferry.import_archive(other.id, ferry.export(person.id), confirm=True)

    assert done.status == "succeeded", done.error
    result = _conforms(ferry.export(other.id), tmp_path)
    with raw_connection(settings.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM samples WHERE account_id = %s", (other.id,)
        ).fetchone()
    assert row is not None and len(result.stored["samples"]) == row[0]
