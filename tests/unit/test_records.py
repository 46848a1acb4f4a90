"""Record codecs (SPEC 3 and 4): database rows <-> archive objects, and what decoding refuses."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.archive.records import (
    decode_item,
    decode_place,
    decode_sample,
    encode_item,
    encode_place,
    encode_sample,
    fast_sample_rows,
    unknown_keys,
)
from shared.archive.records import item_row as decode_item_row
from shared.archive.records import place_row as decode_place_row
from shared.archive.records import sample_row as decode_sample_row
from shared.fields import (
    ITEM_BASE_FIELDS,
    ITEM_COLUMNS,
    PLACE_COLUMNS,
    PLACE_FIELDS,
    SAMPLE_COLUMNS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Problem,
)
from shared.timefmt import parse_iso

PLACE_ID = "6f1e0b7c-3a2d-4e5f-8a9b-0c1d2e3f4a5b"
ITEM_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
OTHER_ID = "0a1b2c3d-4e5f-4061-8728-394a5b6c7d8e"
SAVED = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


def _json_trip(obj: Any) -> Any:
    """What a reader sees after the object went through a JSON file."""
    return json.loads(json.dumps(obj))


def _fields(problems: list[Problem]) -> set[str]:
    """The fields named by the problems that refuse the record (not the warnings)."""
    return {p.field for p in problems if not p.warning}


def _warned(problems: list[Problem]) -> set[str]:
    """The fields named by warnings (what an import changed, e.g. a default it took)."""
    return {p.field for p in problems if p.warning}


def place_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(PLACE_COLUMNS)
    row.update(
        id=PLACE_ID,
        name="Home",
        locality="Lisbon",
        country_code="PT",
        seconds_from_gmt=3600,
        latitude=38.7223,
        longitude=-9.1393,
        radius_mean=25.5,
        radius_sd=4.25,
        is_stale=False,
        visit_count=42,
        visit_days=12,
        last_visit_date=datetime(2024, 4, 30, 18, 0, tzinfo=UTC),
        foursquare_category_id=4,
        foursquare_category_v2_id="4bf58dd8d48988d116941735",
        source="LocoKit2",
        last_saved=SAVED,
    )
    row.update(changes)
    return row


def visit_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ITEM_COLUMNS)
    row.update(
        id=ITEM_ID,
        is_visit=True,
        start_date=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        end_date=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        source="LocoKit2",
        source_version="9.1.0",
        disabled=False,
        deleted=False,
        locked=False,
        samples_changed=True,
        last_saved=SAVED,
        next_item_id=OTHER_ID,
        step_count=120,
        latitude=38.7,
        longitude=-9.1,
        radius_mean=30.0,
        radius_sd=5.0,
        place_id=PLACE_ID,
        confirmed_place=True,
        uncertain_place=False,
        custom_title="Office",
        visit_last_saved=SAVED - timedelta(minutes=5),
    )
    row.update(changes)
    return row


def trip_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ITEM_COLUMNS)
    row.update(
        id=OTHER_ID,
        is_visit=False,
        start_date=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        end_date=datetime(2024, 5, 1, 9, 45, tzinfo=UTC),
        source="LocoKit2",
        source_version="9.1.0",
        disabled=False,
        deleted=True,
        locked=False,
        samples_changed=False,
        last_saved=SAVED,
        previous_item_id=ITEM_ID,
        distance=1520.5,
        speed=1.7,
        classified_activity_type=2,
        confirmed_activity_type=3,
        uncertain_activity_type=False,
        trip_last_saved=SAVED + timedelta(seconds=1),
    )
    row.update(changes)
    return row


def sample_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(SAMPLE_COLUMNS)
    row.update(
        id="11111111-2222-4333-8444-555555555555",
        date=datetime(2024, 5, 1, 8, 15, 3, 500000, tzinfo=UTC),
        seconds_from_gmt=3600,
        source="LocoKit2",
        source_version="9.1.0",
        moving_state=-1,
        recording_state=5,
        disabled=False,
        last_saved=SAVED,
        timeline_item_id=ITEM_ID,
        latitude=-33.8688,
        longitude=151.2093,
        altitude=12.0,
        horizontal_accuracy=5.0,
        heart_rate=71.5,
        classified_activity_type=1,
    )
    row.update(changes)
    return row


# --- the field tables -----------------------------------------------------------------


def test_the_archive_keys_are_the_ones_spec_4_lists() -> None:
    """Field names are a compatibility contract with LocoKit2; none may go missing."""
    assert [f.key for f in PLACE_FIELDS] == [
        "id", "name", "streetAddress", "locality", "countryCode", "secondsFromGMT",
        "latitude", "longitude", "radiusMean", "radiusSD", "isStale", "visitCount",
        "visitDays", "lastVisitDate", "mapboxPlaceId", "mapboxCategory", "mapboxMakiIcon",
        "googlePlaceId", "googlePrimaryType", "foursquarePlaceId", "foursquareCategoryId",
        "foursquareCategoryV2Id", "userCategory", "source", "lastSaved",
    ]  # fmt: skip
    assert [f.key for f in ITEM_BASE_FIELDS] == [
        "id", "isVisit", "startDate", "endDate", "source", "sourceVersion", "disabled",
        "deleted", "locked", "samplesChanged", "lastSaved", "previousItemId", "nextItemId",
        "stepCount",
        "floorsAscended", "floorsDescended", "averageAltitude", "activeEnergyBurned",
        "averageHeartRate", "maxHeartRate",
    ]  # fmt: skip
    assert {f.key for f in VISIT_FIELDS} | {"itemId"} == {
        "itemId", "latitude", "longitude", "radiusMean", "radiusSD", "placeId",
        "confirmedPlace", "uncertainPlace", "customTitle", "streetAddress", "locality",
        "countryCode", "lastSaved",
    }  # fmt: skip
    assert {f.key for f in TRIP_FIELDS} | {"itemId"} == {
        "itemId", "distance", "speed", "classifiedActivityType", "confirmedActivityType",
        "uncertainActivityType", "lastSaved",
    }  # fmt: skip
    assert [f.key for f in SAMPLE_FIELDS] == [
        "id", "date", "secondsFromGMT", "source", "sourceVersion", "movingState",
        "recordingState", "disabled", "lastSaved", "timelineItemId", "latitude", "longitude",
        "altitude", "horizontalAccuracy", "verticalAccuracy", "speed", "course", "stepHz",
        "xyAcceleration", "zAcceleration", "heartRate", "classifiedActivityType",
        "confirmedActivityType",
    ]  # fmt: skip


# --- encoding -------------------------------------------------------------------------


def test_given_a_place_row_when_encoded_then_keys_are_camel_case_and_nulls_are_omitted() -> None:
    """A place object carries only its non-null fields, ids upper case, dates in Z."""
    encoded = encode_place(place_row())

    assert encoded == {
        "id": PLACE_ID.upper(),
        "name": "Home",
        "locality": "Lisbon",
        "countryCode": "PT",
        "secondsFromGMT": 3600,
        "latitude": 38.7223,
        "longitude": -9.1393,
        "radiusMean": 25.5,
        "radiusSD": 4.25,
        "isStale": False,
        "visitCount": 42,
        "visitDays": 12,
        "lastVisitDate": "2024-04-30T18:00:00Z",
        "foursquareCategoryId": 4,
        "foursquareCategoryV2Id": "4bf58dd8d48988d116941735",
        "source": "LocoKit2",
        "lastSaved": "2024-05-01T12:00:00.25Z",
    }
    assert None not in encoded.values()


def test_given_a_uuid_object_when_encoded_then_it_is_written_upper_case() -> None:
    """Rows from the driver may carry `uuid.UUID`; the archive still gets upper-case text."""
    encoded = encode_place(place_row(id=uuid.UUID(PLACE_ID)))

    assert encoded["id"] == PLACE_ID.upper()


def test_given_a_visit_row_when_encoded_then_it_is_base_plus_visit_with_item_id() -> None:
    """A visit is `{"base", "visit"}`; the visit part repeats the id and has its own
    lastSaved (kept apart from the base's)."""
    encoded = encode_item(visit_row())

    assert set(encoded) == {"base", "visit"}
    assert encoded["base"] == {
        "id": ITEM_ID.upper(),
        "isVisit": True,
        "startDate": "2024-05-01T08:00:00Z",
        "endDate": "2024-05-01T09:30:00Z",
        "source": "LocoKit2",
        "sourceVersion": "9.1.0",
        "disabled": False,
        "deleted": False,
        "locked": False,
        "samplesChanged": True,
        "lastSaved": "2024-05-01T12:00:00.25Z",
        "nextItemId": OTHER_ID.upper(),
        "stepCount": 120,
    }
    assert encoded["visit"] == {
        "itemId": ITEM_ID.upper(),
        "latitude": 38.7,
        "longitude": -9.1,
        "radiusMean": 30.0,
        "radiusSD": 5.0,
        "placeId": PLACE_ID.upper(),
        "confirmedPlace": True,
        "uncertainPlace": False,
        "customTitle": "Office",
        "lastSaved": "2024-05-01T11:55:00.25Z",
    }


def test_given_a_trip_row_when_encoded_then_it_is_base_plus_trip_without_visit_fields() -> None:
    """A trip is `{"base", "trip"}`; visit-only columns never leak into it."""
    encoded = encode_item(trip_row(latitude=1.0, place_id=PLACE_ID))

    assert set(encoded) == {"base", "trip"}
    assert encoded["base"]["isVisit"] is False
    assert encoded["base"]["previousItemId"] == ITEM_ID.upper()
    assert "nextItemId" not in encoded["base"]
    assert encoded["trip"] == {
        "itemId": OTHER_ID.upper(),
        "distance": 1520.5,
        "speed": 1.7,
        "classifiedActivityType": 2,
        "confirmedActivityType": 3,
        "uncertainActivityType": False,
        "lastSaved": "2024-05-01T12:00:01.25Z",
    }


def test_given_a_sample_row_when_encoded_then_nulls_are_omitted_and_ids_upper_case() -> None:
    """A sample object carries only its non-null fields."""
    encoded = encode_sample(sample_row())

    assert encoded == {
        "id": "11111111-2222-4333-8444-555555555555",
        "date": "2024-05-01T08:15:03.5Z",
        "secondsFromGMT": 3600,
        "source": "LocoKit2",
        "sourceVersion": "9.1.0",
        "movingState": -1,
        "recordingState": 5,
        "disabled": False,
        "lastSaved": "2024-05-01T12:00:00.25Z",
        "timelineItemId": ITEM_ID.upper(),
        "latitude": -33.8688,
        "longitude": 151.2093,
        "altitude": 12.0,
        "horizontalAccuracy": 5.0,
        "heartRate": 71.5,
        "classifiedActivityType": 1,
    }


# --- decoding what was encoded ----------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "encode", "decode"),
    [
        (place_row(), encode_place, decode_place),
        (visit_row(), encode_item, decode_item),
        (trip_row(), encode_item, decode_item),
        (sample_row(), encode_sample, decode_sample),
    ],
    ids=["place", "visit", "trip", "sample"],
)
def test_given_an_encoded_row_when_decoded_then_every_column_comes_back(
    row: dict[str, Any], encode: Any, decode: Any
) -> None:
    """Export then import keeps every field (SPEC 11), through a real JSON text."""
    decoded, problems = decode(_json_trip(encode(row)))

    assert problems == []
    assert decoded == row


# --- decoding what an archive may hold ----------------------------------------------------


def test_given_ids_in_upper_or_lower_case_when_decoded_then_they_are_accepted_and_normalised() -> (
    None
):
    """UUIDs are read in any case and stored one way, so references match."""
    upper, _ = decode_sample({"id": ITEM_ID.upper(), "date": "2024-01-01T00:00:00Z"})
    lower, _ = decode_sample({"id": ITEM_ID.lower(), "date": "2024-01-01T00:00:00Z"})
    mixed, problems = decode_item(
        {
            "base": {
                "id": "A0b1C2d3-E4f5-4A6b-8C7d-9E0f1A2b3C4d",
                "isVisit": True,
                "startDate": "2024-01-01T00:00:00Z",
                "endDate": "2024-01-01T01:00:00Z",
                "nextItemId": OTHER_ID.upper(),
            },
            "visit": {"placeId": PLACE_ID.upper()},
        }
    )

    assert _fields(problems) == set()  # the keys it lacks take defaults, with warnings
    assert upper["id"] == lower["id"]
    assert mixed["id"] == ITEM_ID.lower()
    assert mixed["next_item_id"] == OTHER_ID.lower()
    assert mixed["place_id"] == PLACE_ID.lower()


def test_given_unknown_extra_keys_when_decoded_then_they_are_ignored() -> None:
    """Newer app versions add fields; an older reader must still take the record."""
    obj = {**encode_place(place_row()), "futureField": {"x": 1}, "anotherOne": [1, 2]}

    decoded, problems = decode_place(obj)

    assert problems == []
    assert decoded == place_row()


def test_given_numeric_dates_when_decoded_then_apple_and_unix_seconds_are_accepted() -> None:
    """Readers accept numeric dates: below 978307200 Apple time, otherwise Unix (SPEC 4)."""
    decoded, problems = decode_item(
        {
            "base": {
                "id": ITEM_ID,
                "isVisit": False,
                "startDate": 700_000_000,
                "endDate": 1_678_307_260.5,
                "lastSaved": 0,
            },
            "trip": {"distance": 10},
        }
    )

    assert _fields(problems) == set()
    assert decoded["start_date"] == datetime(2023, 3, 8, 20, 26, 40, tzinfo=UTC)
    assert decoded["end_date"] == datetime(2023, 3, 8, 20, 27, 40, 500000, tzinfo=UTC)
    assert decoded["last_saved"] == datetime(2001, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-02T03:04:05.5Z",
        "2024-01-02T03:04:05.5z",
        "2024-01-02T05:04:05.5+02:00",
        "2024-01-01T22:04:05.5-05:00",
        "2024-01-02T03:04:05.5",
        "2024-01-02T03:04:05.500Z",
        "2024-01-02T03:04:05.5000000Z",
        "2024-01-02T03:04:05.500000000Z",
    ],
)
def test_given_a_date_string_in_any_form_the_date_parser_accepts_when_decoded_then_same_instant(
    text: str,
) -> None:
    """Records read dates exactly as `timefmt.parse_iso` does: `Z` or `z`, offsets,
    naive (= UTC) and 1 to 9 fraction digits all name the same instant."""
    expected = datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
    assert parse_iso(text) == expected

    decoded, problems = decode_sample({**encode_sample(sample_row()), "date": text})

    assert problems == []
    assert decoded["date"] == expected


def test_given_a_pretty_printed_archive_object_when_decoded_then_values_are_read_the_same() -> None:
    """Integral floats (1.0) count as integers and integers as floats."""
    decoded, problems = decode_sample(
        {
            **encode_sample(sample_row()),
            "date": "2024-01-01T00:00:00+02:00",
            "recordingState": 2.0,
            "latitude": 51,
        }
    )

    assert problems == []
    assert decoded["recording_state"] == 2
    assert isinstance(decoded["recording_state"], int)
    assert decoded["latitude"] == 51.0
    assert decoded["date"] == datetime(2023, 12, 31, 22, 0, tzinfo=UTC)


def test_given_a_visit_item_without_a_visit_part_when_decoded_then_it_takes_the_apps_defaults() -> (
    None
):
    """A visit whose detail object is absent still decodes: the values the Arc apps need
    take their defaults (each a warning), the visit's lastSaved is the item's, and a
    visit without a place is uncertain and not confirmed."""
    obj = encode_item(visit_row())
    del obj["visit"]

    decoded, problems = decode_item(obj)

    assert _fields(problems) == set()
    assert _warned(problems) == {
        "visit.radiusMean",
        "visit.radiusSD",
        "visit.confirmedPlace",
        "visit.uncertainPlace",
        "visit.lastSaved",
    }
    assert set(decoded) == set(ITEM_COLUMNS)
    assert decoded["place_id"] is None
    assert (decoded["confirmed_place"], decoded["uncertain_place"]) == (False, True)
    assert (decoded["radius_mean"], decoded["radius_sd"]) == (50.0, 10.0)
    assert decoded["visit_last_saved"] == SAVED
    assert decoded["distance"] is None


# --- refusals ---------------------------------------------------------------------------


def test_given_a_place_without_id_when_decoded_then_the_missing_id_is_reported() -> None:
    """A record without an id cannot be stored."""
    obj = encode_place(place_row())
    del obj["id"]

    _, problems = decode_place(obj)

    assert problems == [Problem("id", "is required")]


def test_given_a_sample_without_id_or_date_when_decoded_then_each_is_reported() -> None:
    """Every required field missing is named."""
    obj = encode_sample(sample_row())
    del obj["id"], obj["date"]

    _, problems = decode_sample(obj)

    assert _fields(problems) == {"id", "date"}


def test_given_an_item_without_id_when_decoded_then_base_id_is_reported() -> None:
    """Item problems name the part they come from."""
    obj = encode_item(visit_row())
    del obj["base"]["id"]

    _, problems = decode_item(obj)

    assert _fields(problems) == {"base.id"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("latitude", True),  # bool is not a number
        ("latitude", "38.7"),  # a string is not a number
        ("radiusMean", False),
        ("radiusMean", [1.0]),
        ("visitCount", True),
        ("visitCount", "42"),
        ("visitCount", 4.5),
        ("visitCount", 2**31),
        ("isStale", "false"),
        ("isStale", 0),
        ("name", 7),
        ("id", 12345),
        ("id", "not-a-uuid"),
        ("id", PLACE_ID + "0"),
        ("lastSaved", "last tuesday"),
        ("lastSaved", True),
        ("locality", "nul\x00byte"),
    ],
)
def test_given_a_place_field_of_the_wrong_type_when_decoded_then_that_field_is_reported(
    key: str, value: Any
) -> None:
    """A wrong type is named by its archive key, never silently coerced."""
    obj = {**encode_place(place_row()), key: value}

    decoded, problems = decode_place(obj)

    assert _fields(problems) == {key}
    assert all(p.reason for p in problems)
    column = next(f.column for f in PLACE_FIELDS if f.key == key)
    assert decoded[column] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("movingState", "moving"),
        ("movingState", True),
        ("speed", "3.2"),
        ("speed", True),
        ("date", False),
        ("timelineItemId", 7),
        ("disabled", "no"),
    ],
)
def test_given_a_sample_field_of_the_wrong_type_when_decoded_then_that_field_is_reported(
    key: str, value: Any
) -> None:
    """Samples are checked field by field too."""
    _, problems = decode_sample({**encode_sample(sample_row()), key: value})

    assert _fields(problems) == {key}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_given_a_non_finite_coordinate_when_decoded_then_it_is_reported(value: float) -> None:
    """NaN and infinities are not positions (Python's json reads them from `NaN` tokens)."""
    obj = json.loads(json.dumps({**encode_sample(sample_row()), "latitude": value}))
    assert obj["latitude"] is not None and not math.isfinite(obj["latitude"])

    _, problems = decode_sample(obj)

    assert _fields(problems) == {"latitude"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("latitude", 90.000001),
        ("latitude", -91),
        ("longitude", 180.5),
        ("longitude", -181.0),
    ],
)
def test_given_a_coordinate_out_of_range_when_decoded_then_it_is_reported(
    key: str, value: float
) -> None:
    """Latitude is in [-90, 90] and longitude in [-180, 180] (SPEC 11)."""
    _, place_problems = decode_place({**encode_place(place_row()), key: value})
    _, sample_problems = decode_sample({**encode_sample(sample_row()), key: value})
    visit = encode_item(visit_row())
    visit["visit"][key] = value
    _, visit_problems = decode_item(visit)

    assert _fields(place_problems) == {key}
    assert _fields(sample_problems) == {key}
    assert _fields(visit_problems) == {f"visit.{key}"}


@pytest.mark.parametrize(("lat", "lon"), [(90, 180), (-90, -180), (0, 0)])
def test_given_coordinates_on_the_range_edges_when_decoded_then_they_are_accepted(
    lat: float, lon: float
) -> None:
    """The poles and the antimeridian are real places."""
    _, problems = decode_place({**encode_place(place_row()), "latitude": lat, "longitude": lon})

    assert problems == []


@pytest.mark.parametrize(
    ("key", "value"), [("movingState", 2), ("movingState", -2), ("recordingState", 6)]
)
def test_given_a_sample_state_out_of_range_when_decoded_then_it_is_reported(
    key: str, value: int
) -> None:
    """movingState is -1..1 and recordingState 0..5 (SPEC 3)."""
    _, problems = decode_sample({**encode_sample(sample_row()), key: value})

    assert _fields(problems) == {key}


def test_given_an_empty_place_name_when_decoded_then_it_is_reported() -> None:
    """A place name is non-empty text (SPEC 3)."""
    _, problems = decode_place({**encode_place(place_row()), "name": ""})

    assert _fields(problems) == {"name"}


def test_given_an_item_ending_before_it_starts_when_decoded_then_end_date_is_reported() -> None:
    """end >= start (SPEC 3)."""
    obj = encode_item(visit_row())
    obj["base"]["endDate"] = "2024-05-01T07:59:59.999Z"

    _, problems = decode_item(obj)

    assert _fields(problems) == {"base.endDate"}


def test_given_an_item_of_zero_length_when_decoded_then_it_is_accepted() -> None:
    """end == start is allowed: only end before start is refused."""
    obj = encode_item(visit_row())
    obj["base"]["endDate"] = obj["base"]["startDate"]

    _, problems = decode_item(obj)

    assert problems == []


def test_given_an_item_with_both_visit_and_trip_when_decoded_then_it_is_reported() -> None:
    """An item is a visit or a trip, never both."""
    obj = encode_item(visit_row())
    obj["trip"] = {"itemId": ITEM_ID.upper(), "distance": 5.0}

    _, problems = decode_item(obj)

    assert _fields(problems) & {"visit", "trip"}


@pytest.mark.parametrize(
    ("is_visit", "part"), [(True, "trip"), (False, "visit")], ids=["visit-says", "trip-says"]
)
def test_given_is_visit_disagreeing_with_the_detail_part_when_decoded_then_it_is_reported(
    is_visit: bool, part: str
) -> None:
    """`isVisit` must match the detail object the item carries."""
    obj = {
        "base": {
            "id": ITEM_ID,
            "isVisit": is_visit,
            "startDate": "2024-01-01T00:00:00Z",
            "endDate": "2024-01-01T01:00:00Z",
        },
        part: {"itemId": ITEM_ID},
    }

    _, problems = decode_item(obj)

    assert part in _fields(problems)


@pytest.mark.parametrize("obj", [None, [], "item", 3, {"visit": {}}, {"base": []}])
def test_given_an_item_that_is_not_an_object_with_base_when_decoded_then_base_is_reported(
    obj: Any,
) -> None:
    """Anything without a `base` object is refused, not crashed on."""
    decoded, problems = decode_item(obj)

    assert decoded == {}
    assert _fields(problems) == {"base"}


@pytest.mark.parametrize("obj", [None, [], "place", 3.5])
def test_given_a_place_or_sample_that_is_not_an_object_when_decoded_then_it_is_reported(
    obj: Any,
) -> None:
    """A JSON array element that is not an object is one problem, not a crash."""
    assert decode_place(obj)[1] and decode_sample(obj)[1]


def test_given_a_detail_part_that_is_not_an_object_when_decoded_then_it_is_reported() -> None:
    """`"visit": 3` is refused by name."""
    obj = encode_item(visit_row())
    obj["visit"] = 3

    _, problems = decode_item(obj)

    assert _fields(problems) == {"visit"}


def test_given_several_problems_when_decoded_then_every_one_is_listed() -> None:
    """The validation report lists each field (SPEC 11), not only the first."""
    obj = {**encode_place(place_row()), "name": "", "latitude": 95, "visitCount": "x"}
    del obj["id"]

    _, problems = decode_place(obj)

    assert _fields(problems) == {"name", "latitude", "visitCount", "id"}


# --- properties -----------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_uuids = st.uuids().map(str)
_dates = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_lat = st.floats(min_value=-90, max_value=90)
_lon = st.floats(min_value=-180, max_value=180)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


_STRATEGIES = {
    "uuid": _uuids,
    "text": _text,
    "int": _ints,
    "smallint": _ints,
    "float": _floats,
    "bool": st.booleans(),
    "date": _dates,
}


def _field_strategy(field: Any) -> st.SearchStrategy[Any]:
    if field.key == "latitude":
        base: st.SearchStrategy[Any] = _lat
    elif field.key == "longitude":
        base = _lon
    elif field.minimum is not None and field.maximum is not None:
        base = st.integers(int(field.minimum), int(field.maximum))
    elif field.choices is not None:
        base = st.sampled_from(sorted(field.choices))
    elif field.nonempty or field.key == "customTitle":
        base = _text.filter(bool)
    else:
        base = _STRATEGIES[field.kind.value]
    # What the Arc apps require is always there (Ferry's columns are NOT NULL for it).
    return base if field.always else _maybe(base)


def _row(fields: tuple[Any, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({f.column: _field_strategy(f) for f in fields})


@st.composite
def _item_rows(draw: st.DrawFn) -> dict[str, Any]:
    row = draw(_row(ITEM_BASE_FIELDS))
    row["end_date"] = row["start_date"] + draw(
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))
    )
    detail = VISIT_FIELDS if row["is_visit"] else TRIP_FIELDS
    row.update(draw(_row(detail)))
    # Rows Ferry can hold keep the Arc apps' rules (CHECK constraints of timeline_items).
    if row["is_visit"]:
        if row["place_id"] is None:
            row["confirmed_place"], row["uncertain_place"] = False, True
        elif row["confirmed_place"]:
            row["uncertain_place"] = False
        if (row["latitude"] is None) != (row["longitude"] is None) or (
            row["latitude"] == 0 and row["longitude"] == 0
        ):
            row["latitude"] = row["longitude"] = None
    elif row["confirmed_activity_type"] is not None:
        row["uncertain_activity_type"] = False
    elif row["classified_activity_type"] is None:
        row["uncertain_activity_type"] = True
    for column in ITEM_COLUMNS:
        row.setdefault(column, None)
    return row


@settings(max_examples=100)
@given(_row(PLACE_FIELDS))
def test_property_place_rows_survive_encode_json_decode(row: dict[str, Any]) -> None:
    """Any valid place row comes back field for field through an archive file."""
    decoded, problems = decode_place(_json_trip(encode_place(row)))

    assert problems == []
    assert decoded == row


@settings(max_examples=75)
@given(_item_rows())
def test_property_item_rows_survive_encode_json_decode(row: dict[str, Any]) -> None:
    """Any valid visit or trip row comes back field for field through an archive file."""
    encoded = _json_trip(encode_item(row))

    decoded, problems = decode_item(encoded)

    assert problems == []
    assert set(encoded) == {"base", "visit" if row["is_visit"] else "trip"}
    assert decoded == row


@settings(max_examples=100)
@given(_row(SAMPLE_FIELDS))
def test_property_sample_rows_survive_encode_json_decode(row: dict[str, Any]) -> None:
    """Any valid sample row comes back field for field through an archive file."""
    encoded = _json_trip(encode_sample(row))

    decoded, problems = decode_sample(encoded)

    assert problems == []
    assert None not in encoded.values()
    assert decoded == row


# --- what the Arc apps require (LocoKit2 at 68c0a86) ------------------------------------------


@pytest.mark.parametrize(
    ("encode", "decode", "row", "key", "column", "default"),
    [
        (encode_place, decode_place, place_row, "radiusMean", "radius_mean", 60.0),
        (encode_place, decode_place, place_row, "radiusSD", "radius_sd", 0.0),
        (encode_place, decode_place, place_row, "isStale", "is_stale", True),
        (encode_place, decode_place, place_row, "visitCount", "visit_count", 0),
        (encode_place, decode_place, place_row, "source", "source", "LocoKit2"),
        (encode_sample, decode_sample, sample_row, "source", "source", "LocoKit2"),
        (encode_sample, decode_sample, sample_row, "sourceVersion", "source_version", "9.0.0"),
        (encode_sample, decode_sample, sample_row, "movingState", "moving_state", -1),
        (encode_sample, decode_sample, sample_row, "recordingState", "recording_state", 0),
        (encode_sample, decode_sample, sample_row, "disabled", "disabled", False),
    ],
)
def test_given_a_key_the_apps_require_missing_or_null_when_decoded_then_it_takes_their_default(
    *, encode: Any, decode: Any, row: Any, key: str, column: str, default: Any
) -> None:
    """The Swift property's default (or, where it has none, the value the apps' importer
    of old data uses), with a warning naming the key; the record is not refused."""
    for obj in ({k: v for k, v in encode(row()).items() if k != key}, {**encode(row()), key: None}):
        decoded, problems = decode(obj)

        assert _fields(problems) == set()
        assert _warned(problems) == {key}
        assert decoded[column] == default and type(decoded[column]) is type(default)


@pytest.mark.parametrize(
    ("part", "key", "column", "default"),
    [
        ("base", "source", "source", "LocoKit2"),
        ("base", "sourceVersion", "source_version", "9.0.0"),
        ("base", "disabled", "disabled", False),
        ("base", "deleted", "deleted", False),
        ("base", "locked", "locked", False),
        ("base", "samplesChanged", "samples_changed", False),
        ("trip", "distance", "distance", 0.0),
        ("trip", "speed", "speed", 0.0),
    ],
)
def test_given_an_item_key_the_apps_require_missing_when_decoded_then_it_takes_their_default(
    part: str, key: str, column: str, default: Any
) -> None:
    obj = encode_item(trip_row())
    del obj[part][key]

    decoded, problems = decode_item(obj)

    assert _fields(problems) == set()
    assert _warned(problems) == {f"{part}.{key}"}
    assert decoded[column] == default


def test_given_a_missing_last_saved_when_decoded_then_it_is_the_import_time_or_the_items() -> None:
    """lastSaved defaults to "now" (Swift's `Date = .now`): the import's time; a visit's or
    trip's own lastSaved to the item's, which the apps save together."""
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    place = encode_place(place_row())
    del place["lastSaved"]
    item = encode_item(visit_row())
    del item["visit"]["lastSaved"]

    decoded_place, place_problems = decode_place(place, now)
    decoded_item, item_problems = decode_item(item, now)

    assert decoded_place["last_saved"] == now and _warned(place_problems) == {"lastSaved"}
    assert decoded_item["visit_last_saved"] == SAVED
    assert _warned(item_problems) == {"visit.lastSaved"}


@pytest.mark.parametrize("value", [7, 36, 62, -2, 19, 100])
def test_given_an_activity_type_outside_locokit2s_enum_when_decoded_then_it_is_refused(
    value: int,
) -> None:
    """Only ActivityType's raw values: 7 was never a type (6 is airplane, 20 train)."""
    _, sample = decode_sample({**encode_sample(sample_row()), "classifiedActivityType": value})
    trip = encode_item(trip_row())
    trip["trip"]["confirmedActivityType"] = value
    _, item = decode_item(trip)

    assert _fields(sample) == {"classifiedActivityType"}
    assert _fields(item) == {"trip.confirmedActivityType"}


@pytest.mark.parametrize(
    ("changes", "fixed", "warned"),
    [
        (
            {"placeId": None, "confirmedPlace": True, "uncertainPlace": False},
            {"place_id": None, "confirmed_place": False, "uncertain_place": True},
            {"visit.confirmedPlace", "visit.uncertainPlace"},
        ),
        (
            {"confirmedPlace": True, "uncertainPlace": True},
            {"confirmed_place": True, "uncertain_place": False},
            {"visit.uncertainPlace"},
        ),
        (
            {"placeId": None, "confirmedPlace": False, "uncertainPlace": False},
            {"confirmed_place": False, "uncertain_place": True},
            {"visit.uncertainPlace"},
        ),
        ({"latitude": 0, "longitude": 0}, {"latitude": None, "longitude": None}, None),
        ({"longitude": None}, {"latitude": None, "longitude": None}, None),
        ({"customTitle": ""}, {"custom_title": None}, {"visit.customTitle"}),
    ],
)
def test_given_a_visit_breaking_the_apps_rules_when_decoded_then_it_is_set_right_with_a_warning(
    changes: dict[str, Any], fixed: dict[str, Any], warned: set[str] | None
) -> None:
    """The apps drop such a visit without a word; Ferry sets it right as their own code
    does (clearPlace, setUncertainty, their null-island migration) and says so."""
    obj = encode_item(visit_row())
    for key, value in changes.items():
        if value is None:
            obj["visit"].pop(key, None)
        else:
            obj["visit"][key] = value

    decoded, problems = decode_item(obj)

    assert _fields(problems) == set()
    assert _warned(problems) == (warned or {"visit.latitude/longitude"})
    assert {column: decoded[column] for column in fixed} == fixed


@pytest.mark.parametrize(
    ("changes", "uncertain"),
    [
        ({"uncertainActivityType": True}, False),  # a confirmed type is certain
        (
            {"uncertainActivityType": False, "classifiedActivityType": None,
             "confirmedActivityType": None},
            True,
        ),  # no type at all: uncertain
    ],
)  # fmt: skip
def test_given_a_trip_breaking_the_apps_rules_when_decoded_then_it_is_set_right_with_a_warning(
    changes: dict[str, Any], uncertain: bool
) -> None:
    obj = encode_item(trip_row())
    for key, value in changes.items():
        if value is None:
            obj["trip"].pop(key)
        else:
            obj["trip"][key] = value

    decoded, problems = decode_item(obj)

    assert _fields(problems) == set()
    assert _warned(problems) == {"trip.uncertainActivityType"}
    assert decoded["uncertain_activity_type"] is uncertain


def test_given_a_part_naming_another_item_when_decoded_then_it_is_refused() -> None:
    """`visit.itemId` is the base's id (the apps' foreign key); another id is an error."""
    obj = encode_item(visit_row())
    obj["visit"]["itemId"] = OTHER_ID

    _, problems = decode_item(obj)

    assert _fields(problems) == {"visit.itemId"}


def test_given_keys_ferry_has_no_column_for_when_decoded_then_they_are_counted() -> None:
    """The third value of the importer's decoders counts them, cheaply; `unknown_keys`
    names them."""
    place = {**encode_place(place_row()), "rtreeId": 4, "category": "cafe"}
    item = encode_item(trip_row())
    item["base"]["futureFlag"] = True
    item["trip"]["arcOnly"] = 1
    item["place"] = {}
    sample = {**encode_sample(sample_row()), "rtreeId": None, "heartRate": None}

    assert decode_place_row(place)[2] == 2
    assert decode_item_row(item)[2] == 3
    assert decode_sample_row(sample)[2] == 1  # a known key that is null is not counted
    assert decode_item_row(encode_item(visit_row()))[2] == 0
    assert unknown_keys("items", item) == ["place", "base.futureFlag", "trip.arcOnly"]
    assert unknown_keys("places", place) == ["rtreeId", "category"]


# --- the fast path: a block of samples decoded whole ----------------------------------------


def _block(*records: Any) -> bytes:
    return json.dumps(list(records)).encode()


def _slow_rows(records: list[Any], file_no: int, start: int) -> list[tuple[Any, ...]]:
    """What the record-by-record decoder stores for records it takes without a word."""
    out = []
    for index, record in enumerate(records, start):
        row, problems, unknown = decode_sample_row(record, SAVED)
        assert problems is None and unknown == 0
        out.append((file_no, index, *row))
    return out


def _same_ids(rows: list[tuple[Any, ...]] | None) -> list[tuple[Any, ...]]:
    """Rows with UUIDs lower-cased: staging stores a uuid, so the case is not kept."""
    assert rows is not None
    return [tuple(v.lower() if isinstance(v, str) and len(v) == 36 else v for v in r) for r in rows]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"date": "2024-01-02T05:04:05.5+02:00", "lastSaved": "2024-01-02T03:04:05.123456Z"},
        {"date": 735_000_000.25, "lastSaved": 1_700_000_000},  # Apple and Unix seconds
        {"date": "2024-01-02T03:04:05.5", "lastSaved": "2024-01-02T03:04:05.500000000Z"},
        {"date": "2024-01-02T03:04:05.5z"},
        {"latitude": 90, "longitude": -180, "altitude": 3},  # ints where floats go
        {"timelineItemId": None, "heartRate": None, "secondsFromGMT": None},
        {"id": "11111111-2222-4333-8444-55555555555A", "source": "Arc \u2014 \u6771\u4eac"},
        {"classifiedActivityType": -1, "confirmedActivityType": 61, "movingState": 1},
    ],
    ids=[
        "as-exported",
        "offset-and-micros",
        "numeric-dates",
        "naive-and-nanos",
        "lower-z",
        "integer-floats",
        "nulls",
        "upper-id-and-unicode",
        "choice-edges",
    ],
)
def test_given_valid_samples_when_decoded_as_a_block_then_the_rows_of_the_record_decoder(
    changes: dict[str, Any],
) -> None:
    """Given samples the record decoder takes without a problem, When a block of them is
    decoded whole, Then the same staging rows, value for value (UUIDs aside: staging keeps
    a uuid), with the archive positions."""
    records = [
        {**encode_sample(sample_row()), **changes},
        encode_sample(sample_row(id=OTHER_ID, heart_rate=None)),
    ]

    block = fast_sample_rows(_block(*records), 4, 1_000)

    assert block is not None and block.unknown == 0
    rows = block.rows
    assert _same_ids(rows) == _same_ids(_slow_rows(records, 4, 1_000))
    assert [type(v) for v in rows[0]] == [type(v) for v in _slow_rows(records, 4, 1_000)[0]]


@pytest.mark.parametrize(
    "changes",
    [
        {"source": None},  # a default with a warning
        {"movingState": None},
        {"disabled": None},
        {"lastSaved": None},
        {"category": "walk"},  # a key Ferry has no column for
        {"secondsFromGMT": 3600.0},  # an integral float: taken, but by the record decoder
        {"secondsFromGMT": 2**31},
        {"id": "11111111-2222-4333-8444-55555555555"},
        {"id": "11111111-2222-4333-8444-555555555555\n"},
        {"timelineItemId": "not-a-uuid"},
        {"source": "Loco\x00Kit"},
        {"latitude": 90.5},
        {"longitude": -180.01},
        {"movingState": 2},
        {"recordingState": -1},
        {"classifiedActivityType": 7},
        {"confirmedActivityType": True},
        {"disabled": 0},
        {"date": "yesterday"},
        {"date": "2024-06-31T00:00:00Z"},
        {"date": True},
        {"heartRate": "71"},
        {"speed": 1e400},
    ],
)
def test_given_a_sample_the_record_decoder_reports_or_changes_when_in_a_block_then_none(
    changes: dict[str, Any],
) -> None:
    """Given a block with one sample that the record decoder would refuse, warn about,
    default or count an unknown key of, When decoded whole, Then None: the block goes
    record by record, so the report is the record decoder's."""
    good = encode_sample(sample_row())
    odd = {key: value for key, value in {**good, **changes}.items() if value is not None}
    if any(value is None for value in changes.values()):
        odd = {**good, **changes}
    block = json.dumps([good, odd, good], allow_nan=True).encode().replace(b"Infinity", b"1e400")

    assert fast_sample_rows(block, 0, 0) is None


@pytest.mark.parametrize("missing", ["source", "sourceVersion", "movingState", "lastSaved"])
def test_given_a_sample_missing_a_key_with_a_default_when_in_a_block_then_none(
    missing: str,
) -> None:
    """Given a sample without a key the Arc apps default (a warning), When decoded in a
    block, Then None: the record decoder sets the default and writes the warning."""
    record = encode_sample(sample_row())
    del record[missing]

    assert fast_sample_rows(_block(encode_sample(sample_row()), record), 0, 0) is None


@pytest.mark.parametrize("block", [b"[1]", b'[{"id": 1}', b"[[]]", b"{}", b"[null]"])
def test_given_a_block_that_is_not_an_array_of_sample_objects_then_none(block: bytes) -> None:
    """Given a block that is not a JSON array of objects, When decoded whole, Then None."""
    assert fast_sample_rows(block, 0, 0) is None


def test_given_an_empty_block_when_decoded_then_no_rows() -> None:
    block = fast_sample_rows(b"[]", 0, 0)
    assert block is not None and block.rows == [] and block.unknown == 0


def test_given_locokits_extra_sample_keys_when_in_a_block_then_counted_as_the_decoder_does() -> (
    None
):
    """Given samples carrying LocoKit2's rtreeId and hasLocation (some, all or none of
    them, null too), When decoded in a block, Then the rows of the record decoder, and the
    same unknown keys: counted per record, named in order."""
    plain = encode_sample(sample_row())
    records = [
        {**plain, "rtreeId": 7, "hasLocation": True},
        plain,
        {**plain, "hasLocation": None},
        {**plain, "rtreeId": {"nested": [1, 2]}},
    ]

    block = fast_sample_rows(_block(*records), 0, 0)

    assert block is not None
    expected = [decode_sample_row(r, SAVED) for r in records]
    assert _same_ids(block.rows) == _same_ids(
        [(0, i, *row) for i, (row, _, _) in enumerate(expected)]
    )
    assert all(problems is None for _, problems, _ in expected)
    assert block.unknown == sum(unknown for _, _, unknown in expected) == 4
    assert list(block.unknown_keys()) == [
        keys for r in records if (keys := unknown_keys("samples", r))
    ]
