"""Archives as the Arc timeline apps write them (LocoKit2 "bucketed", SPEC 4), built in Python.

Written from SPEC 4 alone, never with Ferry's exporter or codecs, so a bug shared by
Ferry's writer and reader cannot hide here. A `Timeline` holds the truth: records keyed
by their database column (snake_case), with Python values (aware datetimes, floats, lower
case UUID strings). `arc_archive` renders it the way the apps do: pretty-printed sorted
JSON, camelCase keys, nulls omitted, seconds-precision or numeric dates in either epoch,
upper- or lower-case UUIDs, unknown extra keys, no manifest, samples gzipped by ISO week
(or any mix). Tests may append raw objects to any file to plant problems, then `write` the
archive as zip, tar or tar.gz, with or without a top-level folder.

The same module holds what the import tests share: `expected_rows` (the database rows a
timeline must become), `assert_rows_match`, `account_digest`, `insert_timeline` and
`InProcess` (running import and export jobs in-process through `shared.jobs.runner.JobRunner`).
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import random
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row
from sqlalchemy import Engine

from shared.archive.export import ExportArchive
from shared.archive.importer import ImportArchive
from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.states import JobType
from shared.jobs.store import Job, JobStore
from shared.params import ExportArchiveParams, ImportArchiveParams
from shared.pipelines import PIPELINES
from shared.service import JobService
from shared.settings import Settings
from shared.store.db import raw_connection
from shared.store.storage import LocalStorage
from tests.polling import wait_for

KINDS = ("places", "items", "samples")
TABLES = {"places": "places", "items": "timeline_items", "samples": "samples"}
APPLE_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --- the fields of SPEC 4: (archive key, column, kind) ---------------------------------------

UUID_, TEXT, INT, FLOAT, BOOL, DATE = "uuid", "text", "int", "float", "bool", "date"

PLACE: tuple[tuple[str, str, str], ...] = (
    ("id", "id", UUID_),
    ("name", "name", TEXT),
    ("streetAddress", "street_address", TEXT),
    ("locality", "locality", TEXT),
    ("countryCode", "country_code", TEXT),
    ("secondsFromGMT", "seconds_from_gmt", INT),
    ("latitude", "latitude", FLOAT),
    ("longitude", "longitude", FLOAT),
    ("radiusMean", "radius_mean", FLOAT),
    ("radiusSD", "radius_sd", FLOAT),
    ("isStale", "is_stale", BOOL),
    ("visitCount", "visit_count", INT),
    ("visitDays", "visit_days", INT),
    ("lastVisitDate", "last_visit_date", DATE),
    ("mapboxPlaceId", "mapbox_place_id", TEXT),
    ("mapboxCategory", "mapbox_category", TEXT),
    ("mapboxMakiIcon", "mapbox_maki_icon", TEXT),
    ("googlePlaceId", "google_place_id", TEXT),
    ("googlePrimaryType", "google_primary_type", TEXT),
    ("foursquarePlaceId", "foursquare_place_id", TEXT),
    ("foursquareCategoryId", "foursquare_category_id", INT),
    ("foursquareCategoryV2Id", "foursquare_category_v2_id", TEXT),
    ("userCategory", "user_category", TEXT),
    ("source", "source", TEXT),
    ("lastSaved", "last_saved", DATE),
)
BASE: tuple[tuple[str, str, str], ...] = (
    ("id", "id", UUID_),
    ("isVisit", "is_visit", BOOL),
    ("startDate", "start_date", DATE),
    ("endDate", "end_date", DATE),
    ("source", "source", TEXT),
    ("sourceVersion", "source_version", TEXT),
    ("disabled", "disabled", BOOL),
    ("deleted", "deleted", BOOL),
    ("locked", "locked", BOOL),
    ("samplesChanged", "samples_changed", BOOL),
    ("lastSaved", "last_saved", DATE),
    ("previousItemId", "previous_item_id", UUID_),
    ("nextItemId", "next_item_id", UUID_),
    ("stepCount", "step_count", INT),
    ("floorsAscended", "floors_ascended", INT),
    ("floorsDescended", "floors_descended", INT),
    ("averageAltitude", "average_altitude", FLOAT),
    ("activeEnergyBurned", "active_energy_burned", FLOAT),
    ("averageHeartRate", "average_heart_rate", FLOAT),
    ("maxHeartRate", "max_heart_rate", FLOAT),
)
VISIT: tuple[tuple[str, str, str], ...] = (
    ("latitude", "latitude", FLOAT),
    ("longitude", "longitude", FLOAT),
    ("radiusMean", "radius_mean", FLOAT),
    ("radiusSD", "radius_sd", FLOAT),
    ("placeId", "place_id", UUID_),
    ("confirmedPlace", "confirmed_place", BOOL),
    ("uncertainPlace", "uncertain_place", BOOL),
    ("customTitle", "custom_title", TEXT),
    ("streetAddress", "street_address", TEXT),
    ("locality", "locality", TEXT),
    ("countryCode", "country_code", TEXT),
    ("lastSaved", "visit_last_saved", DATE),
)
TRIP: tuple[tuple[str, str, str], ...] = (
    ("distance", "distance", FLOAT),
    ("speed", "speed", FLOAT),
    ("classifiedActivityType", "classified_activity_type", INT),
    ("confirmedActivityType", "confirmed_activity_type", INT),
    ("uncertainActivityType", "uncertain_activity_type", BOOL),
    ("lastSaved", "trip_last_saved", DATE),
)
SAMPLE: tuple[tuple[str, str, str], ...] = (
    ("id", "id", UUID_),
    ("date", "date", DATE),
    ("secondsFromGMT", "seconds_from_gmt", INT),
    ("source", "source", TEXT),
    ("sourceVersion", "source_version", TEXT),
    ("movingState", "moving_state", INT),
    ("recordingState", "recording_state", INT),
    ("disabled", "disabled", BOOL),
    ("lastSaved", "last_saved", DATE),
    ("timelineItemId", "timeline_item_id", UUID_),
    ("latitude", "latitude", FLOAT),
    ("longitude", "longitude", FLOAT),
    ("altitude", "altitude", FLOAT),
    ("horizontalAccuracy", "horizontal_accuracy", FLOAT),
    ("verticalAccuracy", "vertical_accuracy", FLOAT),
    ("speed", "speed", FLOAT),
    ("course", "course", FLOAT),
    ("stepHz", "step_hz", FLOAT),
    ("xyAcceleration", "xy_acceleration", FLOAT),
    ("zAcceleration", "z_acceleration", FLOAT),
    ("heartRate", "heart_rate", FLOAT),
    ("classifiedActivityType", "classified_activity_type", INT),
    ("confirmedActivityType", "confirmed_activity_type", INT),
)
# The columns the Arc apps always write (their structs' non-optional properties, SPEC 4).
ALWAYS: dict[str, frozenset[str]] = {
    "places": frozenset(
        [
            "name",
            "latitude",
            "longitude",
            "radius_mean",
            "radius_sd",
            "is_stale",
            "visit_count",
            "visit_days",
            "source",
            "last_saved",
        ]
    ),
    "base": frozenset(
        [
            "source",
            "source_version",
            "disabled",
            "deleted",
            "locked",
            "samples_changed",
            "last_saved",
        ]
    ),
    "visit": frozenset(
        ("radius_mean", "radius_sd", "confirmed_place", "uncertain_place", "visit_last_saved")
    ),
    "trip": frozenset(("distance", "speed", "uncertain_activity_type", "trip_last_saved")),
    "samples": frozenset(
        ("source", "source_version", "moving_state", "recording_state", "disabled", "last_saved")
    ),
}
# Every column of each live table (items: base, visit-only, trip-only).
COLUMNS: dict[str, tuple[str, ...]] = {
    "places": tuple(c for _, c, _ in PLACE),
    "items": tuple(dict.fromkeys(c for _, c, _ in BASE + VISIT + TRIP)),
    "samples": tuple(c for _, c, _ in SAMPLE),
}
_KIND_OF = {c: k for _, c, k in PLACE + BASE + VISIT + TRIP + SAMPLE}


@dataclass
class Timeline:
    """Records as the database must hold them: column -> Python value (None = absent)."""

    places: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The records of one kind."""
        records: list[dict[str, Any]] = getattr(self, kind)
        return records

    def ids(self, kind: str) -> set[str]:
        """Ids (lower case) of one kind."""
        return {r["id"] for r in self.of(kind)}

    def find(self, kind: str, record_id: str) -> dict[str, Any]:
        """One record by id."""
        return next(r for r in self.of(kind) if r["id"] == record_id.lower())

    def counts(self) -> dict[str, int]:
        """Records per kind."""
        return {kind: len(self.of(kind)) for kind in KINDS}


def new_id(rng: random.Random | None = None) -> str:
    """A random UUID, lower case (the form a test compares)."""
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def id_starting(prefix: str, rng: random.Random | None = None) -> str:
    """A UUID whose text starts with `prefix` (to aim at a place bucket)."""
    raw = new_id(rng)
    return (prefix + raw[len(prefix) :]).lower()


# --- rendering records the way Arc writes them ----------------------------------------------


@dataclass(frozen=True)
class Style:
    """How values are written: dates `iso`, `apple`, `unix` or `mixed`; UUID case."""

    dates: str = "mixed"
    uuid_case: str = "mixed"  # upper | lower | mixed
    extra_keys: bool = True
    integral_floats_as_ints: bool = True  # Swift writes 12.0 as 12


def _date(value: datetime, style: Style, rng: random.Random) -> Any:
    form = style.dates if style.dates != "mixed" else rng.choice(("iso", "iso", "apple", "unix"))
    if form == "apple":
        number = (value - APPLE_EPOCH).total_seconds()
        assert 0 <= number < 978_307_200, value
    elif form == "unix":
        number = (value - UNIX_EPOCH).total_seconds()
        assert number >= 978_307_200, value
    else:
        text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}".rstrip("0")
        return text + "Z"
    return int(number) if number.is_integer() else number


def _uuid(value: str, style: Style, rng: random.Random) -> str:
    case = style.uuid_case if style.uuid_case != "mixed" else rng.choice(("upper", "lower"))
    return value.upper() if case == "upper" else value.lower()


def _render(
    fields: Iterable[tuple[str, str, str]],
    record: Mapping[str, Any],
    style: Style,
    rng: random.Random,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, column, kind in fields:
        value = record.get(column)
        if value is None:
            continue
        if kind == DATE:
            out[key] = _date(value, style, rng)
        elif kind == UUID_:
            out[key] = _uuid(value, style, rng)
        elif kind == FLOAT and style.integral_floats_as_ints and value.is_integer():
            out[key] = int(value) if abs(value) < 2**53 else value
        else:
            out[key] = value
    return out


def render_place(record: Mapping[str, Any], style: Style, rng: random.Random) -> dict[str, Any]:
    """A place as an Arc archive object."""
    out = _render(PLACE, record, style, rng)
    if style.extra_keys:
        out["rtreeId"] = rng.randint(1, 10_000)
        out["arcExtras"] = {"note": "unknown to Ferry", "list": [1, 2.5, None]}
    return out


def render_item(record: Mapping[str, Any], style: Style, rng: random.Random) -> dict[str, Any]:
    """An item as `{"base": …, "visit"|"trip": …}`, each half with its own extra keys."""
    base = _render(BASE, record, style, rng)
    detail_name = "visit" if record["is_visit"] else "trip"
    detail = _render(VISIT if record["is_visit"] else TRIP, record, style, rng)
    detail["itemId"] = _uuid(record["id"], style, rng)
    out: dict[str, Any] = {"base": base, detail_name: detail}
    if style.extra_keys:
        base["arcOnlyFlag"] = False
        detail["arcOnly"] = "x"
        out["unknownSection"] = {"keep": "ignored"}
    return out


def render_sample(record: Mapping[str, Any], style: Style, rng: random.Random) -> dict[str, Any]:
    """A location sample as an Arc archive object."""
    out = _render(SAMPLE, record, style, rng)
    if style.extra_keys:
        out["rtreeId"] = None
        out["hasLocation"] = "latitude" in out
    return out


RENDER: dict[str, Callable[[Mapping[str, Any], Style, random.Random], dict[str, Any]]] = {
    "places": render_place,
    "items": render_item,
    "samples": render_sample,
}


def bucket_of(kind: str, record: Mapping[str, Any]) -> str:
    """SPEC 4's bucket: first id character, UTC year-month of startDate, ISO week of date."""
    if kind == "places":
        return record["id"][0].upper()
    if kind == "items":
        return record["start_date"].astimezone(UTC).strftime("%Y-%m")
    year, week, _ = record["date"].astimezone(UTC).isocalendar()
    return f"{year:04d}-W{week:02d}"


# --- an archive, file by file ---------------------------------------------------------------


@dataclass
class ArcArchive:
    """The files of an archive before they are written: data files hold JSON values."""

    files: dict[str, list[Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    # pretty (Swift's prettyPrinted + sortedKeys), lines (one object per line), compact.
    layout: dict[str, str] = field(default_factory=dict)
    default_layout: str = "pretty"
    extra: dict[str, bytes] = field(default_factory=dict)  # other members, as bytes

    def add(self, path: str, obj: Any) -> tuple[str, int]:
        """Append a raw object to a data file; returns where it landed (file, index)."""
        self.files.setdefault(path, []).append(obj)
        return path, len(self.files[path]) - 1

    def where(self, kind: str, record_id: str) -> list[tuple[str, int]]:
        """Every (file, index) of a kind holding this id (any case)."""
        found = []
        for path, objects in sorted(self.files.items()):
            if not path.startswith(kind + "/"):
                continue
            for index, obj in enumerate(objects):
                if _object_id(kind, obj) == record_id.lower():
                    found.append((path, index))
        return found

    def encoded(self, path: str) -> bytes:
        """A data file's bytes as stored (gzipped when its name ends in .gz)."""
        objects = self.files[path]
        layout = self.layout.get(path, self.default_layout)
        if layout == "pretty":
            text = json.dumps(
                objects, indent=2, sort_keys=True, separators=(",", " : "), ensure_ascii=False
            )
        elif layout == "lines":
            text = "[\n" + ",\n".join(json.dumps(o, sort_keys=True) for o in objects) + "\n]\n"
        else:
            text = json.dumps(objects, separators=(",", ":"))
        data = text.encode()
        return gzip.compress(data, mtime=0) if path.endswith(".gz") else data

    def members(self) -> dict[str, bytes]:
        """Every member (inside the folder) as bytes."""
        out = {"metadata.json": json.dumps(self.metadata, indent=2, sort_keys=True).encode()}
        out.update({path: self.encoded(path) for path in sorted(self.files)})
        out.update(self.extra)
        return out

    def write(
        self,
        dest: Path,
        *,
        fmt: str = "zip",
        folder: str | None = "export-2025-01-02-030405",
        unix_modes: bool = True,
    ) -> Path:
        """Write as `zip`, `tar` or `tar.gz`, inside `folder` (None: at the top).

        zip: `unix_modes` records each member's Unix file type and permissions (as Info-ZIP
        and macOS do); without it, members carry what `ZipFile.writestr` gives a bare name
        (permission bits, no file type).
        """
        prefix = f"{folder}/" if folder else ""
        members = self.members()
        if fmt == "zip":
            with zipfile.ZipFile(dest, "w") as archive:
                if folder:
                    entry = zipfile.ZipInfo(prefix, date_time=(2025, 1, 2, 3, 4, 5))
                    if unix_modes:
                        entry.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                    archive.writestr(entry, b"")
                for name, data in members.items():
                    method = zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED
                    if unix_modes:
                        info = zipfile.ZipInfo(prefix + name, date_time=(2025, 1, 2, 3, 4, 5))
                        info.external_attr = (stat.S_IFREG | 0o644) << 16
                        info.compress_type = method
                        archive.writestr(info, data)
                    else:
                        archive.writestr(prefix + name, data, compress_type=method)
        elif fmt in ("tar", "tar.gz"):
            with tarfile.open(dest, "w:gz" if fmt == "tar.gz" else "w") as archive:
                if folder:
                    directory = tarfile.TarInfo(folder)
                    directory.type = tarfile.DIRTYPE
                    directory.mode = 0o755
                    archive.addfile(directory)
                for name, data in members.items():
                    member = tarfile.TarInfo(prefix + name)
                    member.size = len(data)
                    member.mode = 0o644
                    archive.addfile(member, io.BytesIO(data))
        else:
            raise ValueError(f"unknown archive format {fmt!r}")
        return dest


def _object_id(kind: str, obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    holder = obj.get("base") if kind == "items" else obj
    raw = holder.get("id") if isinstance(holder, dict) else None
    return raw.lower() if isinstance(raw, str) else None


def arc_metadata(timeline: Timeline, *, schema_version: str = "2.1.0") -> dict[str, Any]:
    """metadata.json as an Arc app writes it for a finished full export (SPEC 4)."""
    return {
        "schemaVersion": schema_version,
        "exportId": str(uuid.uuid4()).upper(),
        "exportMode": "bucketed",
        "exportType": "full",
        "sessionStartDate": "2025-01-02T03:04:05Z",
        "sessionFinishDate": "2025-01-02T03:04:09Z",
        "placesCompleted": True,
        "itemsCompleted": True,
        "samplesCompleted": True,
        "stats": {
            "placeCount": len(timeline.places),
            "itemCount": len(timeline.items),
            "sampleCount": len(timeline.samples),
        },
        "appMetadata": {"appName": "Arc Timeline", "appVersion": "2025.1", "build": "1234"},
    }


def arc_archive(
    timeline: Timeline,
    *,
    style: Style | None = None,
    gzipped: Callable[[str, str], bool] | Iterable[str] = ("samples",),
    layout: str | Callable[[str], str] = "pretty",
    seed: int = 1,
    schema_version: str = "2.1.0",
) -> ArcArchive:
    """Bucket and render a timeline as an Arc app does.

    `gzipped`: the folders whose files are .json.gz, or a function (kind, bucket) -> bool
    for any mix. `layout`: one for all files, or a function of the file's path.
    """
    style = style or Style()
    rng = random.Random(seed)
    if callable(gzipped):
        is_gzipped = gzipped
    else:
        folders = set(gzipped)

        def is_gzipped(kind: str, bucket: str) -> bool:
            return kind in folders

    archive = ArcArchive(metadata=arc_metadata(timeline, schema_version=schema_version))
    for kind in KINDS:
        for record in timeline.of(kind):
            bucket = bucket_of(kind, record)
            path = f"{kind}/{bucket}.json" + (".gz" if is_gzipped(kind, bucket) else "")
            archive.add(path, RENDER[kind](record, style, rng))
    if callable(layout):
        archive.layout = {path: layout(path) for path in archive.files}
    else:
        archive.default_layout = layout
    return archive


# --- an Arc-style timeline -------------------------------------------------------------------

# LocoKit2's ActivityType raw values (-1 unknown, 0 bogus, 1-6 base, 20-35 transport,
# 50-61 active): what the Arc apps write.
ACTIVITY_TYPES = (-1, 0, *range(1, 7), *range(20, 36), *range(50, 62))
# What an Arc app writes for an item it knows nothing more about (SPEC 4's required keys).
ITEM_DEFAULTS: dict[str, Any] = {
    "source": "LocoKit2",
    "source_version": "9.0.0",
    "disabled": False,
    "deleted": False,
    "locked": False,
    "samples_changed": False,
}
TRIP_DEFAULTS: dict[str, Any] = {
    **ITEM_DEFAULTS,
    "distance": 0.0,
    "speed": 0.0,
    "uncertain_activity_type": True,
}
VISIT_DEFAULTS: dict[str, Any] = {
    **ITEM_DEFAULTS,
    "radius_mean": 50.0,
    "radius_sd": 10.0,
    "confirmed_place": False,
    "uncertain_place": True,
}
SAMPLE_DEFAULTS: dict[str, Any] = {
    "source": "LocoKit2",
    "source_version": "9.0.0",
    "moving_state": -1,
    "recording_state": 0,
    "disabled": False,
}
PLACE_DEFAULTS: dict[str, Any] = {
    "radius_mean": 60.0,
    "radius_sd": 0.0,
    "is_stale": True,
    "visit_count": 0,
    "visit_days": 0,
    "source": "LocoKit2",
}


def arc_record(kind: str, **fields: Any) -> dict[str, Any]:
    """A record as an Arc app holds it: `fields`, and what the app always has besides.

    lastSaved defaults to the item's end, the sample's date (places must say theirs); a
    visit's or trip's own lastSaved to the item's.
    """
    if kind == "places":
        return {**PLACE_DEFAULTS, **fields}
    if kind == "samples":
        return {**SAMPLE_DEFAULTS, "last_saved": fields["date"], **fields}
    is_visit = fields["is_visit"]
    record = {
        **(VISIT_DEFAULTS if is_visit else TRIP_DEFAULTS),
        "last_saved": fields["end_date"],
        **fields,
    }
    record.setdefault("visit_last_saved" if is_visit else "trip_last_saved", record["last_saved"])
    return record


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _place(rng: random.Random, prefix: str, name: str, lat: float, lon: float) -> dict[str, Any]:
    return {
        "id": id_starting(prefix, rng),
        "name": name,
        "latitude": lat,
        "longitude": lon,
        "radius_mean": round(rng.uniform(10, 80), 6),
        "radius_sd": rng.uniform(1, 20),
        "is_stale": False,
        "visit_count": rng.randint(1, 500),
        "visit_days": rng.randint(1, 300),
        "last_visit_date": _at("2025-01-01T09:30:00"),
        "seconds_from_gmt": 3600,
        "source": "LocoKit2",
        "last_saved": _at("2025-01-01T10:00:00"),
    }


def arc_timeline(*, seed: int = 7) -> Timeline:
    """A small timeline like a person's Arc export, across both ISO week-year boundaries.

    Visits and trips alternate without gaps and are linked previous/next; samples lie in
    their items. Around New Year 2024/25 (2024-12-29 is in 2024-W52, 2024-12-30 in
    2025-W01, the month changes too) and 2021-01-03 (2020-W53) / 2021-01-04 (2021-W01).
    It holds keepers and non-keepers of SPEC 3, a deleted and a disabled item, a place
    nobody visits, samples without an item, sparse records and odd strings.
    """
    rng = random.Random(seed)
    home = _place(rng, "0", "Home", 51.5072, -0.1276)
    home.update(
        street_address='1 Baker\'s "Row"',
        locality="London",
        country_code="GB",
        user_category="home",
        mapbox_place_id="poi.123",
        mapbox_category="residential",
        mapbox_maki_icon="home",
        google_place_id="ChIJdd4hrwug2EcRmSrV3Vo6llI",
        google_primary_type="premise",
        foursquare_place_id="4b0588f1f964a520",
        foursquare_category_id=4_000_000,
        foursquare_category_v2_id="4bf58dd8d48988d103941735",
    )
    cafe = _place(rng, "a", "Café Zürich \\ back-slash 日本", 47.3769, 8.5417)
    cafe["is_stale"] = True
    work = _place(rng, "F", "Work", -33.8688, 151.2093)
    # A sparse place: only what the Arc apps always write.
    unused = {
        "id": id_starting("7", rng),
        "name": "Never visited",
        "latitude": -90.0,
        "longitude": 180.0,
        "radius_mean": 60.0,
        "radius_sd": 0.0,
        "is_stale": True,
        "visit_count": 0,
        "visit_days": 0,
        "source": "LocoKit2",
        "last_saved": _at("2020-06-01T00:00:00"),
    }
    places = [home, cafe, work, unused]

    items: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []

    def visit(start: datetime, seconds: float, place: dict[str, Any] | None) -> dict[str, Any]:
        item = {
            "id": new_id(rng),
            "is_visit": True,
            "start_date": start,
            "end_date": start + timedelta(seconds=seconds),
            "source": "LocoKit2",
            "source_version": "9.0.1",
            "disabled": False,
            "deleted": False,
            "locked": rng.random() < 0.3,
            "samples_changed": rng.random() < 0.3,
            "last_saved": start + timedelta(seconds=seconds, minutes=3),
            "visit_last_saved": start + timedelta(seconds=seconds, minutes=2),
            "step_count": rng.randint(0, 2000),
            "floors_ascended": rng.randint(0, 5),
            "floors_descended": rng.randint(0, 5),
            "average_altitude": rng.uniform(-10, 300),
            "active_energy_burned": rng.uniform(0, 100),
            "average_heart_rate": rng.uniform(50, 100),
            "max_heart_rate": float(rng.randint(90, 180)),
            "latitude": place["latitude"] if place else 10.5,
            "longitude": place["longitude"] if place else 20.25,
            "radius_mean": rng.uniform(5, 50),
            "radius_sd": rng.uniform(1, 10),
            "place_id": place["id"] if place else None,
            "confirmed_place": place is not None,
            "uncertain_place": place is None,
            "custom_title": 'Lunch 🍜 "with" Sam' if place is cafe else None,
            "street_address": place.get("street_address") if place else None,
            "locality": place.get("locality") if place else None,
            "country_code": place.get("country_code") if place else None,
        }
        items.append(item)
        return item

    def trip(start: datetime, seconds: float, activity: int) -> dict[str, Any]:
        confirmed = activity if rng.random() < 0.5 else None
        item = {
            "id": new_id(rng),
            "is_visit": False,
            "start_date": start,
            "end_date": start + timedelta(seconds=seconds),
            "source": "LocoKit2",
            "source_version": "9.0.1",
            "disabled": False,
            "deleted": False,
            "locked": False,
            "samples_changed": False,
            "last_saved": start + timedelta(seconds=seconds, minutes=1),
            "step_count": rng.randint(0, 5000),
            "distance": rng.uniform(100, 20000),
            "speed": rng.uniform(0.5, 30),
            "classified_activity_type": activity,
            "confirmed_activity_type": confirmed,
            # The Arc apps' rule: never uncertain once a type is confirmed.
            "uncertain_activity_type": confirmed is None and rng.random() < 0.5,
            "trip_last_saved": start + timedelta(seconds=seconds, minutes=1, microseconds=500),
        }
        items.append(item)
        return item

    def chain(sequence: list[dict[str, Any]]) -> None:
        for before, after in itertools.pairwise(sequence):
            before["next_item_id"] = after["id"]
            after["previous_item_id"] = before["id"]

    def sample(item: dict[str, Any] | None, at: datetime, *, sparse: bool = False) -> None:
        # Sparse: only what the Arc apps always write.
        record: dict[str, Any] = {
            "id": new_id(rng),
            "date": at,
            "source": "LocoKit2",
            "source_version": "9.0.1",
            "moving_state": -1,
            "recording_state": 0,
            "disabled": False,
            "last_saved": at + timedelta(seconds=30),
        }
        if item is not None:
            record["timeline_item_id"] = item["id"]
        if not sparse:
            moving = item is not None and not item["is_visit"]
            record.update(
                seconds_from_gmt=0,
                moving_state=1 if moving else rng.choice((0, -1)),
                recording_state=rng.randint(0, 5),
                disabled=rng.random() < 0.05,
                latitude=rng.uniform(-89.9, 89.9),
                longitude=rng.uniform(-179.9, 179.9),
                altitude=rng.uniform(-20, 400),
                horizontal_accuracy=rng.choice((5.0, 10.0, 65.0, rng.uniform(1, 100))),
                vertical_accuracy=rng.uniform(1, 30),
                speed=rng.uniform(0, 30) if moving else 0.0,
                course=rng.choice((-1.0, rng.uniform(0, 359.99))),
                step_hz=rng.uniform(0, 3),
                xy_acceleration=rng.uniform(0, 2),
                z_acceleration=rng.uniform(0, 2),
                heart_rate=float(rng.randint(50, 150)) if rng.random() < 0.5 else None,
                classified_activity_type=rng.choice(ACTIVITY_TYPES),
                confirmed_activity_type=rng.choice(ACTIVITY_TYPES) if rng.random() < 0.2 else None,
            )
        samples.append(record)

    def fill(item: dict[str, Any], count: int) -> None:
        span = (item["end_date"] - item["start_date"]).total_seconds()
        for n in range(count):
            offset = span * n / max(1, count - 1) if count > 1 else 0.0
            sample(item, item["start_date"] + timedelta(seconds=round(offset * 4) / 4))

    # New Year 2024/25: W52 -> W01 of 2025, December -> January.
    day = [
        visit(_at("2024-12-29T18:00:00"), 6 * 3600 - 1, home),  # ends 23:59:59 in W52
        trip(_at("2024-12-29T23:59:59"), 1201, 2),  # starts in W52, ends in 2025-W01
        visit(_at("2024-12-30T00:20:00"), 119, cafe),  # 119 s: not a keeper
        trip(_at("2024-12-30T00:21:59"), 59.75, 4),  # 59.75 s: not a keeper
        visit(_at("2024-12-30T00:22:58.75"), 120.25, work),  # 120.25 s: a keeper
        trip(_at("2024-12-30T00:24:59"), 60, 5),  # 60 s, 1 sample: not a keeper
        trip(_at("2024-12-30T00:25:59"), 90, 6),  # 90 s, 2 samples: a keeper
        visit(_at("2024-12-30T00:27:29"), 48 * 3600 + 0.5, home),  # ends 2025-01-01
        trip(_at("2025-01-01T00:27:29.5"), 1800, 2),  # in items/2025-01
    ]
    chain(day)
    for item, count in zip(day, (30, 40, 5, 8, 6, 1, 2, 60, 12), strict=True):
        fill(item, count)
    sample(day[0], _at("2024-12-29T23:59:59"))  # last second of 2024-W52
    sample(day[1], _at("2024-12-30T00:00:00"))  # first second of 2025-W01
    # 2021-01-03 is a Sunday in 2020-W53; the next day starts 2021-W01.
    winter = [
        visit(_at("2021-01-03T20:00:00"), 3 * 3600, None),
        trip(_at("2021-01-03T23:00:00"), 7200.5, 20),
        visit(_at("2021-01-04T01:00:00.5"), 3600, home),
    ]
    chain(winter)
    for item, count in zip(winter, (20, 30, 10), strict=True):
        fill(item, count)
    sample(winter[1], _at("2021-01-03T23:59:59.25"))
    sample(winter[1], _at("2021-01-04T00:00:00"))
    # An old deleted visit and a disabled trip, not linked; samples with no item at all.
    gone = visit(_at("2022-07-14T12:00:00"), 600, cafe)
    gone["deleted"] = True
    off = trip(_at("2022-07-14T12:10:00"), 300, 3)
    off["disabled"] = True
    fill(off, 3)
    for n in range(4):
        sample(None, _at("2024-12-31T12:00:00") + timedelta(minutes=n), sparse=n % 2 == 0)
    # A sparse trip: only what the Arc apps always write.
    items.append(
        {
            "id": new_id(rng),
            "is_visit": False,
            "start_date": _at("2024-11-30T23:59:59"),
            "end_date": _at("2024-12-01T00:00:01"),
            **TRIP_DEFAULTS,
            "last_saved": _at("2024-12-01T00:00:05"),
            "trip_last_saved": _at("2024-12-01T00:00:05"),
        }
    )
    return Timeline(places=places, items=items, samples=samples)


# --- planting problems ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    """A reference the import must set to null (kind, record id, columns), with a warning.

    `also`: what else must change with it so the Arc apps' rules still hold (a visit that
    loses its place is not confirmed and is uncertain).
    """

    kind: str
    record_id: str
    columns: tuple[str, ...]
    what: str
    also: tuple[tuple[str, Any], ...] = ()


def plant_bad_references(timeline: Timeline, *, seed: int = 3) -> list[Planted]:
    """Add records whose references do not resolve (SPEC 11); returns what must go null.

    An edge to an item in neither archive nor account, previous == next, an item pointing
    at itself, a sample whose item is missing, a visit whose place is missing.
    """
    rng = random.Random(seed)
    start = _at("2024-12-20T08:00:00")
    anchor = timeline.items[0]["id"]

    def item(is_visit: bool, offset_hours: int, **extra: Any) -> dict[str, Any]:
        saved = start + timedelta(days=1)
        record: dict[str, Any] = {
            "id": new_id(rng),
            "is_visit": is_visit,
            "start_date": start + timedelta(hours=offset_hours),
            "end_date": start + timedelta(hours=offset_hours, minutes=30),
            **(VISIT_DEFAULTS if is_visit else TRIP_DEFAULTS),
            "last_saved": saved,
            ("visit_last_saved" if is_visit else "trip_last_saved"): saved,
            **extra,
        }
        timeline.items.append(record)
        return record

    dangling = item(True, 0, next_item_id=new_id(rng), latitude=1.0, longitude=2.0)
    same = item(False, 1, previous_item_id=anchor, next_item_id=anchor, distance=5.0)
    selfish = item(False, 2)
    selfish["previous_item_id"] = selfish["id"]
    homeless = item(
        True,
        3,
        place_id=new_id(rng),
        confirmed_place=True,
        uncertain_place=False,
        latitude=3.0,
        longitude=4.0,
    )
    orphan: dict[str, Any] = {
        "id": new_id(rng),
        "date": start + timedelta(hours=4),
        **SAMPLE_DEFAULTS,
        "last_saved": start + timedelta(hours=4, seconds=1),
        "timeline_item_id": new_id(rng),
        "latitude": 5.0,
        "longitude": 6.0,
    }
    timeline.samples.append(orphan)
    return [
        Planted("items", dangling["id"], ("next_item_id",), "nextItemId"),
        Planted("items", same["id"], ("previous_item_id", "next_item_id"), "ItemId"),
        Planted("items", selfish["id"], ("previous_item_id",), "previousItemId"),
        Planted(
            "items",
            homeless["id"],
            ("place_id",),
            "placeId",
            also=(("confirmed_place", False), ("uncertain_place", True)),
        ),
        Planted("samples", orphan["id"], ("timeline_item_id",), "timelineItemId"),
    ]


@dataclass(frozen=True)
class Invalid:
    """A record planted in an archive that validation must refuse: where, and which field."""

    file: str
    index: int
    field: str  # the key the report must name (its last part, e.g. "endDate")
    what: str


def plant_invalid_records(archive: ArcArchive, timeline: Timeline) -> list[Invalid]:
    """Append one record per kind of SPEC 11 validation failure; each has one problem.

    Missing id, wrong type, end before start, latitude out of range, an activity type
    LocoKit2 does not know, duplicate id. The duplicates repeat a record of the timeline
    later in the archive's order with the same lastSaved and different content (SPEC 4:
    the only copies that are an error), so the timeline's record is the first occurrence.
    """
    planted: list[Invalid] = []

    def plant(path: str, obj: Any, field_name: str, what: str) -> None:
        file, index = archive.add(path, obj)
        planted.append(Invalid(file, index, field_name, what))

    saved = "2024-12-01T00:00:00Z"
    place = {"name": "x", "latitude": 1.5, "longitude": 2.5, "lastSaved": saved}
    plant("places/0.json", dict(place), "id", "missing id")
    plant("places/B.json", {**place, "id": id_starting("b"), "latitude": 91.0}, "latitude", "range")
    plant(
        "places/C.json", {**place, "id": id_starting("c"), "longitude": "east"}, "longitude", "type"
    )
    base = {"isVisit": True, "startDate": "2024-12-02T10:00:00Z", "endDate": "2024-12-02T11:00:00Z"}
    plant("items/2024-12.json", {"base": dict(base), "visit": {}}, "id", "missing id")
    plant(
        "items/2024-12.json",
        {"base": {**base, "id": new_id(), "endDate": "2024-12-02T09:59:59Z"}, "visit": {}},
        "endDate",
        "end before start",
    )
    plant(
        "items/2024-12.json",
        {"base": {**base, "id": new_id()}, "visit": {"latitude": -90.5}},
        "latitude",
        "range",
    )
    plant(
        "items/2024-12.json",
        {"base": {**base, "id": new_id(), "isVisit": "yes"}},
        "isVisit",
        "type",
    )
    sample = {"date": "2024-12-31T10:00:00Z", "latitude": 1.0, "longitude": 1.0}
    last = sorted(p for p in archive.files if p.startswith("samples/"))[-1]
    plant(last, {**sample, "id": new_id(), "speed": "fast"}, "speed", "type")
    plant(last, {**sample, "id": new_id(), "date": "yesterday"}, "date", "type")
    plant(last, {**sample, "id": new_id(), "latitude": 100.0}, "latitude", "range")
    plant(last, {**sample, "id": 12345}, "id", "type")
    # 7 was never a LocoKit2 activity type (6 is airplane, 20 train, 21 bus).
    plant(
        last,
        {**sample, "id": new_id(), "classifiedActivityType": 7},
        "classifiedActivityType",
        "activity type",
    )
    trip = {**base, "isVisit": False, "id": new_id()}
    plant(
        "items/2024-12.json",
        {"base": trip, "trip": {"confirmedActivityType": 99, "uncertainActivityType": False}},
        "confirmedActivityType",
        "activity type",
    )
    # Duplicates: a timeline record again, later in the archive, as new but different.
    first_sample = min((archive.where("samples", s["id"])[0], s["id"]) for s in timeline.samples)[1]
    path, index = archive.where("samples", first_sample)[0]
    original = archive.files[path][index]
    plant(last, {**original, "id": first_sample.upper(), "latitude": 1.0}, "id", "duplicate")
    first_place = timeline.places[0]["id"]
    path, index = archive.where("places", first_place)[0]
    plant(path, {**archive.files[path][index], "name": "another name"}, "id", "duplicate")
    return planted


# --- what the database must hold -----------------------------------------------------------------


def expected_rows(
    timeline: Timeline, *, nulled: Iterable[Planted] = ()
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every column of every record as the live tables must hold it, by kind and id."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in KINDS:
        out[kind] = {
            r["id"]: {column: r.get(column) for column in COLUMNS[kind]} for r in timeline.of(kind)
        }
    for planted in nulled:
        for column in planted.columns:
            out[planted.kind][planted.record_id][column] = None
        for column, value in planted.also:
            out[planted.kind][planted.record_id][column] = value
    return out


def load_account(database_url: str, account_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of the account by kind and id, UUIDs as lower-case text."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    with raw_connection(database_url) as conn, conn.cursor(row_factory=dict_row) as cursor:
        for kind, table in TABLES.items():
            cursor.execute(f"SELECT * FROM {table} WHERE account_id = %s", (account_id,))
            found = {}
            for row in cursor:
                clean = {
                    k: (str(v).lower() if isinstance(v, uuid.UUID) else v) for k, v in row.items()
                }
                clean.pop("account_id")
                # Change tracking and undo marks, not the record's data.
                clean.pop("written_xid", None)
                clean.pop("created_xid", None)
                found[clean["id"]] = clean
            rows[kind] = found
    return rows


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(want, float) and isinstance(got, float) and want == got
    if isinstance(want, datetime) or isinstance(got, datetime):
        # Instants: the database returns them in its session time zone.
        return isinstance(want, datetime) and isinstance(got, datetime) and want == got
    return type(want) is type(got) and want == got


def assert_rows_match(
    expected: Mapping[str, Mapping[str, Mapping[str, Any]]],
    actual: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> None:
    """The account holds exactly the expected records, every column equal."""
    for kind in KINDS:
        want, got = expected[kind], actual[kind]
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert not missing and not extra, (
            f"{kind}: {len(missing)} missing {missing[:3]}, {len(extra)} unexpected {extra[:3]}"
        )
        for record_id, columns in want.items():
            row = got[record_id]
            for column, value in columns.items():
                assert column in row, f"{kind} {record_id}: no column {column}"
                assert _same(value, row[column]), (
                    f"{kind} {record_id} {column}: database holds {row[column]!r},"
                    f" the archive says {value!r}"
                )


def keepers_of(timeline: Timeline, *, nulled: Iterable[Planted] = ()) -> dict[str, bool]:
    """SPEC 3 keeper status of each item, from the timeline (after nulled references)."""
    rows = expected_rows(timeline, nulled=nulled)
    counts: dict[str, int] = {}
    for sample in rows["samples"].values():
        if sample["timeline_item_id"] is not None:
            counts[sample["timeline_item_id"]] = counts.get(sample["timeline_item_id"], 0) + 1
    out = {}
    for item_id, item in rows["items"].items():
        seconds = (item["end_date"] - item["start_date"]).total_seconds()
        if item["is_visit"]:
            out[item_id] = seconds >= 120
        else:
            out[item_id] = seconds >= 60 and counts.get(item_id, 0) >= 2
    return out


def account_digest(database_url: str, account_id: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of the rows' text in id order) of each live table, for one account."""
    out = {}
    with raw_connection(database_url) as conn:
        for table in TABLES.values():
            row = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), ''))"
                f" FROM {table} t WHERE t.account_id = %s",
                (account_id,),
            ).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def staging_tables(database_url: str, job_id: str) -> list[str]:
    """Tables left in the ferry_staging schema whose name carries the job's id."""
    with raw_connection(database_url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'ferry_staging'"
            " AND tablename LIKE %s",
            (f"%{job_id.replace('-', '')}%",),
        ).fetchall()
    return [r[0] for r in rows]


def insert_timeline(database_url: str, account_id: str, timeline: Timeline) -> None:
    """Write a timeline into an account directly (items first without edges, then edges)."""
    with raw_connection(database_url) as conn:
        for kind in KINDS:
            columns = COLUMNS[kind]
            names = ", ".join(("account_id", *columns))
            marks = ", ".join(["%s"] * (len(columns) + 1))
            for record in timeline.of(kind):
                values = [
                    None
                    if kind == "items" and c in ("previous_item_id", "next_item_id")
                    else record.get(c)
                    for c in columns
                ]
                conn.execute(
                    f"INSERT INTO {TABLES[kind]} ({names}) VALUES ({marks})", (account_id, *values)
                )
        for record in timeline.items:
            conn.execute(
                "UPDATE timeline_items SET previous_item_id = %s, next_item_id = %s"
                " WHERE account_id = %s AND id = %s",
                (
                    record.get("previous_item_id"),
                    record.get("next_item_id"),
                    account_id,
                    record["id"],
                ),
            )
        conn.commit()


# --- running jobs in-process --------------------------------------------------------------------


@dataclass
class InProcess:
    """Import and export jobs run in this process: real Postgres and storage, memory live store."""

    settings: Settings
    engine: Engine
    live: MemoryLiveStore = field(default_factory=MemoryLiveStore)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)

    @property
    def store(self) -> JobStore:
        return JobStore(self.engine)

    @property
    def storage(self) -> LocalStorage:
        return LocalStorage(self.settings.storage_root)

    def service(self) -> JobService:
        """What the web API and the CLI call."""
        return JobService(
            pipelines=PIPELINES,
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
        )

    def runner(self, pipeline: Any = None, *, settings: Settings | None = None) -> JobRunner:
        """A runner with the real pipelines (or `pipeline` for imports)."""
        return JobRunner(
            settings=settings or self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
            pipelines={
                JobType.IMPORT_ARCHIVE.value: pipeline or ImportArchive(),
                JobType.EXPORT_ARCHIVE.value: ExportArchive(),
            },
            name="test-worker",
        )

    def submit(
        self,
        account_id: str,
        archive: Path,
        *,
        confirm: bool = False,
        on_conflict: str = "skip",
        skip_invalid: bool = False,
    ) -> str:
        """Store the upload under a new job's id and record the job (as the API does)."""
        job_id = str(uuid.uuid4())
        upload = self.storage.upload_path(job_id)
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_bytes(archive.read_bytes())
        params = ImportArchiveParams(
            confirm=confirm,
            on_conflict=on_conflict,
            skip_invalid=skip_invalid,
            filename=archive.name,
            bytes=upload.stat().st_size,
        )
        self.store.create(
            account_id=account_id,
            type=JobType.IMPORT_ARCHIVE,
            params=params.to_json(),
            job_id=job_id,
        )
        return job_id

    def run(self, job_id: str, pipeline: Any = None, *, settings: Settings | None = None) -> Job:
        """Run one attempt (waiting out a retry delay); the job row afterwards."""
        runner = self.runner(pipeline, settings=settings)
        wait_for(
            lambda: runner.run(job_id), timeout=60, interval=0.05, what=f"an attempt of {job_id}"
        )
        return self.store.get(job_id)

    def import_archive(self, account_id: str, archive: Path, **params: Any) -> Job:
        """Submit an import and run its first attempt."""
        return self.run(self.submit(account_id, archive, **params))

    def confirm(self, job_id: str, account_id: str, *, skip_invalid: bool = False) -> Job:
        """Confirm an awaiting import (as the API does) and run it."""
        self.service().confirm(job_id, account_id=account_id, skip_invalid=skip_invalid)
        return self.run(job_id)

    def export(self, account_id: str, **params: Any) -> Path:
        """A full export of the account (ExportArchiveParams as keywords); the zip's path."""
        job, _ = self.store.create(
            account_id=account_id,
            type=JobType.EXPORT_ARCHIVE,
            params=ExportArchiveParams(**params).to_json(),
        )
        done = self.run(job.id)
        assert done.status == "succeeded", done.error
        assert done.result is not None
        return self.storage.path(done.result["key"])
