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


# LocoKit2's `ActivityType` enum (ActivityTypes/ActivityType.swift at 68c0a86): the only
# values the Arc apps decode. -1 unknown, 0 bogus; 1 stationary, 2 walking, 3 running,
# 4 cycling, 5 car, 6 airplane; 20 train, 21 bus, 22 motorcycle, 23 boat, 24 tram,
# 25 tractor, 26 tuktuk, 27 songthaew, 28 scooter, 29 metro, 30 cableCar, 31 funicular,
# 32 chairlift, 33 skiLift, 34 taxi, 35 hotAirBalloon; 50 skateboarding, 51 inlineSkating,
# 52 snowboarding, 53 skiing, 54 horseback, 55 swimming, 56 golf, 57 wheelchair,
# 58 rowing, 59 kayaking, 60 surfing, 61 hiking.
ACTIVITY_TYPES: frozenset[int] = frozenset((-1, 0, *range(1, 7), *range(20, 36), *range(50, 62)))


class Now:
    """The default of a `lastSaved`: the time of writing (Swift's `Date = .now`).

    An import uses its own start time for places, items and samples, and an item's
    `lastSaved` for its visit or trip part (the app saves them together).
    """

    def __repr__(self) -> str:
        return "NOW"


NOW = Now()


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a record: archive key, column, kind and the rules it must keep.

    `required`: a record without it is refused (Ferry cannot make one up). `default`: the
    Arc apps cannot decode a record without it, so the column is NOT NULL (for visit and
    trip parts: whenever the item is one) and an import fills a missing key with this
    value, with a warning. `choices`: the only values the apps decode (an enum).
    """

    key: str
    column: str
    kind: Kind
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    nonempty: bool = False
    default: bool | int | float | str | Now | None = None
    choices: frozenset[int] | None = None

    @property
    def always(self) -> bool:
        """Whether every record carries a value (required, or defaulted when missing)."""
        return self.required or self.default is not None


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one field of one record was refused, or (`warning`) what an import changed."""

    field: str
    reason: str
    warning: bool = False


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
# LocomotionManager.locoKitVersion at 68c0a86: the default `sourceVersion`.
LOCOKIT_VERSION = "9.0.0"
LOCOKIT = "LocoKit2"

# The defaults are the Swift properties' initial values (Models/Place.swift,
# TimelineItemBase.swift, TimelineItemVisit.swift, TimelineItemTrip.swift,
# LocomotionSample.swift). Where Swift has none, the app's own importer of old LocoKit
# data chooses: visit radius 50/10 m (TimelineItem+Legacy.swift), trip distance and speed
# 0 (a trip of no samples), movingState uncertain and recordingState off
# (LocomotionSample+Legacy.swift). docs/design.md lists them.
PLACE_FIELDS: tuple[Field, ...] = (
    _f("id", "id", U, required=True),
    _f("name", "name", T, required=True, nonempty=True),
    _f("streetAddress", "street_address", T),
    _f("locality", "locality", T),
    _f("countryCode", "country_code", T),
    _f("secondsFromGMT", "seconds_from_gmt", N),
    _f("latitude", "latitude", F, required=True, minimum=-90, maximum=90),
    _f("longitude", "longitude", F, required=True, minimum=-180, maximum=180),
    _f("radiusMean", "radius_mean", F, default=60.0),
    _f("radiusSD", "radius_sd", F, default=0.0),
    _f("isStale", "is_stale", B, default=True),
    _f("visitCount", "visit_count", N, default=0),
    _f("visitDays", "visit_days", N, default=0),
    _f("lastVisitDate", "last_visit_date", D),
    _f("mapboxPlaceId", "mapbox_place_id", T),
    _f("mapboxCategory", "mapbox_category", T),
    _f("mapboxMakiIcon", "mapbox_maki_icon", T),
    _f("googlePlaceId", "google_place_id", T),
    _f("googlePrimaryType", "google_primary_type", T),
    _f("foursquarePlaceId", "foursquare_place_id", T),
    _f("foursquareCategoryId", "foursquare_category_id", N),
    _f("foursquareCategoryV2Id", "foursquare_category_v2_id", T),
    _f("userCategory", "user_category", T),
    _f("source", "source", T, default=LOCOKIT),
    _f("lastSaved", "last_saved", D, default=NOW),
)

ITEM_BASE_FIELDS: tuple[Field, ...] = (
    _f("id", "id", U, required=True),
    _f("isVisit", "is_visit", B, required=True),
    _f("startDate", "start_date", D, required=True),
    _f("endDate", "end_date", D, required=True),
    _f("source", "source", T, default=LOCOKIT),
    _f("sourceVersion", "source_version", T, default=LOCOKIT_VERSION),
    _f("disabled", "disabled", B, default=False),
    _f("deleted", "deleted", B, default=False),
    _f("locked", "locked", B, default=False),
    _f("samplesChanged", "samples_changed", B, default=False),
    _f("lastSaved", "last_saved", D, default=NOW),
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

# The visit and trip parts also carry `itemId` (the base's id, never stored apart).
VISIT_FIELDS: tuple[Field, ...] = (
    _f("latitude", "latitude", F, minimum=-90, maximum=90),
    _f("longitude", "longitude", F, minimum=-180, maximum=180),
    _f("radiusMean", "radius_mean", F, default=50.0),
    _f("radiusSD", "radius_sd", F, default=10.0),
    _f("placeId", "place_id", U),
    _f("confirmedPlace", "confirmed_place", B, default=False),
    _f("uncertainPlace", "uncertain_place", B, default=True),
    _f("customTitle", "custom_title", T),
    _f("streetAddress", "street_address", T),
    _f("locality", "locality", T),
    _f("countryCode", "country_code", T),
    _f("lastSaved", "visit_last_saved", D, default=NOW),
)

TRIP_FIELDS: tuple[Field, ...] = (
    _f("distance", "distance", F, default=0.0),
    _f("speed", "speed", F, default=0.0),
    _f("classifiedActivityType", "classified_activity_type", N, choices=ACTIVITY_TYPES),
    _f("confirmedActivityType", "confirmed_activity_type", N, choices=ACTIVITY_TYPES),
    _f("uncertainActivityType", "uncertain_activity_type", B, default=True),
    _f("lastSaved", "trip_last_saved", D, default=NOW),
)

SAMPLE_FIELDS: tuple[Field, ...] = (
    _f("id", "id", U, required=True),
    _f("date", "date", D, required=True),
    _f("secondsFromGMT", "seconds_from_gmt", N),
    _f("source", "source", T, default=LOCOKIT),
    _f("sourceVersion", "source_version", T, default=LOCOKIT_VERSION),
    _f("movingState", "moving_state", S, minimum=-1, maximum=1, default=-1),
    _f("recordingState", "recording_state", S, minimum=0, maximum=5, default=0),
    _f("disabled", "disabled", B, default=False),
    _f("lastSaved", "last_saved", D, default=NOW),
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
    _f("classifiedActivityType", "classified_activity_type", N, choices=ACTIVITY_TYPES),
    _f("confirmedActivityType", "confirmed_activity_type", N, choices=ACTIVITY_TYPES),
)

# Columns of timeline_items in table order: base, then visit-only, then trip-only.
ITEM_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(f.column for f in ITEM_BASE_FIELDS + VISIT_FIELDS + TRIP_FIELDS)
)
PLACE_COLUMNS: tuple[str, ...] = tuple(f.column for f in PLACE_FIELDS)
SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.column for f in SAMPLE_FIELDS)
