"""Verifying an archive (SPEC 4) against the database it came from, record by record.

Reusable by every tier that holds a zip: the export tests check what Ferry wrote, and the
import round-trip tests check what they feed back in. Everything here is written from the
SPEC, not from the exporter's code: buckets, weeks and range rules are recomputed in plain
Python, so a bug shared by the exporter's helpers cannot hide here.

    archive = check_archive(zip_path_or_bytes, database_url, account_id)

raises `ArchiveMismatch` (an AssertionError, so pytest reports it as a failure) naming the
file, record and field that differ, and returns the parsed `Archive` on success.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from shared import __version__
from shared.archive.keepers import is_keeper
from shared.archive.records import decode_item, decode_place, decode_sample
from shared.fields import (
    ITEM_BASE_FIELDS,
    PLACE_FIELDS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Field,
    Kind,
)
from shared.store.db import raw_connection
from shared.timefmt import parse_iso

KINDS = ("places", "items", "samples")
SCHEMA_VERSION = "2.4.0"
FOLDER_FORMAT = "export-%Y-%m-%d-%H%M%S"
_FOLDER = re.compile(r"^export-\d{4}-\d{2}-\d{2}-\d{6}$")
_DATA_NAME = {
    "places": re.compile(r"^(?P<bucket>[0-9A-F])\.json(?P<gz>\.gz)?$"),
    "items": re.compile(r"^(?P<bucket>\d{4}-(0[1-9]|1[0-2]))\.json(?P<gz>\.gz)?$"),
    "samples": re.compile(r"^(?P<bucket>\d{4}-W(0[1-9]|[1-4]\d|5[0-3]))\.json(?P<gz>\.gz)?$"),
}
_CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")
_UPPER_UUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TABLES = {"places": "places", "items": "timeline_items", "samples": "samples"}


class ArchiveMismatch(AssertionError):
    """Raised when an archive breaks SPEC 4 or differs from the database."""


def _require(condition: object, message: str) -> None:
    if not condition:
        raise ArchiveMismatch(message)


@dataclass(frozen=True)
class Expected:
    """The ids (lower case) each folder of an archive must hold, no more and no fewer."""

    places: frozenset[str]
    items: frozenset[str]
    samples: frozenset[str]

    def of(self, kind: str) -> frozenset[str]:
        """The ids of one kind."""
        ids: frozenset[str] = getattr(self, kind)
        return ids


@dataclass
class Archive:
    """A parsed archive: its folder, metadata, manifest and every record by kind and id."""

    folder: str
    metadata: dict[str, Any]
    manifest: dict[str, Any]
    infos: dict[str, zipfile.ZipInfo]  # member path inside the folder -> zip entry
    stored: dict[str, bytes]  # data file path inside the folder -> bytes as stored
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    located: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> id -> file

    def data_files(self, kind: str | None = None) -> list[str]:
        """Paths (inside the folder) of the data files, optionally of one folder only."""
        return sorted(p for p in self.stored if kind is None or p.startswith(kind + "/"))

    def ids(self, kind: str) -> set[str]:
        """Ids (lower case) of the records of one kind."""
        return set(self.records[kind])

    def stats(self) -> dict[str, int]:
        """Record counts as metadata.json's `stats` states them."""
        return {
            "placeCount": len(self.records["places"]),
            "itemCount": len(self.records["items"]),
            "sampleCount": len(self.records["samples"]),
        }


# --- reading and structural checks -----------------------------------------------------------


def _open_zip(source: Path | str | bytes) -> zipfile.ZipFile:
    if isinstance(source, bytes | bytearray):
        return zipfile.ZipFile(io.BytesIO(source))
    return zipfile.ZipFile(source)


def _is_date_string(value: Any) -> bool:
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        parse_iso(value)
    except ValueError:
        return False
    return True


def _check_fields(
    where: str, obj: Any, fields: Iterable[Field], extra: Mapping[str, Kind] | None = None
) -> None:
    """Keys camelCase and known, no nulls, dates ISO with Z, UUIDs upper case."""
    _require(isinstance(obj, dict), f"{where}: not a JSON object: {obj!r}")
    kinds = {f.key: f.kind for f in fields}
    kinds.update(extra or {})
    for key, value in obj.items():
        _require(_CAMEL.match(key), f"{where}: key {key!r} is not camelCase")
        _require(key in kinds, f"{where}: key {key!r} is not a field of SPEC 4")
        _require(value is not None, f"{where}: {key} is null (null fields must be omitted)")
        kind = kinds[key]
        if kind is Kind.DATE:
            _require(_is_date_string(value), f"{where}: {key}={value!r} is not ISO 8601 UTC ...Z")
        elif kind is Kind.UUID:
            _require(
                isinstance(value, str) and _UPPER_UUID.match(value),
                f"{where}: {key}={value!r} is not an upper-case UUID",
            )


def _check_always(where: str, obj: dict[str, Any], fields: Iterable[Field]) -> None:
    """Every key the Arc apps require is there (SPEC 4: "always written, never null")."""
    missing = [f.key for f in fields if f.always and f.key not in obj]
    _require(not missing, f"{where}: lacks {missing}, which the Arc apps require")


def _week_of(moment: datetime) -> str:
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year:04d}-W{week:02d}"


def _record_id(kind: str, obj: dict[str, Any]) -> str:
    raw = obj["base"]["id"] if kind == "items" else obj["id"]
    return str(raw).lower()


def _check_record(kind: str, where: str, bucket: str, obj: Any) -> None:
    """One record's shape and its bucket (SPEC 4)."""
    if kind == "places":
        _check_fields(where, obj, PLACE_FIELDS)
        _check_always(where, obj, PLACE_FIELDS)
        _require(
            obj["id"][0].upper() == bucket,
            f"{where}: place {obj['id']} belongs in places/{obj['id'][0].upper()}, not {bucket}",
        )
    elif kind == "items":
        _require(isinstance(obj, dict), f"{where}: not a JSON object")
        _require(isinstance(obj.get("base"), dict), f"{where}: item without a base object")
        base = obj["base"]
        _check_fields(where + " base", base, ITEM_BASE_FIELDS)
        _require("id" in base and "startDate" in base, f"{where}: base lacks id or startDate")
        is_visit = base.get("isVisit")
        _require(isinstance(is_visit, bool), f"{where}: base.isVisit missing or not a boolean")
        detail_key = "visit" if is_visit else "trip"
        _require(
            set(obj) == {"base", detail_key},
            f"{where}: item keys {sorted(obj)}; expected base and {detail_key}",
        )
        detail_fields = VISIT_FIELDS if is_visit else TRIP_FIELDS
        detail = obj[detail_key]
        _check_fields(f"{where} {detail_key}", detail, detail_fields, {"itemId": Kind.UUID})
        _require(
            detail.get("itemId") == base["id"],
            f"{where}: {detail_key}.itemId {detail.get('itemId')!r} != base.id {base['id']!r}",
        )
        _check_always(f"{where} base", base, ITEM_BASE_FIELDS)
        _check_always(f"{where} {detail_key}", detail, detail_fields)
        month = parse_iso(base["startDate"]).astimezone(UTC).strftime("%Y-%m")
        _require(
            month == bucket,
            f"{where}: item {base['id']} starts {base['startDate']}: belongs in items/{month}",
        )
    else:
        _check_fields(where, obj, SAMPLE_FIELDS)
        _check_always(where, obj, SAMPLE_FIELDS)
        week = _week_of(parse_iso(obj["date"]))
        _require(
            week == bucket,
            f"{where}: sample {obj['id']} dated {obj['date']}: belongs in samples/{week}",
        )


def _expects_gzip(compress: str, kind: str) -> bool:
    return compress == "all" or (compress == "samples" and kind == "samples")


def read_archive(source: Path | str | bytes, *, compress: str | None = "samples") -> Archive:
    """Parse an archive and check everything that needs no database.

    `compress` is the export option (samples/all/none) whose layout the files must follow;
    None accepts either form in every folder (archives not written by Ferry).
    """
    with _open_zip(source) as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos if not i.is_dir()]
        _require(names, "the zip is empty")
        tops = {name.split("/", 1)[0] for name in names}
        _require(len(tops) == 1, f"the zip must hold one top-level folder, found {sorted(tops)}")
        folder = tops.pop()
        _require(_FOLDER.match(folder), f"folder {folder!r} is not export-YYYY-MM-DD-HHmmss")
        _require(
            all("/" in n for n in names),
            f"files outside the folder: {[n for n in names if '/' not in n]}",
        )
        counted = Counter(names)
        _require(
            all(c == 1 for c in counted.values()),
            f"duplicate zip members: {[n for n, c in counted.items() if c > 1]}",
        )
        by_path = {i.filename.split("/", 1)[1]: i for i in infos if not i.is_dir()}
        _require("metadata.json" in by_path, "metadata.json is missing")
        _require("manifest.json" in by_path, "manifest.json is missing")
        metadata = json.loads(archive.read(by_path["metadata.json"]))
        manifest = json.loads(archive.read(by_path["manifest.json"]))
        stored: dict[str, bytes] = {}
        for path, info in by_path.items():
            if path in ("metadata.json", "manifest.json"):
                continue
            kind, _, name = path.partition("/")
            _require(kind in KINDS and "/" not in name, f"unexpected file {path!r} in the archive")
            match = _DATA_NAME[kind].match(name)
            _require(match, f"{path}: not a valid {kind} bucket file name")
            stored[path] = archive.read(info)
            if path.endswith(".gz"):
                _require(
                    info.compress_type == zipfile.ZIP_STORED,
                    f"{path}: gzipped member must be stored, not compressed again",
                )
    result = Archive(
        folder=folder,
        metadata=metadata,
        manifest=manifest,
        infos=by_path,
        stored=stored,
        records={kind: {} for kind in KINDS},
        located={kind: {} for kind in KINDS},
    )
    for path in sorted(stored):
        kind, _, name = path.partition("/")
        match = _DATA_NAME[kind].match(name)
        assert match is not None
        gz = match["gz"] is not None
        if compress is not None:
            _require(
                gz == _expects_gzip(compress, kind),
                f"{path}: compress={compress!r} wants {kind} "
                f"{'gzipped' if _expects_gzip(compress, kind) else 'plain'}",
            )
        data = stored[path]
        if gz:
            _require(data[:2] == b"\x1f\x8b", f"{path}: named .gz but not gzip data")
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise ArchiveMismatch(f"{path}: corrupt gzip ({exc})") from None
        try:
            array = json.loads(data)
        except ValueError as exc:
            raise ArchiveMismatch(f"{path}: not valid JSON ({exc})") from None
        _require(isinstance(array, list), f"{path}: not a JSON array")
        _require(array, f"{path}: an empty bucket file (empty buckets are not written)")
        for index, obj in enumerate(array):
            where = f"{path}[{index}]"
            _check_record(kind, where, match["bucket"], obj)
            record_id = _record_id(kind, obj)
            _require(
                record_id not in result.records[kind],
                f"{where}: {kind} id {record_id} appears twice"
                f" (also in {result.located[kind].get(record_id)})",
            )
            result.records[kind][record_id] = obj
            result.located[kind][record_id] = path
    _check_manifest(result)
    return result


def _check_manifest(archive: Archive) -> None:
    """manifest.json lists every data file with records, bytes and sha256 as stored."""
    files: Any = archive.manifest.get("files")
    _require(isinstance(files, list), "manifest.json: `files` must be a list")
    listed: dict[str, dict[str, Any]] = {}
    for entry in files:
        _require(
            isinstance(entry, dict) and {"path", "records", "bytes", "sha256"} <= set(entry),
            f"manifest.json: entry {entry!r} lacks path, records, bytes or sha256",
        )
        path = entry["path"]
        _require(path not in listed, f"manifest.json lists {path} twice")
        listed[path] = entry
    _require(
        set(listed) == set(archive.stored),
        "manifest.json and the data files differ: "
        f"unlisted {sorted(set(archive.stored) - set(listed))},"
        f" missing {sorted(set(listed) - set(archive.stored))}",
    )
    for path, entry in listed.items():
        data = archive.stored[path]
        kind = path.partition("/")[0]
        records = sum(1 for p in archive.located[kind].values() if p == path)
        _require(
            entry["records"] == records, f"manifest {path}: records {entry['records']} != {records}"
        )
        _require(
            entry["bytes"] == len(data), f"manifest {path}: bytes {entry['bytes']} != {len(data)}"
        )
        _require(_SHA256.match(str(entry["sha256"])), f"manifest {path}: sha256 not lower hex")
        digest = hashlib.sha256(data).hexdigest()
        _require(entry["sha256"] == digest, f"manifest {path}: sha256 does not match the file")


def check_metadata(
    archive: Archive,
    *,
    export_type: str = "full",
    start: datetime | None = None,
    end: datetime | None = None,
    job_id: str | None = None,
) -> None:
    """metadata.json as SPEC 4 describes it, for a finished export."""
    meta = archive.metadata
    where = "metadata.json"
    _require(isinstance(meta, dict), f"{where}: not an object")
    _require(
        meta.get("schemaVersion") == SCHEMA_VERSION,
        f"{where}: schemaVersion {meta.get('schemaVersion')!r}",
    )
    _require(
        meta.get("exportMode") == "bucketed", f"{where}: exportMode {meta.get('exportMode')!r}"
    )
    _require(
        meta.get("exportType") == export_type,
        f"{where}: exportType {meta.get('exportType')!r}, expected {export_type!r}",
    )
    export_id: Any = meta.get("exportId")
    _require(
        isinstance(export_id, str) and _UPPER_UUID.match(export_id.upper()),
        f"{where}: exportId {export_id!r} is not a UUID",
    )
    if job_id is not None:
        _require(
            export_id.lower() == job_id.lower(), f"{where}: exportId {export_id} != job {job_id}"
        )
    started: Any = meta.get("sessionStartDate")
    finished: Any = meta.get("sessionFinishDate")
    _require(_is_date_string(started), f"{where}: sessionStartDate {started!r}")
    _require(
        _is_date_string(finished), f"{where}: sessionFinishDate {finished!r} (export finished)"
    )
    _require(parse_iso(finished) >= parse_iso(started), f"{where}: finished before it started")
    _require(
        parse_iso(started).strftime(FOLDER_FORMAT) == archive.folder,
        f"{where}: folder {archive.folder} is not the UTC start time {started}",
    )
    for flag in ("placesCompleted", "itemsCompleted", "samplesCompleted"):
        _require(meta.get(flag) is True, f"{where}: {flag} is {meta.get(flag)!r}, not true")
    _require(
        meta.get("stats") == archive.stats(),
        f"{where}: stats {meta.get('stats')} != records in the files {archive.stats()}",
    )
    app: Any = meta.get("appMetadata")
    _require(isinstance(app, dict), f"{where}: appMetadata is not an object")
    _require(
        all(isinstance(k, str) and isinstance(v, str) for k, v in app.items()),
        f"{where}: appMetadata must map strings to strings: {app!r}",
    )
    _require("Ferry" in app.values(), f"{where}: appMetadata does not name Ferry: {app!r}")
    _require(__version__ in app.values(), f"{where}: appMetadata lacks version {__version__}")
    if start is None and end is None:
        _require("exportRange" not in meta, f"{where}: exportRange without a range asked for")
    else:
        found: Any = meta.get("exportRange")
        _require(isinstance(found, dict), f"{where}: exportRange missing for a range export")
        for key, bound in (("start", start), ("end", end)):
            if bound is not None:
                _require(
                    _is_date_string(found.get(key)) and parse_iso(found[key]) == bound,
                    f"{where}: exportRange.{key} {found.get(key)!r} != {bound.isoformat()}",
                )


# --- the database side ---------------------------------------------------------------------


def load_rows(database_url: str, account_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of the account, by kind and id (lower case), as the database holds it."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    with raw_connection(database_url) as conn, conn.cursor(row_factory=dict_row) as cursor:
        for kind, table in _TABLES.items():
            cursor.execute(f"SELECT * FROM {table} WHERE account_id = %s", (account_id,))
            rows[kind] = {str(r["id"]).lower(): r for r in cursor}
    return rows


def select_expected(
    rows: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Expected:
    """The ids an export must hold (SPEC 4), from the account's rows.

    Full: everything. Range [start, end): samples dated in it, items overlapping it (an
    instant item counts when it lies in it), the places those items reference. (What an
    incremental export holds depends on what was written when: its tests say.)
    """
    if start is not None or end is not None:

        def overlaps(item: Mapping[str, Any]) -> bool:
            s, e = item["start_date"], item["end_date"]
            before_end = end is None or s < end
            after_start = start is None or e > start or s == e == start
            return before_end and after_start

        items = {i for i, row in rows["items"].items() if overlaps(row)}
        places = {
            str(rows["items"][i]["place_id"]).lower()
            for i in items
            if rows["items"][i]["place_id"] is not None
        }
        samples = {
            i
            for i, row in rows["samples"].items()
            if (start is None or row["date"] >= start) and (end is None or row["date"] < end)
        }
        return Expected(frozenset(places), frozenset(items), frozenset(samples))
    return Expected(frozenset(rows["places"]), frozenset(rows["items"]), frozenset(rows["samples"]))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        # Exact: the archive must carry the stored double, not a rounding of it.
        return isinstance(a, float) and isinstance(b, float) and a == b
    return bool(a == b) and type(a) is type(b)


def _compare(
    where: str, decoded: Mapping[str, Any], row: Mapping[str, Any], columns: Iterable[str]
) -> None:
    for column in columns:
        want = row[column]
        if _KIND_OF[column] is Kind.UUID and want is not None:
            want = str(want).lower()
        got = decoded.get(column)
        _require(
            _same(got, want),
            f"{where}: {column} is {got!r} in the archive, {want!r} in the database",
        )


_COLUMNS = {
    "places": tuple(f.column for f in PLACE_FIELDS),
    "visit": tuple(f.column for f in ITEM_BASE_FIELDS + VISIT_FIELDS),
    "trip": tuple(f.column for f in ITEM_BASE_FIELDS + TRIP_FIELDS),
    "samples": tuple(f.column for f in SAMPLE_FIELDS),
}
_KIND_OF = {
    f.column: f.kind
    for f in PLACE_FIELDS + ITEM_BASE_FIELDS + VISIT_FIELDS + TRIP_FIELDS + SAMPLE_FIELDS
}
_DECODE = {"places": decode_place, "items": decode_item, "samples": decode_sample}


def compare_records(
    archive: Archive,
    rows: Mapping[str, Mapping[str, Mapping[str, Any]]],
    expected: Expected,
    *,
    references_resolve: bool = False,
) -> None:
    """The archive holds exactly `expected`, and every record equals its row field for field."""
    for kind in KINDS:
        found, wanted = archive.ids(kind), set(expected.of(kind))
        _require(
            found == wanted,
            f"{kind}: {len(found)} in the archive, {len(wanted)} expected;"
            f" extra {sorted(found - wanted)[:5]}, missing {sorted(wanted - found)[:5]}",
        )
        for record_id, obj in archive.records[kind].items():
            where = f"{archive.located[kind][record_id]} {kind} {record_id}"
            row = rows[kind].get(record_id)
            _require(row is not None, f"{where}: not a row of this account")
            assert row is not None
            decoded, problems = _DECODE[kind](obj)
            _require(not problems, f"{where}: does not decode: {problems}")
            if kind == "items":
                columns = _COLUMNS["visit" if row["is_visit"] else "trip"]
            else:
                columns = _COLUMNS[kind]
            _compare(where, decoded, row, columns)
    if references_resolve:
        items, places = archive.records["items"], archive.records["places"]
        for record_id, obj in items.items():
            base = obj["base"]
            for key in ("previousItemId", "nextItemId"):
                if key in base:
                    _require(
                        base[key].lower() in items, f"item {record_id}: {key} does not resolve"
                    )
            place = obj.get("visit", {}).get("placeId")
            if place is not None:
                _require(place.lower() in places, f"item {record_id}: placeId does not resolve")
        for record_id, obj in archive.records["samples"].items():
            item = obj.get("timelineItemId")
            if item is not None:
                _require(
                    item.lower() in items, f"sample {record_id}: timelineItemId does not resolve"
                )


def check_archive(
    source: Path | str | bytes,
    database_url: str,
    account_id: str,
    *,
    export_type: str = "full",
    start: datetime | None = None,
    end: datetime | None = None,
    expected: Expected | None = None,
    compress: str | None = "samples",
    job_id: str | None = None,
) -> Archive:
    """Check an export archive against the account's rows; returns the parsed archive.

    The expected ids are `expected` when given (an incremental export's test knows what
    it changed), else SPEC 4's rule for a full export or a range export (`start`/`end`).
    """
    archive = read_archive(source, compress=compress)
    check_metadata(archive, export_type=export_type, start=start, end=end, job_id=job_id)
    rows = load_rows(database_url, account_id)
    if expected is None:
        expected = select_expected(rows, start=start, end=end)
    full = start is None and end is None and export_type == "full"
    compare_records(archive, rows, expected, references_resolve=full)
    return archive


# --- keepers (SPEC 3) ------------------------------------------------------------------------


def keepers_from_archive(archive: Archive) -> dict[str, bool]:
    """Keeper status of every item in the archive, from its dates and its samples there."""
    counts = Counter(
        str(s["timelineItemId"]).lower()
        for s in archive.records["samples"].values()
        if "timelineItemId" in s
    )
    return {
        item_id: is_keeper(
            is_visit=obj["base"]["isVisit"],
            start=parse_iso(obj["base"]["startDate"]),
            end=parse_iso(obj["base"]["endDate"]),
            sample_count=counts[item_id],
        )
        for item_id, obj in archive.records["items"].items()
    }


def keepers_from_db(database_url: str, account_id: str) -> dict[str, bool]:
    """Keeper status of every item of the account, computed in SQL from SPEC 3's rule."""
    with raw_connection(database_url) as conn:
        rows = conn.execute(
            "SELECT i.id, CASE WHEN i.is_visit"
            " THEN extract(epoch FROM i.end_date - i.start_date) >= 120"
            " ELSE extract(epoch FROM i.end_date - i.start_date) >= 60"
            "  AND (SELECT count(*) FROM samples s WHERE s.account_id = i.account_id"
            "       AND s.timeline_item_id = i.id) >= 2 END"
            " FROM timeline_items i WHERE i.account_id = %s",
            (account_id,),
        ).fetchall()
    return {str(item_id).lower(): bool(keeper) for item_id, keeper in rows}
