"""Archives as the Arc apps write them, from LocoKit2's ExportManager.swift (68c0a86).

- The folder is `export-yyyy-MM-dd-HHmmss`, named by a DateFormatter in the phone's time
  zone (a full export); an incremental backup writes into its backup folder itself.
- `places/X.json`: X is the first character of the place id, upper-cased.
- `items/yyyy-MM.json`: the month of the item's startDate **in the phone's time zone**
  (DateFormatter without a time zone); items without a startDate are not written; each
  file holds the month's items by startDate.
- `samples/YYYY-Www.json.gz`: weeks of a Gregorian calendar in UTC with Monday first and
  the locale's minimum days in the first week (4 where weeks are ISO 8601 ones, 1 for
  en_US), named `%4d-W%02d` from yearForWeekOfYear and weekOfYear; gzip as
  `Data.gzipCompressed()` makes it: a fixed 10-byte header, raw deflate, CRC-32, size.
- JSON from `JSONEncoder.iso8601Encoder()`: `.prettyPrinted` (two-space indent,
  `"key" : value`), `/` escaped, dates as ISO 8601 in UTC to the whole second, nil
  optionals left out, keys in the order the structs encode them.
- An incremental backup rewrites only the buckets holding a record saved since the last
  backup (`lastSaved > lastBackupDate`, up to the session start): all of that bucket's
  records as they are now. An item whose start moved to another month is then in its
  new month's file while its old copy stays in the old month's file.
- metadata.json is ExportMetadata: exportId, schemaVersion 2.4.0, exportMode, exportType,
  session dates, the three completed flags, stats, lastBackupDate, appMetadata.

Records are given as the apps hold them: property name -> value (datetime for dates).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "2.4.0"


def _keys(text: str) -> list[str]:
    return text.split()


# Encoding order of each struct (Place's custom encode(to:), the others' CodingKeys).
PLACE_KEYS = _keys(
    "id lastSaved source latitude longitude radiusMean radiusSD secondsFromGMT name "
    "streetAddress countryCode locality isStale rtreeId mapboxPlaceId mapboxCategory "
    "mapboxMakiIcon googlePlaceId googlePrimaryType foursquarePlaceId "
    "foursquareCategoryId foursquareCategoryV2Id userCategory category visitCount "
    "visitDays lastVisitDate"
)
BASE_KEYS = _keys(
    "id lastSaved isVisit startDate endDate source sourceVersion disabled deleted "
    "locked samplesChanged stepCount floorsAscended floorsDescended averageAltitude "
    "activeEnergyBurned averageHeartRate maxHeartRate previousItemId nextItemId"
)
VISIT_KEYS = _keys(
    "itemId lastSaved latitude longitude radiusMean radiusSD placeId confirmedPlace "
    "uncertainPlace customTitle streetAddress locality countryCode"
)
TRIP_KEYS = _keys(
    "itemId lastSaved distance speed classifiedActivityType confirmedActivityType "
    "uncertainActivityType"
)
SAMPLE_KEYS = _keys(
    "id lastSaved date secondsFromGMT source sourceVersion movingState recordingState "
    "disabled timelineItemId latitude longitude altitude horizontalAccuracy "
    "verticalAccuracy speed course classifiedActivityType confirmedActivityType "
    "stepHz xyAcceleration zAcceleration heartRate rtreeId"
)
METADATA_KEYS = _keys(
    "exportId schemaVersion exportMode exportType sessionStartDate sessionFinishDate "
    "itemsCompleted placesCompleted samplesCompleted stats lastBackupDate "
    "backupProgressDate extensions appMetadata"
)


@dataclass
class AppTimeline:
    """Places, items (`{"base", "visit"|"trip"}`) and samples as the apps hold them."""

    places: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


# --- JSONEncoder.iso8601Encoder() ------------------------------------------------------------


def _date(value: datetime) -> str:
    # ISO8601DateFormatter's default options: internet date-time, no fraction.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text  # Swift writes 12.0 as 12
    if isinstance(value, datetime):
        return json.dumps(_date(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("/", "\\/")
    raise TypeError(value)


def pretty(value: Any, indent: str = "") -> str:
    """`.prettyPrinted` output: two spaces per level, `"key" : value`."""
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{\n\n" + indent + "}"
        pairs = [f"{inner}{_scalar(k)} : {pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(pairs) + "\n" + indent + "}"
    if isinstance(value, list):
        if not value:
            return "[\n\n" + indent + "]"
        return "[\n" + ",\n".join(inner + pretty(v, inner) for v in value) + "\n" + indent + "]"
    return _scalar(value)


def _ordered(record: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The record's non-nil properties in encoding order (encodeIfPresent leaves nil out)."""
    unknown = set(record) - set(keys)
    assert not unknown, f"not properties of the struct: {unknown}"
    return {k: record[k] for k in keys if record.get(k) is not None}


def encode_place(place: dict[str, Any]) -> dict[str, Any]:
    """A Place as its encoder writes it (with the derived `category`, BIG-514)."""
    return _ordered(place, PLACE_KEYS)


def encode_item(item: dict[str, Any]) -> dict[str, Any]:
    """A TimelineItem: base, then visit or trip (place and samples are nil when bucketed)."""
    out = {"base": _ordered(item["base"], BASE_KEYS)}
    if "visit" in item:
        out["visit"] = _ordered(item["visit"], VISIT_KEYS)
    if "trip" in item:
        out["trip"] = _ordered(item["trip"], TRIP_KEYS)
    return out


def encode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """A LocomotionSample (synthesized encoder: every stored property, rtreeId too)."""
    return _ordered(sample, SAMPLE_KEYS)


def gzip_like_the_apps(data: bytes) -> bytes:
    """`Data.gzipCompressed()`: fixed header (no mtime, OS Unix), raw deflate, trailer."""
    deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(data) + deflater.flush()
    header = bytes((0x1F, 0x8B, 0x08, 0, 0, 0, 0, 0, 0, 0x03))
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


# --- buckets -----------------------------------------------------------------------------------


def week_of(moment: datetime, min_days: int = 4) -> str:
    """The UTC Monday-first Gregorian week, `%4d-W%02d` (min_days 4 is ISO 8601)."""
    day = moment.astimezone(UTC).date()

    def week_one(year: int) -> date:
        jan1 = date(year, 1, 1)
        monday = jan1 - timedelta(days=jan1.weekday())
        return monday if 7 - jan1.weekday() >= min_days else monday + timedelta(days=7)

    year = max(y for y in (day.year - 1, day.year, day.year + 1) if week_one(y) <= day)
    return f"{year:4d}-W{(day - week_one(year)).days // 7 + 1:02d}"


def _buckets(
    records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str | None]
) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        bucket = key(record)
        if bucket is not None:
            found.setdefault(bucket, []).append(record)
    return found


def _saved(record: dict[str, Any]) -> datetime:
    return record["base"]["lastSaved"] if "base" in record else record["lastSaved"]


# --- an export ---------------------------------------------------------------------------------


@dataclass
class Phone:
    """Where the export runs: its time zone and its calendar's minimum days in week one.

    Sydney in summer (UTC+11, a fixed offset: no time zone database needed): its
    February starts at 13:00 UTC on 31 January.
    """

    tz: tzinfo = field(default_factory=lambda: timezone(timedelta(hours=11), "AEDT"))
    min_days_in_first_week: int = 4
    app_metadata: dict[str, str] = field(
        default_factory=lambda: {"appName": "Arc Timeline", "appVersion": "2025.12"}
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_export(
    base: Path,
    timeline: AppTimeline,
    *,
    started: datetime,
    phone: Phone | None = None,
    export_id: str = "6A1C2E3F-0B4D-4E5F-8A9B-0C1D2E3F4A5B",
) -> Path:
    """A full export under `base`; returns the export folder."""
    phone = phone or Phone()
    folder = base / started.astimezone(phone.tz).strftime("export-%Y-%m-%d-%H%M%S")
    _write_buckets(folder, timeline, phone, since=None, until=started)
    _write_metadata(folder, timeline, "full", started=started, phone=phone, export_id=export_id)
    return folder


def update_backup(
    folder: Path,
    timeline: AppTimeline,
    *,
    since: datetime,
    started: datetime,
    phone: Phone | None = None,
    export_id: str = "7B2D3F40-1C5E-4F60-9BAC-1D2E3F4A5B6C",
) -> None:
    """An incremental backup into `folder`: only buckets with records saved since `since`."""
    phone = phone or Phone()
    _write_buckets(folder, timeline, phone, since=since, until=started)
    _write_metadata(
        folder, timeline, "incremental", started=started, phone=phone, export_id=export_id
    )


def _write_buckets(
    folder: Path, timeline: AppTimeline, phone: Phone, *, since: datetime | None, until: datetime
) -> None:
    for kind in ("places", "items", "samples"):
        (folder / kind).mkdir(parents=True, exist_ok=True)

    def changed(records: list[dict[str, Any]]) -> bool:
        return since is None or any(since < _saved(r) <= until for r in records)

    places = _buckets(timeline.places, lambda p: p["id"][0].upper())
    for key, records in places.items():
        if changed(records):
            body = pretty([encode_place(p) for p in records])
            _write(folder / "places" / f"{key}.json", body.encode())

    def month(item: dict[str, Any]) -> str | None:
        start = item["base"].get("startDate")
        return None if start is None else start.astimezone(phone.tz).strftime("%Y-%m")

    ordered = sorted(
        (i for i in timeline.items if i["base"].get("startDate") is not None),
        key=lambda i: i["base"]["startDate"],
    )
    for key, records in _buckets(ordered, month).items():
        if changed(records):
            body = pretty([encode_item(i) for i in records])
            _write(folder / "items" / f"{key}.json", body.encode())

    by_date = sorted(timeline.samples, key=lambda s: s["date"])
    weeks = _buckets(by_date, lambda s: week_of(s["date"], phone.min_days_in_first_week))
    for key, records in weeks.items():
        if changed(records):
            body = pretty([encode_sample(s) for s in records]).encode()
            _write(folder / "samples" / f"{key}.json.gz", gzip_like_the_apps(body))


def _write_metadata(
    folder: Path,
    timeline: AppTimeline,
    export_type: str,
    *,
    started: datetime,
    phone: Phone,
    export_id: str,
) -> None:
    metadata = {
        "exportId": export_id,
        "schemaVersion": SCHEMA_VERSION,
        "exportMode": "bucketed",
        "exportType": export_type,
        "sessionStartDate": started,
        "sessionFinishDate": started + timedelta(seconds=41),
        "itemsCompleted": True,
        "placesCompleted": True,
        "samplesCompleted": True,
        "stats": {
            "placeCount": len(timeline.places),
            "itemCount": sum(1 for i in timeline.items if i["base"].get("startDate")),
            "sampleCount": len(timeline.samples),
        },
        "lastBackupDate": started,
        "appMetadata": phone.app_metadata,
    }
    _write(folder / "metadata.json", pretty(_ordered(metadata, METADATA_KEYS)).encode())
