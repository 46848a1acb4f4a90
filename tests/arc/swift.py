"""What LocoKit2's structs decode, and how Swift's JSONDecoder reads a JSON value.

Read from LocoKit2 at 68c0a86. Every struct is decoded with
`JSONDecoder.flexibleDateDecoder()` (Extensions/JSONEncoderDecoder+LocoKit.swift); the
rules below are the ones that decoder and Swift's Codable apply:

- a non-optional property is read with `decode`: a missing key or a JSON null fails the
  record (keyNotFound / valueNotFound), whatever default the Swift property has;
- an optional one with `decodeIfPresent`: missing or null is nil, anything else must
  decode;
- `String` only from a JSON string, `Bool` only from true/false;
- `Int`/`Int64` from a JSON number that is exactly an integer in range (12 and 12.0 pass,
  12.5 does not: "Parsed JSON number does not fit");
- `Double` from any JSON number that is finite (JSON has no NaN or infinity; a number too
  large for a Double is "not representable");
- `Date`: a string must be an RFC 3339 internet date-time, with or without fractional
  seconds (ISO8601DateFormatter [.withInternetDateTime(, .withFractionalSeconds)]), and
  is never read as a number; a number is seconds since 2001-01-01 below 978307200, Unix
  seconds from there on;
- an enum (Int raw values: MovingState, RecordingState, ActivityType; String raw values:
  ExportMode, ExportType) must hold one of its raw values (dataCorrupted otherwise);
- keys the struct does not know are ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

APPLE_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT64 = (-(2**63), 2**63 - 1)

# ActivityTypes/ActivityType.swift
ACTIVITY_NAMES: dict[int, str] = {
        -1: "unknown", 0: "bogus",
        1: "stationary", 2: "walking", 3: "running", 4: "cycling", 5: "car", 6: "airplane",
        20: "train", 21: "bus", 22: "motorcycle", 23: "boat", 24: "tram", 25: "tractor",
        26: "tuktuk", 27: "songthaew", 28: "scooter", 29: "metro", 30: "cableCar",
        31: "funicular", 32: "chairlift", 33: "skiLift", 34: "taxi", 35: "hotAirBalloon",
        50: "skateboarding", 51: "inlineSkating", 52: "snowboarding", 53: "skiing",
        54: "horseback", 55: "swimming", 56: "golf", 57: "wheelchair", 58: "rowing",
        59: "kayaking", 60: "surfing", 61: "hiking",
}  # fmt: skip
ACTIVITY_TYPE = frozenset(ACTIVITY_NAMES)
# Models/MovingState.swift, Models/RecordingState.swift
MOVING_STATE = frozenset({-1, 0, 1})  # uncertain, stationary, moving
RECORDING_STATE = frozenset(range(6))  # off, recording, sleeping, deepSleeping, wakeup, standby
# ImportExport/ExportMetadata.swift
EXPORT_MODE = frozenset({"bucketed", "singleFile"})
EXPORT_TYPE = frozenset({"full", "incremental"})

STRING, BOOL, INT, INT_64, DOUBLE, DATE = "String", "Bool", "Int", "Int64", "Double", "Date"


@dataclass(frozen=True)
class Prop:
    """One decoded property: its key, Swift type (or enum raw values) and whether
    `decode` (required) or `decodeIfPresent` reads it."""

    key: str
    type: str | frozenset[Any]
    required: bool


def _props(spec: str, **enums: frozenset[Any]) -> tuple[Prop, ...]:
    """`key:Type` (required) or `key:Type?` (optional), one per line; enums by name."""
    out = []
    for line in spec.split():
        key, kind = line.split(":")
        optional = kind.endswith("?")
        name = kind.rstrip("?")
        out.append(Prop(key, enums.get(name, name), not optional))
    return tuple(out)


# Models/Place.swift, `init(from decoder:)`: source is decodeIfPresent ?? "LocoKit2",
# visitCount and visitDays decodeIfPresent ?? 0; `category` is written but never read.
PLACE = _props(
    """
    id:String lastSaved:Date source:String? latitude:Double longitude:Double
    radiusMean:Double radiusSD:Double secondsFromGMT:Int? name:String streetAddress:String?
    countryCode:String? locality:String? isStale:Bool rtreeId:Int64? mapboxPlaceId:String?
    mapboxCategory:String? mapboxMakiIcon:String? googlePlaceId:String?
    googlePrimaryType:String? foursquarePlaceId:String? foursquareCategoryId:Int?
    foursquareCategoryV2Id:String? userCategory:String? visitCount:Int? visitDays:Int?
    lastVisitDate:Date?
    """
)
# Models/TimelineItem/TimelineItemBase.swift: synthesized Codable (every stored property;
# a default value does not make a key optional, only `?` does).
BASE = _props(
    """
    id:String lastSaved:Date isVisit:Bool startDate:Date? endDate:Date? source:String
    sourceVersion:String disabled:Bool deleted:Bool locked:Bool samplesChanged:Bool
    stepCount:Int? floorsAscended:Int? floorsDescended:Int? averageAltitude:Double?
    activeEnergyBurned:Double? averageHeartRate:Double? maxHeartRate:Double?
    previousItemId:String? nextItemId:String?
    """
)
# Models/TimelineItem/TimelineItemVisit.swift: synthesized.
VISIT = _props(
    """
    itemId:String lastSaved:Date latitude:Double? longitude:Double? radiusMean:Double
    radiusSD:Double placeId:String? confirmedPlace:Bool uncertainPlace:Bool
    customTitle:String? streetAddress:String? locality:String? countryCode:String?
    """
)
# Models/TimelineItem/TimelineItemTrip.swift: synthesized.
TRIP = _props(
    """
    itemId:String lastSaved:Date distance:Double speed:Double
    classifiedActivityType:ActivityType? confirmedActivityType:ActivityType?
    uncertainActivityType:Bool
    """,
    ActivityType=ACTIVITY_TYPE,
)
# Models/LocomotionSample.swift, `init(from decoder:)` (rtreeId is in CodingKeys but not
# decoded).
SAMPLE = _props(
    """
    id:String lastSaved:Date date:Date secondsFromGMT:Int? source:String
    sourceVersion:String movingState:MovingState recordingState:RecordingState
    disabled:Bool timelineItemId:String? latitude:Double? longitude:Double?
    altitude:Double? horizontalAccuracy:Double? verticalAccuracy:Double? speed:Double?
    course:Double? classifiedActivityType:ActivityType? confirmedActivityType:ActivityType?
    stepHz:Double? xyAcceleration:Double? zAcceleration:Double? heartRate:Double?
    """,
    MovingState=MOVING_STATE,
    RecordingState=RECORDING_STATE,
    ActivityType=ACTIVITY_TYPE,
)
# ImportExport/ExportMetadata.swift: synthesized; stats and extensions are nested structs.
METADATA = _props(
    """
    exportId:String? schemaVersion:String exportMode:ExportMode exportType:ExportType
    sessionStartDate:Date sessionFinishDate:Date? itemsCompleted:Bool placesCompleted:Bool
    samplesCompleted:Bool lastBackupDate:Date? backupProgressDate:Date?
    """,
    ExportMode=EXPORT_MODE,
    ExportType=EXPORT_TYPE,
)
STATS = _props("placeCount:Int itemCount:Int sampleCount:Int")
EXTENSION_STATE = _props("recordCount:Int")

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


class JSONObject(dict[str, Any]):
    """A parsed JSON object that remembers keys it held twice."""

    repeated: tuple[str, ...] = ()


def object_pairs(pairs: list[tuple[str, Any]]) -> JSONObject:
    """`object_pairs_hook` for json.loads: keep repeats visible (Swift keeps one silently)."""
    obj = JSONObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated = []
        for key, _ in pairs:
            if key in seen:
                repeated.append(key)
            seen.add(key)
        obj.repeated = tuple(repeated)
    return obj


def refuse_constant(name: str) -> Any:
    """`parse_constant` for json.loads: NaN and Infinity are not JSON (Swift refuses them)."""
    raise ValueError(f"{name} is not valid JSON")


def _integer(value: Any, low: int, high: int) -> int:
    if type(value) is int:
        number = value
    elif type(value) is float and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif type(value) is float:
        raise ValueError(f"the number {value!r} does not fit an integer")
    else:
        raise ValueError(f"expected a number, found {_json_type(value)}")
    if not low <= number <= high:
        raise ValueError(f"the number {value!r} does not fit an integer")
    return number


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) in (int, float):
        return "a number"
    if type(value) is str:
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def decode_date(value: Any) -> datetime:
    """The flexible date decoder: an RFC 3339 string, or a number in one of two epochs."""
    if type(value) is str:
        match = _RFC3339.match(value)
        if match is None:
            raise ValueError(f"invalid ISO8601 date string {value!r}")
        year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
        fraction = match[7] or ""
        zone = match[8]
        if zone == "Z":
            tz = UTC
        else:
            sign = 1 if zone[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
        except ValueError:
            raise ValueError(f"invalid ISO8601 date string {value!r}") from None
        micros = int((fraction + "000000")[:6]) if fraction else 0
        return (moment + timedelta(microseconds=micros)).astimezone(UTC)
    if type(value) in (int, float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"the number {value!r} is not representable")
        base = APPLE_EPOCH if seconds < 978_307_200 else UNIX_EPOCH
        return base + timedelta(seconds=seconds)
    raise ValueError(f"expected a date string or number, found {_json_type(value)}")


def decode_value(kind: str | frozenset[Any], value: Any) -> Any:
    """One present, non-null JSON value as Swift decodes it; ValueError with the reason."""
    if isinstance(kind, frozenset):
        if isinstance(next(iter(kind)), str):
            if type(value) is not str:
                raise ValueError(f"expected a string, found {_json_type(value)}")
            raw: Any = value
        else:
            raw = _integer(value, *INT64)
        if raw not in kind:
            raise ValueError(f"{value!r} is not a raw value of the enum")
        return raw
    if kind == STRING:
        if type(value) is not str:
            raise ValueError(f"expected a string, found {_json_type(value)}")
        return value
    if kind == BOOL:
        if type(value) is not bool:
            raise ValueError(f"expected a boolean, found {_json_type(value)}")
        return value
    if kind in (INT, INT_64):
        return _integer(value, *INT64)
    if kind == DOUBLE:
        if type(value) not in (int, float):
            raise ValueError(f"expected a number, found {_json_type(value)}")
        try:
            number = float(value)
        except OverflowError:
            raise ValueError(f"the number {value!r} is not representable") from None
        if not math.isfinite(number):
            raise ValueError(f"the number {value!r} is not representable")
        return number
    if kind == DATE:
        return decode_date(value)
    raise AssertionError(kind)


def decode_struct(
    props: tuple[Prop, ...], obj: Any, where: str
) -> tuple[dict[str, Any], list[str]]:
    """A struct's decoded properties (absent optionals left out) and every reason it fails."""
    if not isinstance(obj, dict):
        return {}, [f"{where}: expected an object, found {_json_type(obj)}"]
    out: dict[str, Any] = {}
    reasons = []
    for key in getattr(obj, "repeated", ()):
        reasons.append(f"{where}{key}: the key appears twice")
    for prop in props:
        value = obj.get(prop.key)
        if value is None:
            if prop.required:
                state = "null" if prop.key in obj else "missing"
                reasons.append(f"{where}{prop.key}: required ({prop.type}) but {state}")
            continue
        try:
            out[prop.key] = decode_value(prop.type, value)
        except ValueError as exc:
            reasons.append(f"{where}{prop.key}: {exc}")
    return out, reasons
