"""Would the Arc apps import this archive whole? Read the way LocoKit2's ImportManager does.

From ImportExport/ImportManager.swift, SampleImportProcessor.swift, EdgeRecordManager.swift,
Extensions/Data+Compression.swift and Database/Database+Schema.swift at 68c0a86:

- `metadata.json` must decode as ExportMetadata, and `places/`, `items/`, `samples/` must
  exist, or the import stops before it starts.
- Each data file is decoded in one go as `[Place]`, `[TimelineItem]`, `[LocomotionSample]`:
  one record that fails drops the **whole file** (the error is logged and the import goes
  on with the next file). Hidden files are skipped; `places/` and `items/` are read only
  from files whose extension is `json`, `samples/` from `json` or `gz`.
- A `.gz` sample file must be one gzip member as `gzipDecompressed()` parses it: the
  header, raw deflate data up to the 8-byte trailer, CRC-32 and size that match.
- Rows are then written with INSERT OR IGNORE, so a row that breaks a NOT NULL or CHECK
  rule, or repeats an id, is dropped without a word: a place with an empty name; a
  visit whose place flags or coordinates break the rules (after the import itself has
  detached it from a place that is not in the database: placeId nil, not confirmed,
  uncertain); an empty customTitle; a trip whose activity flags break the rules.
- A visit or trip part whose itemId is not its base's id breaks a deferred foreign key:
  the batch of 500 items fails, and with it the rest of the file.
- A sample on a deleted item trips a RAISE(ABORT) guard trigger: its batch of 1000
  fails, and with it the rest of the file. (A sample on an item that is not there is
  orphaned and kept; a sample whose disabled flag differs from its item's is set right.)
- Edges are restored afterwards only to items that exist and are not deleted; an edge
  the CHECK rules refuse (to itself, previous == next) is skipped.

`check_folder` reports every record the apps would lose, with file, index and reason;
`stored` holds what they would keep, decoded, for field-by-field comparisons.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.arc.swift import (
    BASE,
    EXTENSION_STATE,
    METADATA,
    PLACE,
    SAMPLE,
    STATS,
    TRIP,
    VISIT,
    decode_struct,
    object_pairs,
    refuse_constant,
)

KINDS = ("places", "items", "samples")
ITEM_BATCH = 500  # ImportManager.importTimelineItems
SAMPLE_BATCH = 1000  # ImportManager.importSamples


@dataclass(frozen=True)
class Failure:
    """A record (or, with index None, a file) the apps would not import, and why."""

    file: str
    index: int | None
    reason: str

    def __str__(self) -> str:
        where = self.file if self.index is None else f"{self.file}[{self.index}]"
        return f"{where}: {self.reason}"


@dataclass
class Conformance:
    """What the apps would do with an archive folder."""

    failures: list[Failure] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # kind -> id -> the record as the apps would store it (decoded values)
    stored: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    files: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    def fail(self, file: str, index: int | None, reason: str) -> None:
        """Note one failure."""
        self.failures.append(Failure(file, index, reason))

    @property
    def ok(self) -> bool:
        """Whether the apps would import every record."""
        return not self.failures

    def report(self, limit: int = 20) -> str:
        """The first failures, one per line, and how many there are."""
        lines = [str(f) for f in self.failures[:limit]]
        if len(self.failures) > limit:
            lines.append(f"… {len(self.failures) - limit} more")
        return f"{len(self.failures)} failure(s):\n  " + "\n  ".join(lines)


def _parse(data: bytes) -> Any:
    return json.loads(data, object_pairs_hook=object_pairs, parse_constant=refuse_constant)


def gunzip_like_the_apps(data: bytes) -> bytes:
    """`Data.gzipDecompressed()`: one member, trailer checked; ValueError with the reason."""
    if len(data) < 18 or data[:3] != b"\x1f\x8b\x08":
        raise ValueError("not a gzip stream the apps read (magic, method or size)")
    flags, offset = data[3], 10
    if flags & 0x04:
        offset += 2 + int.from_bytes(data[offset : offset + 2], "little")
    for bit in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
        if flags & bit:
            offset = data.index(b"\x00", offset) + 1
    if flags & 0x02:
        offset += 2
    if offset >= len(data) - 8:
        raise ValueError("gzip header runs into the trailer")
    crc, size = struct.unpack("<II", data[-8:])
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data[offset:-8]) + inflater.flush()
    except zlib.error as exc:
        raise ValueError(f"deflate data does not decompress ({exc})") from None
    if not inflater.eof or inflater.unused_data:
        raise ValueError("not exactly one deflate stream before the trailer (several members?)")
    if len(out) & 0xFFFFFFFF != size or zlib.crc32(out) != crc:
        raise ValueError("gzip trailer does not match (checksumMismatch)")
    return out


def _files(folder: Path, extensions: tuple[str, ...], result: Conformance, kind: str) -> list[Path]:
    """The files of a folder the apps read, sorted by name; the others are failures."""
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.startswith("."):
            continue  # .skipsHiddenFiles
        relative = f"{kind}/{path.name}"
        if path.suffix.lstrip(".") in extensions and path.is_file():
            found.append(path)
        else:
            result.fail(relative, None, f"not read by the apps (only {extensions} files are)")
    return found


def _array(path: Path, relative: str, result: Conformance, *, gz: bool = False) -> list[Any] | None:
    data = path.read_bytes()
    try:
        if gz:
            data = gunzip_like_the_apps(data)
        array = _parse(data)
    except (ValueError, UnicodeDecodeError) as exc:
        result.fail(relative, None, f"the file does not decode, all of it is lost: {exc}")
        return None
    if not isinstance(array, list):
        result.fail(relative, None, "not a JSON array, all of it is lost")
        return None
    return array


def _whole_file(result: Conformance, relative: str, bad: dict[int, list[str]], total: int) -> bool:
    """Report the records that fail to decode; whether the file survives decoding."""
    for index, reasons in sorted(bad.items()):
        result.fail(relative, index, "; ".join(reasons) + f" (the apps drop all {total} records)")
    return not bad


def _metadata(root: Path, result: Conformance) -> bool:
    """ExportMetadata decodes (else `missingMetadata`: nothing is imported)."""
    path = root / "metadata.json"
    if not path.is_file():
        result.fail("metadata.json", None, "missing: the import does not start")
        return False
    try:
        obj = _parse(path.read_bytes())
    except ValueError as exc:
        result.fail("metadata.json", None, f"does not decode ({exc}): the import does not start")
        return False
    decoded, reasons = decode_struct(METADATA, obj, "")
    if isinstance(obj, dict):
        if obj.get("stats") is None:
            reasons.append("stats: required but missing")
        else:
            stats, found = decode_struct(STATS, obj["stats"], "stats.")
            decoded["stats"] = stats
            reasons += found
        extensions = obj.get("extensions")
        if extensions is not None and not isinstance(extensions, dict):
            reasons.append("extensions: expected an object")
        elif extensions is not None:
            for name, state in extensions.items():
                reasons += decode_struct(EXTENSION_STATE, state, f"extensions.{name}.")[1]
        app = obj.get("appMetadata")
        if app is not None and not (
            isinstance(app, dict) and all(type(v) is str for v in app.values())
        ):
            reasons.append("appMetadata: expected a map of strings to strings")
    for reason in reasons:
        result.fail("metadata.json", None, f"{reason}: the import does not start")
    result.metadata = decoded
    return not reasons


def check_folder(root: Path) -> Conformance:
    """Everything the apps would lose importing the archive folder `root`."""
    result = Conformance()
    if not _metadata(root, result):
        return result
    for kind in KINDS:
        if not (root / kind).is_dir():
            result.fail(f"{kind}/", None, "missing folder: the import does not start")
    if result.failures:
        return result
    _places(root, result)
    deleted = _items(root, result)
    _samples(root, result, deleted)
    return result


def check_zip(path: Path, into: Path) -> Conformance:
    """Unzip a download as a person would and check the one export folder inside."""
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    tops = [p for p in into.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(tops) != 1 or not tops[0].is_dir():
        result = Conformance()
        result.fail(path.name, None, f"holds {[p.name for p in tops]}, not one export folder")
        return result
    return check_folder(tops[0])


# --- places ----------------------------------------------------------------------------------


def _places(root: Path, result: Conformance) -> None:
    for path in _files(root / "places", ("json",), result, "places"):
        relative = f"places/{path.name}"
        result.files["places"].append(relative)
        array = _array(path, relative, result)
        if array is None:
            continue
        decoded, bad = [], {}
        for index, obj in enumerate(array):
            place, reasons = decode_struct(PLACE, obj, "")
            decoded.append(place)
            if reasons:
                bad[index] = reasons
        if not _whole_file(result, relative, bad, len(array)):
            continue
        for index, place in enumerate(decoded):
            if len(place["name"]) == 0:  # CHECK length(name) > 0
                result.fail(relative, index, "name is empty: the CHECK rule drops the place")
            elif place["id"] in result.stored["places"]:
                result.fail(relative, index, f"place {place['id']} again: the copy is ignored")
            else:
                result.stored["places"][place["id"]] = place


# --- items -----------------------------------------------------------------------------------


def _item(obj: Any) -> tuple[dict[str, Any], list[str]]:
    """A TimelineItem (Models/TimelineItem/TimelineItem.swift, `init(from:)`): base with
    decode, visit, trip, place and samples with decodeIfPresent."""
    if not isinstance(obj, dict):
        return {}, ["expected an object"]
    base, reasons = decode_struct(BASE, obj.get("base"), "base.")
    if obj.get("base") is None:
        reasons = ["base: required but missing"]
    item: dict[str, Any] = {"base": base}
    for part, props in (("visit", VISIT), ("trip", TRIP), ("place", PLACE)):
        if obj.get(part) is not None:
            item[part], found = decode_struct(props, obj[part], f"{part}.")
            reasons += found
    samples = obj.get("samples")
    if samples is not None:
        if not isinstance(samples, list):
            reasons.append("samples: expected an array")
        else:
            for n, sample in enumerate(samples):
                reasons += decode_struct(SAMPLE, sample, f"samples[{n}].")[1]
    return item, reasons


def _visit_rules(visit: dict[str, Any], places: dict[str, Any]) -> list[str]:
    """TimelineItemVisit's CHECK rules, after the import detaches a missing place."""
    place_id = visit.get("placeId")
    if place_id is not None and place_id not in places:
        visit.pop("placeId")
        visit["confirmedPlace"], visit["uncertainPlace"] = False, True
        place_id = None
    broken = []
    confirmed, uncertain = visit["confirmedPlace"], visit["uncertainPlace"]
    if confirmed and place_id is None:
        broken.append("confirmedPlace without a placeId")
    if not ((uncertain and not confirmed) or (not uncertain and place_id is not None)):
        broken.append(f"uncertainPlace {uncertain} with confirmedPlace {confirmed}")
    if visit.get("customTitle") == "":
        broken.append("customTitle is empty")
    lat, lon = visit.get("latitude"), visit.get("longitude")
    if (lat is None) != (lon is None):
        broken.append("only one of latitude and longitude")
    elif lat is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180 and (lat, lon) != (0, 0)):
        broken.append(f"coordinates ({lat}, {lon}) out of range or (0, 0)")
    return broken


def _trip_rules(trip: dict[str, Any]) -> list[str]:
    """TimelineItemTrip's CHECK rules."""
    uncertain = trip["uncertainActivityType"]
    typed = "classifiedActivityType" in trip or "confirmedActivityType" in trip
    broken = []
    if not (uncertain or typed):
        broken.append("uncertainActivityType false without any activity type")
    if uncertain and "confirmedActivityType" in trip:
        broken.append("uncertainActivityType true with a confirmedActivityType")
    return broken


def _items(root: Path, result: Conformance) -> set[str]:
    """Import the items; returns the ids of the deleted ones (the sample guard needs them)."""
    places = result.stored["places"]
    for path in _files(root / "items", ("json",), result, "items"):
        relative = f"items/{path.name}"
        result.files["items"].append(relative)
        array = _array(path, relative, result)
        if array is None:
            continue
        decoded, bad = [], {}
        for index, obj in enumerate(array):
            item, reasons = _item(obj)
            decoded.append(item)
            if reasons:
                bad[index] = reasons
        if _whole_file(result, relative, bad, len(array)):
            _insert_items(result, relative, decoded, places)
    _check_edges(result)
    return {i for i, item in result.stored["items"].items() if item["base"]["deleted"]}


def _insert_items(
    result: Conformance, relative: str, decoded: list[dict[str, Any]], places: dict[str, Any]
) -> None:
    """processTimelineItem: base, then the visit (place checked) or the trip, each OR IGNORE."""
    for index, item in enumerate(decoded):
        base = item["base"]
        part, other = ("visit", "trip") if base["isVisit"] else ("trip", "visit")
        if part not in item or other in item:
            result.fail(
                relative, index, f"isVisit is {base['isVisit']}: needs a {part} part, no {other}"
            )
            continue
        if item[part]["itemId"] != base["id"]:
            start = index // ITEM_BATCH * ITEM_BATCH
            result.fail(
                relative,
                index,
                f"{part}.itemId is not base.id: a deferred foreign key fails the batch;"
                f" {len(decoded) - start} items from index {start} are lost",
            )
            for kept in decoded[start:index]:
                result.stored["items"].pop(kept["base"]["id"], None)
            return
        if base["id"] in result.stored["items"]:
            result.fail(relative, index, f"item {base['id']} again: the copy is ignored")
            continue
        broken = _visit_rules(item[part], places) if part == "visit" else _trip_rules(item[part])
        if broken:
            result.fail(relative, index, f"the CHECK rules drop the {part}: " + "; ".join(broken))
            continue
        result.stored["items"][base["id"]] = item


def _check_edges(result: Conformance) -> None:
    """Edges the CHECK rules refuse are not restored (edges to missing or deleted items
    are dropped too, but on purpose: the apps heal those)."""
    for item_id, item in result.stored["items"].items():
        previous, following = item["base"].get("previousItemId"), item["base"].get("nextItemId")
        if item_id in (previous, following) or (previous is not None and previous == following):
            result.fail("items", None, f"item {item_id}: an edge to itself or previous == next")


# --- samples ---------------------------------------------------------------------------------


def _samples(root: Path, result: Conformance, deleted: set[str]) -> None:
    items = result.stored["items"]
    for path in _files(root / "samples", ("json", "gz"), result, "samples"):
        relative = f"samples/{path.name}"
        result.files["samples"].append(relative)
        array = _array(path, relative, result, gz=path.suffix == ".gz")
        if array is None:
            continue
        decoded, bad = [], {}
        for index, obj in enumerate(array):
            sample, reasons = decode_struct(SAMPLE, obj, "")
            decoded.append(sample)
            if reasons:
                bad[index] = reasons
        if not _whole_file(result, relative, bad, len(array)):
            continue
        for index, sample in enumerate(decoded):
            item_id = sample.get("timelineItemId")
            if item_id is not None and item_id in items and item_id in deleted:
                start = index // SAMPLE_BATCH * SAMPLE_BATCH
                result.fail(
                    relative,
                    index,
                    f"on deleted item {item_id}: the guard trigger aborts the batch,"
                    f" {len(array) - start} samples from index {start} are lost",
                )
                for kept in decoded[start:index]:
                    result.stored["samples"].pop(kept["id"], None)
                break
            if sample["id"] in result.stored["samples"]:
                result.fail(relative, index, f"sample {sample['id']} again: the copy is ignored")
                continue
            result.stored["samples"][sample["id"]] = sample
