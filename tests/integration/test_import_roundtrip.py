"""Export -> import into an empty account -> export gives the same records, field for field.

SPEC 11: "An import keeps every field as the archive has it, `lastSaved` included".
Both archives are read and checked against their database with `tests.archive_check`
(SPEC 4 layout, buckets, manifest), then compared record by record. The property test
draws random valid timelines, with null fields, extreme floats and odd strings.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.seed import seed_timeline
from tests.arc_fixtures import (
    ACTIVITY_TYPES,
    ALWAYS,
    BASE,
    COLUMNS,
    KINDS,
    PLACE,
    SAMPLE,
    TRIP,
    VISIT,
    InProcess,
    Timeline,
    arc_archive,
    arc_timeline,
    assert_rows_match,
    expected_rows,
    insert_timeline,
    load_account,
)
from tests.archive_check import Archive, check_archive, keepers_from_db


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> InProcess:
    return InProcess(settings=settings, engine=engine)


def _new_account(engine: Engine) -> Account:
    return create_account(engine, f"roundtrip-{uuid.uuid4().hex[:10]}")


def _assert_same_records(first: Archive, second: Archive) -> None:
    """Same ids in the same files, and every record equal key for key (floats exactly)."""
    for kind in KINDS:
        a, b = first.records[kind], second.records[kind]
        assert set(a) == set(b), (
            f"{kind}: only in the first {sorted(set(a) - set(b))[:3]},"
            f" only in the second {sorted(set(b) - set(a))[:3]}"
        )
        for record_id, obj in a.items():
            other = b[record_id]
            assert obj == other, f"{kind} {record_id} differs:\n  first:  {obj}\n  second: {other}"
            assert _float_keys(obj) == _float_keys(other), (kind, record_id)
        assert first.located[kind] == second.located[kind]
    assert first.metadata["stats"] == second.metadata["stats"]


def _float_keys(obj: Any, prefix: str = "") -> set[str]:
    """Paths of the float values (1.0 == 1 in Python; the type must survive too)."""
    if isinstance(obj, dict):
        out: set[str] = set()
        for key, value in obj.items():
            out |= _float_keys(value, f"{prefix}{key}.")
        return out
    return {prefix} if isinstance(obj, float) else set()


# --- a seeded account ----------------------------------------------------------------------


def test_given_a_seeded_account_when_exported_imported_and_exported_again_then_records_match(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], engine: Engine
) -> None:
    """A realistic timeline (deleted and disabled items, unvisited places) survives whole."""
    person, _ = account
    url = settings.database_url
    seed_timeline(
        url,
        person.id,
        days=8,
        samples_per_day=250,
        seed=3,
        start=datetime(2024, 12, 26, tzinfo=UTC),
    )
    target = _new_account(engine)

    first = ferry.export(person.id)
    imported = ferry.import_archive(target.id, first, confirm=True)
    second = ferry.export(target.id)

    assert imported.status == "succeeded", imported.error
    original = check_archive(first, url, person.id)
    again = check_archive(second, url, target.id)
    _assert_same_records(original, again)
    assert load_account(url, target.id) == load_account(url, person.id)
    assert keepers_from_db(url, target.id) == keepers_from_db(url, person.id)
    assert imported.result is not None
    assert imported.result["written"] == {
        "places": len(original.records["places"]),
        "items": len(original.records["items"]),
        "samples": len(original.records["samples"]),
    }


def test_given_an_arc_archive_when_imported_and_exported_then_ferry_writes_the_same_records(
    ferry: InProcess, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """What Arc wrote (numeric dates, any case, extra keys) comes back out in SPEC 4 form,
    in the right week files: 2024-12-30 in 2025-W01, 2021-01-03 in 2020-W53."""
    person, _ = account
    url = settings.database_url
    timeline = arc_timeline(seed=17)
    path = arc_archive(timeline).write(tmp_path / "arc.zip")

    imported = ferry.import_archive(person.id, path, confirm=True)
    exported = check_archive(ferry.export(person.id), url, person.id)

    assert imported.status == "succeeded", imported.error
    assert_rows_match(expected_rows(timeline), load_account(url, person.id))
    week_of = {
        s["id"]: exported.located["samples"][s["id"]].split("/")[1].split(".")[0]
        for s in timeline.samples
    }
    for sample in timeline.samples:
        moment = sample["date"]
        if moment.date() == datetime(2024, 12, 30).date():
            assert week_of[sample["id"]] == "2025-W01", sample
        if moment.date() == datetime(2024, 12, 29).date():
            assert week_of[sample["id"]] == "2024-W52", sample
        if moment.date() == datetime(2021, 1, 3).date():
            assert week_of[sample["id"]] == "2020-W53", sample
    assert {"2025-W01", "2024-W52", "2020-W53", "2021-W01"} <= set(week_of.values())


# --- random timelines ---------------------------------------------------------------------------

ODD_STRINGS = (
    '"',
    "\\",
    '\\"',
    "'; DROP TABLE places; --",
    "line\nbreak\ttab\r",
    "\x01\x1f\x7f",
    "\u2028\u2029",
    "🚀 日本語 Ünïcödé",
    "</script>",
    " ",
    "\\u0000",
)
_TEXT = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
)
_FLOAT = st.one_of(
    st.sampled_from((0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1e308, 0.1, 1 / 3)),
    st.floats(allow_nan=False, allow_infinity=False),
)
_INT = st.one_of(st.sampled_from((-(2**31), 2**31 - 1, 0)), st.integers(-(2**31), 2**31 - 1))
_MOMENT = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2080, 12, 31), timezones=st.just(UTC)
)
_BY_KIND = {"text": _TEXT, "float": _FLOAT, "int": _INT, "bool": st.booleans(), "date": _MOMENT}
_BOUNDED = {
    "latitude": st.floats(-90, 90),
    "longitude": st.floats(-180, 180),
    "moving_state": st.integers(-1, 1),
    "recording_state": st.integers(0, 5),
    "classified_activity_type": st.sampled_from(ACTIVITY_TYPES),
    "confirmed_activity_type": st.sampled_from(ACTIVITY_TYPES),
    "custom_title": _TEXT.filter(bool),
}
_SET_ELSEWHERE = {"id", "is_visit", "start_date", "end_date", "date"}
_REFERENCES = {"previous_item_id", "next_item_id", "place_id", "timeline_item_id"}


def _fields(
    draw: st.DrawFn, fields: tuple[tuple[str, str, str], ...], required: set[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, column, kind in fields:
        if column in _SET_ELSEWHERE or column in _REFERENCES:
            continue
        value = _BOUNDED.get(column, _BY_KIND.get(kind))
        assert value is not None, column
        out[column] = draw(value if column in required else st.none() | value)
    return out


def _keep_the_apps_rules(item: dict[str, Any]) -> None:
    """Flags and coordinates as the Arc apps' CHECK rules allow (Ferry holds no others)."""
    if item["is_visit"]:
        if item["place_id"] is None:
            item["confirmed_place"], item["uncertain_place"] = False, True
        elif item["confirmed_place"]:
            item["uncertain_place"] = False
        lat, lon = item["latitude"], item["longitude"]
        if (lat is None) != (lon is None) or (lat == 0 and lon == 0):
            item["latitude"] = item["longitude"] = None
    elif item["confirmed_activity_type"] is not None:
        item["uncertain_activity_type"] = False
    elif item["classified_activity_type"] is None:
        item["uncertain_activity_type"] = True


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    """A valid timeline: references resolve inside it, end >= start, values in range."""
    sizes = [draw(st.integers(0, 3)), draw(st.integers(0, 4)), draw(st.integers(0, 6))]
    ids = draw(st.lists(st.uuids().map(str), min_size=sum(sizes), max_size=sum(sizes), unique=True))
    place_ids, item_ids, sample_ids = (
        ids[: sizes[0]],
        ids[sizes[0] : sizes[0] + sizes[1]],
        ids[sizes[0] + sizes[1] :],
    )
    timeline = Timeline()
    for place_id in place_ids:
        place = _fields(draw, PLACE, ALWAYS["places"])
        place["name"] = draw(_TEXT.filter(bool))
        timeline.places.append({"id": place_id, **place})
    for item_id in item_ids:
        is_visit = draw(st.booleans())
        detail = VISIT if is_visit else TRIP
        item = _fields(
            draw, BASE + detail, ALWAYS["base"] | ALWAYS["visit" if is_visit else "trip"]
        )
        start = draw(_MOMENT)
        length = draw(st.sampled_from((0, 59.999999, 60, 119, 120)) | st.floats(0, 10**6))
        others = [i for i in item_ids if i != item_id]
        previous = draw(st.none() | st.sampled_from(others)) if others else None
        rest = [i for i in others if i != previous]
        following = draw(st.none() | st.sampled_from(rest)) if rest else None
        item.update(
            id=item_id,
            is_visit=is_visit,
            start_date=start,
            end_date=start + timedelta(microseconds=round(length * 1_000_000)),
            previous_item_id=previous,
            next_item_id=following,
        )
        if is_visit:
            item["place_id"] = draw(st.none() | st.sampled_from(place_ids)) if place_ids else None
        _keep_the_apps_rules(item)
        timeline.items.append(item)
    for sample_id in sample_ids:
        sample = _fields(draw, SAMPLE, ALWAYS["samples"])
        sample.update(id=sample_id, date=draw(_MOMENT))
        # The Arc apps keep no sample on a deleted item (and Ferry's import unlinks one).
        alive = [i["id"] for i in timeline.items if not i["deleted"]]
        if alive:
            sample["timeline_item_id"] = draw(st.none() | st.sampled_from(alive))
        timeline.samples.append(sample)
    for kind in KINDS:
        for record in timeline.of(kind):
            assert set(record) <= set(COLUMNS[kind]), set(record) - set(COLUMNS[kind])
    return timeline


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(timeline=timelines())
def test_given_a_random_valid_timeline_when_round_tripped_then_nothing_changes(
    ferry: InProcess, settings: Settings, engine: Engine, timeline: Timeline
) -> None:
    """Export -> import into an empty account -> export: the same records, the same rows."""
    url = settings.database_url
    source, target = _new_account(engine), _new_account(engine)
    insert_timeline(url, source.id, timeline)
    assert_rows_match(expected_rows(timeline), load_account(url, source.id))

    first = ferry.export(source.id)
    imported = ferry.import_archive(target.id, first, confirm=True)
    second = ferry.export(target.id)

    assert imported.status == "succeeded", imported.error
    assert_rows_match(expected_rows(timeline), load_account(url, target.id))
    _assert_same_records(
        check_archive(first, url, source.id), check_archive(second, url, target.id)
    )
