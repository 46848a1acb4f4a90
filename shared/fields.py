"""The three record kinds as field tables: one statement drives the schema, the archive
codecs, the export SQL and the table formats.

Each `Field` ties an archive key (camelCase, SPEC 4) to a column (snake_case, SPEC 3) and
a kind. Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
