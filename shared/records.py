"""The three record kinds: one field table drives the schema, the export SQL and the codecs.

Each `Field` ties an archive key (camelCase, SPEC 4) to a column (snake_case, SPEC 3) and
a kind. `encode_*` turns a database row into an archive object (nulls omitted);
`decode_*` turns an archive object into column values and a list of problems.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.timefmt import decode_date, format_iso


class Kind(StrEnum):
    """How a field is stored and written."""

    UUID = "uuid"
    TEXT = "text"
    INT = "int"
    SMALLINT = "smallint"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a record: archive key, column, kind and the rules it must keep."""

    key: str
    column: str
    kind: Kind
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    nonempty: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one field of one record was refused."""

    field: str
    reason: str


def _f(key: str, column: str, kind: Kind, **rules: Any) -> Field:
    return Field(key, column, kind, **rules)


U, T, N, S, F, B, D = (
    Kind.UUID,
    Kind.TEXT,
    Kind.INT,
    Kind.SMALLINT,
    Kind.FLOAT,
    Kind.BOOL,
    Kind.DATE,
)

PLACE_FIELDS: tuple[Field, ...] = (
    _f("id", "id", U, required=True),
    _f("name", "name", T, required=True, nonempty=True),
    _f("streetAddress", "street_address", T),
    _f("locality", "locality", T),
    _f("countryCode", "country_code", T),
    _f("secondsFromGMT", "seconds_from_gmt", N),
    _f("latitude", "latitude", F, required=True, minimum=-90, maximum=90),
    _f("longitude", "longitude", F, required=True, minimum=-180, maximum=180),
    _f("radiusMean", "radius_mean", F),
    _f("radiusSD", "radius_sd", F),
    _f("isStale", "is_stale", B),
    _f("visitCount", "visit_count", N),
    _f("visitDays", "visit_days", N),
    _f("lastVisitDate", "last_visit_date", D),
    _f("mapboxPlaceId", "mapbox_place_id", T),
    _f("mapboxCategory", "mapbox_category", T),
    _f("mapboxMakiIcon", "mapbox_maki_icon", T),
    _f("googlePlaceId", "google_place_id", T),
    _f("googlePrimaryType", "google_primary_type", T),
    _f("foursquarePlaceId", "foursquare_place_id", T),
    _f("foursquareCategoryId", "foursquare_category_id", N),
    _f("userCategory", "user_category", T),
    _f("source", "source", T),
    _f("lastSaved", "last_saved", D, required=True),
)

ITEM_BASE_FIELDS: tuple[Field, ...] = (
    _f("id", "id", U, required=True),
    _f("isVisit", "is_visit", B, required=True),
    _f("startDate", "start_date", D, required=True),
    _f("endDate", "end_date", D, required=True),
    _f("source", "source", T),
    _f("sourceVersion", "source_version", T),
    _f("disabled", "disabled", B),
    _f("deleted", "deleted", B),
    _f("locked", "locked", B),
    _f("lastSaved", "last_saved", D),
    _f("previousItemId", "previous_item_id", U),
    _f("nextItemId", "next_item_id", U),
    _f("stepCount", "step_count", N),
    _f("floorsAscended", "floors_ascended", N),
    _f("floorsDescended", "floors_descended", N),
    _f("averageAltitude", "average_altitude", F),
    _f("activeEnergyBurned", "active_energy_burned", F),
    _f("averageHeartRate", "average_heart_rate", F),
    _f("maxHeartRate", "max_heart_rate", F),
)

VISIT_FIELDS: tuple[Field, ...] = (
    _f("latitude", "latitude", F, minimum=-90, maximum=90),
    _f("longitude", "longitude", F, minimum=-180, maximum=180),
    _f("radiusMean", "radius_mean", F),
    _f("radiusSD", "radius_sd", F),
    _f("placeId", "place_id", U),
    _f("confirmedPlace", "confirmed_place", B),
    _f("uncertainPlace", "uncertain_place", B),
    _f("customTitle", "custom_title", T),
    _f("streetAddress", "street_address", T),
    _f("locality", "locality", T),
    _f("countryCode", "country_code", T),
)

TRIP_FIELDS: tuple[Field, ...] = (
    _f("distance", "distance", F),
    _f("speed", "speed", F),
    _f("classifiedActivityType", "classified_activity_type", N),
    _f("confirmedActivityType", "confirmed_activity_type", N),
    _f("uncertainActivityType", "uncertain_activity_type", B),
)

SAMPLE_FIELDS: tuple[Field, ...] = (
    _f("id", "id", U, required=True),
    _f("date", "date", D, required=True),
    _f("secondsFromGMT", "seconds_from_gmt", N),
    _f("source", "source", T),
    _f("sourceVersion", "source_version", T),
    _f("movingState", "moving_state", S, minimum=-1, maximum=1),
    _f("recordingState", "recording_state", S, minimum=0, maximum=5),
    _f("disabled", "disabled", B),
    _f("lastSaved", "last_saved", D),
    _f("timelineItemId", "timeline_item_id", U),
    _f("latitude", "latitude", F, minimum=-90, maximum=90),
    _f("longitude", "longitude", F, minimum=-180, maximum=180),
    _f("altitude", "altitude", F),
    _f("horizontalAccuracy", "horizontal_accuracy", F),
    _f("verticalAccuracy", "vertical_accuracy", F),
    _f("speed", "speed", F),
    _f("course", "course", F),
    _f("stepHz", "step_hz", F),
    _f("xyAcceleration", "xy_acceleration", F),
    _f("zAcceleration", "z_acceleration", F),
    _f("heartRate", "heart_rate", F),
    _f("classifiedActivityType", "classified_activity_type", N),
    _f("confirmedActivityType", "confirmed_activity_type", N),
)

# Columns of timeline_items in table order: base, then visit-only, then trip-only.
ITEM_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(f.column for f in ITEM_BASE_FIELDS + VISIT_FIELDS + TRIP_FIELDS)
)
PLACE_COLUMNS: tuple[str, ...] = tuple(f.column for f in PLACE_FIELDS)
SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.column for f in SAMPLE_FIELDS)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_INT32 = 2**31 - 1


# --- encoding: database values -> archive objects --------------------------------------


def _encode_value(kind: Kind, value: Any) -> Any:
    if kind is Kind.UUID:
        return str(value).upper()
    if kind is Kind.DATE:
        return format_iso(value)
    if kind is Kind.FLOAT:
        return float(value)
    return value


def _encode_fields(fields: tuple[Field, ...], row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        value = row.get(f.column)
        if value is not None:
            out[f.key] = _encode_value(f.kind, value)
    return out


def encode_place(row: Mapping[str, Any]) -> dict[str, Any]:
    """A place row as its archive object."""
    return _encode_fields(PLACE_FIELDS, row)


def encode_sample(row: Mapping[str, Any]) -> dict[str, Any]:
    """A sample row as its archive object."""
    return _encode_fields(SAMPLE_FIELDS, row)


def encode_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """An item row as `{"base": …, "visit": …}` or `{"base": …, "trip": …}`."""
    base = _encode_fields(ITEM_BASE_FIELDS, row)
    is_visit = bool(row["is_visit"])
    detail = _encode_fields(VISIT_FIELDS if is_visit else TRIP_FIELDS, row)
    detail = {"itemId": base["id"], **detail}
    if row.get("last_saved") is not None:
        detail["lastSaved"] = format_iso(row["last_saved"])
    return {"base": base, "visit" if is_visit else "trip": detail}


# --- decoding: archive objects -> database values -----------------------------------------


def _decode_uuid(value: Any) -> str:
    if not isinstance(value, str) or not _UUID.match(value):
        raise ValueError("not a UUID")
    return value.lower()


def _decode_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


def _decode_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError("not an integer")
    if not -_INT32 - 1 <= value <= _INT32:
        raise ValueError("out of range for a 32-bit integer")
    return value


def _decode_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("not a finite number")
    return result


def _decode_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("not a boolean")
    return value


def _decode_date(value: Any) -> datetime:
    try:
        return decode_date(value)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a date ({exc})") from None


_DECODERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.UUID: _decode_uuid,
    Kind.TEXT: _decode_text,
    Kind.INT: _decode_int,
    Kind.SMALLINT: _decode_int,
    Kind.FLOAT: _decode_float,
    Kind.BOOL: _decode_bool,
    Kind.DATE: _decode_date,
}


def _decode_fields(
    fields: tuple[Field, ...],
    obj: Mapping[str, Any],
    out: dict[str, Any],
    problems: list[Problem],
    prefix: str = "",
) -> None:
    for f in fields:
        raw = obj.get(f.key)
        if raw is None:
            if f.required:
                problems.append(Problem(prefix + f.key, "is required"))
            out[f.column] = None
            continue
        try:
            value = _DECODERS[f.kind](raw)
        except ValueError as exc:
            problems.append(Problem(prefix + f.key, str(exc)))
            out[f.column] = None
            continue
        if f.nonempty and value == "":
            problems.append(Problem(prefix + f.key, "must not be empty"))
        if f.minimum is not None and value < f.minimum:
            problems.append(Problem(prefix + f.key, f"must be at least {f.minimum:g}"))
        elif f.maximum is not None and value > f.maximum:
            problems.append(Problem(prefix + f.key, f"must be at most {f.maximum:g}"))
        out[f.column] = value


def decode_place(obj: Any) -> tuple[dict[str, Any], list[Problem]]:
    """An archive place object as column values, with the problems found."""
    if not isinstance(obj, dict):
        return {}, [Problem("", "not a JSON object")]
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    _decode_fields(PLACE_FIELDS, obj, out, problems)
    return out, problems


def decode_sample(obj: Any) -> tuple[dict[str, Any], list[Problem]]:
    """An archive sample object as column values, with the problems found."""
    if not isinstance(obj, dict):
        return {}, [Problem("", "not a JSON object")]
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    _decode_fields(SAMPLE_FIELDS, obj, out, problems)
    return out, problems


def decode_item(obj: Any) -> tuple[dict[str, Any], list[Problem]]:
    """An archive item object (`base` plus `visit` or `trip`) as column values."""
    if not isinstance(obj, dict) or not isinstance(obj.get("base"), dict):
        return {}, [Problem("base", "is required and must be an object")]
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    _decode_fields(ITEM_BASE_FIELDS, obj["base"], out, problems, "base.")
    is_visit = out.get("is_visit")
    visit, trip = obj.get("visit"), obj.get("trip")
    if visit is not None and trip is not None:
        problems.append(Problem("visit", "an item has a visit or a trip, not both"))
    if is_visit is True and trip is not None:
        problems.append(Problem("trip", "isVisit is true but the item has a trip"))
    if is_visit is False and visit is not None:
        problems.append(Problem("visit", "isVisit is false but the item has a visit"))
    for name, fields, detail in (("visit", VISIT_FIELDS, visit), ("trip", TRIP_FIELDS, trip)):
        if detail is None:
            for f in fields:
                out.setdefault(f.column, None)
        elif not isinstance(detail, dict):
            problems.append(Problem(name, "must be an object"))
        else:
            _decode_fields(fields, detail, out, problems, name + ".")
    start, end = out.get("start_date"), out.get("end_date")
    if start is not None and end is not None and end < start:
        problems.append(Problem("base.endDate", "is before startDate"))
    return out, problems
