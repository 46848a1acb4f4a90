"""Archive codecs of the three record kinds, built from the field tables in `shared.fields`.

`encode_*` turns a database row into an archive object (nulls omitted); `decode_*` turns
an archive object into column values and a list of problems.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import msgspec
from msgspec.structs import astuple as _astuple

from shared import app_rules
from shared.fields import (
    ITEM_BASE_FIELDS,
    ITEM_COLUMNS,
    PLACE_COLUMNS,
    PLACE_FIELDS,
    SAMPLE_COLUMNS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Field,
    Kind,
    Now,
    Problem,
)
from shared.timefmt import format_iso, from_number, parse_iso, utcnow

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
    part = _encode_fields(VISIT_FIELDS if is_visit else TRIP_FIELDS, row)
    detail = {"itemId": base["id"], **part}
    return {"base": base, "visit" if is_visit else "trip": detail}


# --- decoding: archive objects -> database values -----------------------------------------
#
# Import validates millions of samples, so each record kind gets a decoder compiled from
# its field table: straight-line type checks with no call per field. On 1 M samples it
# runs at ~3 µs a record against ~11 µs for a loop calling one decoder per field
# (bench/import.py). The field table stays the single statement of the rules.

_UUID_MATCH = _UUID.match


def _archive_date(value: Any) -> datetime:
    """An accepted archive date as an aware datetime; ValueError if it is not one."""
    if value.__class__ is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = parse_iso(value)  # the lenient reader (e.g. a lower-case "z")
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if value.__class__ is int or value.__class__ is float:
        return from_number(float(value))
    raise ValueError("not a date")


# (values in field order, problems and warnings or None, keys the field table does not know)
Decoded = tuple[tuple[Any, ...], list[Problem] | None, int]
Decoder = Callable[[Mapping[str, Any], datetime | None], Decoded]


def _default_source(f: Field) -> str:
    """The Python expression of a field's default, in the compiled decoder."""
    if isinstance(f.default, Now):
        return "(now if now is not None else _utcnow())"
    return repr(f.default)


def _field_source(index: int, f: Field, prefix: str) -> list[str]:
    name = prefix + f.key

    def problem(reason: str, *, warning: bool = False) -> str:
        return f"p = p or []; p.append(Problem({name!r}, {reason!r}, {warning!r}))"

    out = f"c{index}"
    lines = [f"    v = g({f.key!r})", "    if v is None:"]
    if f.required:
        lines += [f"        {problem('is required')}", f"        {out} = None"]
    elif f.default is not None:
        shown = "the time of the import" if isinstance(f.default, Now) else json.dumps(f.default)
        if isinstance(f.default, Now) and prefix in ("visit.", "trip."):
            shown = "the item's lastSaved"  # item_row passes it as `now` to the parts
        reason = f"missing or null; set to the Arc apps' default ({shown})"
        lines += [
            f"        {out} = {_default_source(f)}",
            f"        {problem(reason, warning=True)}",
        ]
    else:
        lines.append(f"        {out} = None")
    # Counting the keys a record lacks gives the count of keys Ferry does not know
    # without looking at every key of every record.
    lines += [f"        if {f.key!r} not in obj: m += 1", "    else:", "        t = v.__class__"]
    if f.kind is Kind.UUID:
        lines += [
            f"        if t is str and _UUID_MATCH(v): {out} = v.lower()",
            f"        else: {out} = None; {problem('not a UUID')}",
        ]
    elif f.kind is Kind.TEXT:
        lines += [
            f"        if t is str and '\\x00' not in v: {out} = v",
            f"        else: {out} = None; {problem('not a string without NUL')}",
        ]
    elif f.kind in (Kind.INT, Kind.SMALLINT):
        lines += [
            "        if t is float and v.is_integer(): v = int(v); t = int",
            f"        if t is int and {-_INT32 - 1} <= v <= {_INT32}: {out} = v",
            f"        else: {out} = None; {problem('not a 32-bit integer')}",
        ]
        if f.choices is not None:
            lines.append(
                f"        if {out} is not None and {out} not in CHOICES{index}: "
                + problem("not one of LocoKit2's ActivityType values (-1, 0, 1-6, 20-35, 50-61)")
            )
    elif f.kind is Kind.FLOAT:
        # `v - v == 0.0` is False for NaN and the infinities only.
        lines += [
            "        if t is int: v = float(v); t = float",
            f"        if t is float and v - v == 0.0: {out} = v",
            f"        else: {out} = None; {problem('not a finite number')}",
        ]
    elif f.kind is Kind.BOOL:
        lines += [
            f"        if t is bool: {out} = v",
            f"        else: {out} = None; {problem('not a boolean')}",
        ]
    else:
        lines += [
            f"        try: {out} = _archive_date(v)",
            "        except (ValueError, TypeError, OverflowError):",
            f"            {out} = None; {problem('not a date')}",
        ]
    if f.nonempty:
        lines.append(f"        if {out} == '': {problem('must not be empty')}")
    if f.minimum is not None:
        lines.append(
            f"        if {out} is not None and {out} < {f.minimum!r}: "
            + problem(f"must be at least {f.minimum:g}")
        )
    if f.maximum is not None:
        lines.append(
            f"        if {out} is not None and {out} > {f.maximum!r}: "
            + problem(f"must be at most {f.maximum:g}")
        )
    return lines


def _compile(fields: tuple[Field, ...], prefix: str) -> Decoder:
    source = ["def decode(obj, now):", "    g = obj.get", "    p = None", "    m = 0"]
    for index, f in enumerate(fields):
        source += _field_source(index, f, prefix)
    values = "".join(f"c{i}, " for i in range(len(fields)))
    source.append(f"    return ({values}), p, len(obj) - {len(fields)} + m")
    namespace: dict[str, Any] = {
        "Problem": Problem,
        "_UUID_MATCH": _UUID_MATCH,
        "_archive_date": _archive_date,
        "_utcnow": utcnow,
    }
    for index, f in enumerate(fields):
        if f.choices is not None:
            namespace[f"CHOICES{index}"] = f.choices
    exec(compile("\n".join(source), f"<decoder {prefix or fields[0].key}>", "exec"), namespace)
    return namespace["decode"]


def compile_decoder(fields: tuple[Field, ...], *, prefix: str = "") -> Decoder:
    """A function: (archive object, now) -> (values in field order, problems, unknown keys).

    UUIDs come out as lower-case strings and dates as aware datetimes. A missing field
    with a default takes it (a `lastSaved` takes `now`) and adds a warning problem.
    """
    return _compile(fields, prefix)


_PLACE = compile_decoder(PLACE_FIELDS)
_SAMPLE = compile_decoder(SAMPLE_FIELDS)
_BASE = compile_decoder(ITEM_BASE_FIELDS, prefix="base.")
_VISIT = compile_decoder(VISIT_FIELDS, prefix="visit.")
_TRIP = compile_decoder(TRIP_FIELDS, prefix="trip.")
_NOT_OBJECT = [Problem("", "not a JSON object")]
_NO_VISIT = (None,) * len(VISIT_FIELDS)
_NO_TRIP = (None,) * len(TRIP_FIELDS)
_BASE_LAST_SAVED = next(i for i, f in enumerate(ITEM_BASE_FIELDS) if f.key == "lastSaved")
_ITEM_PARTS = ("base", "visit", "trip")


def place_row(obj: Any, now: datetime | None = None) -> Decoded:
    """An archive place as values in PLACE_COLUMNS order."""
    if obj.__class__ is not dict:
        return (), _NOT_OBJECT, 0
    return _PLACE(obj, now)


def sample_row(obj: Any, now: datetime | None = None) -> Decoded:
    """An archive sample as values in SAMPLE_COLUMNS order."""
    if obj.__class__ is not dict:
        return (), _NOT_OBJECT, 0
    return _SAMPLE(obj, now)


def item_row(obj: Any, now: datetime | None = None) -> Decoded:
    """An archive item as values in ITEM_COLUMNS order (base, visit, trip).

    A visit or trip without its part gets the part's defaults; the Arc apps' rules on
    flags and coordinates are then applied (`app_rules`), each change a warning.
    """
    if obj.__class__ is not dict or obj.get("base").__class__ is not dict:
        return (), [Problem("base", "is required and must be an object")], 0
    base, problems, ignored = _BASE(obj["base"], now)
    ignored += sum(1 for key in obj if key not in _ITEM_PARTS)
    visit_obj, trip_obj = obj.get("visit"), obj.get("trip")
    is_visit = base[1]
    visit, trip = _NO_VISIT, _NO_TRIP
    extra: list[Problem] = []
    if visit_obj is not None and trip_obj is not None:
        extra.append(Problem("visit", "an item has a visit or a trip, not both"))
    if is_visit is True and trip_obj is not None:
        extra.append(Problem("trip", "isVisit is true but the item has a trip"))
    if is_visit is False and visit_obj is not None:
        extra.append(Problem("visit", "isVisit is false but the item has a visit"))
    if is_visit is True and visit_obj is None and trip_obj is None:
        visit_obj = {}
    if is_visit is False and trip_obj is None and visit_obj is None:
        trip_obj = {}
    saved = base[_BASE_LAST_SAVED]
    for name, detail in (("visit", visit_obj), ("trip", trip_obj)):
        if detail is None:
            continue
        if detail.__class__ is not dict:
            extra.append(Problem(name, "must be an object"))
            continue
        values, found, unknown = (_VISIT if name == "visit" else _TRIP)(detail, saved)
        item_id = detail.get("itemId")
        if item_id is not None:
            unknown -= 1
            if base[0] is not None and (item_id.__class__ is not str or item_id.lower() != base[0]):
                extra.append(Problem(f"{name}.itemId", "must be the item's base.id"))
        ignored += unknown
        if found:
            extra.extend(found)
        if name == "visit":
            visit = values
        else:
            trip = values
    start, end = base[2], base[3]
    if start is not None and end is not None and end < start:
        extra.append(Problem("base.endDate", "is before startDate"))
    if visit is not _NO_VISIT:
        visit = app_rules.visit_rules(base[0] is not None, visit, extra)
    elif trip is not _NO_TRIP:
        trip = app_rules.trip_rules(trip, extra)
    if extra:
        problems = (problems or []) + extra
    return base + visit + trip, problems, ignored


def _as_dict(columns: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(columns, row, strict=True))


def decode_place(obj: Any, now: datetime | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """An archive place object as column values, with the problems (and warnings) found."""
    row, problems, _ = place_row(obj, now)
    if not row:
        return {}, list(problems or [])
    return _as_dict(PLACE_COLUMNS, row), list(problems or [])


def decode_sample(obj: Any, now: datetime | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """An archive sample object as column values, with the problems (and warnings) found."""
    row, problems, _ = sample_row(obj, now)
    if not row:
        return {}, list(problems or [])
    return _as_dict(SAMPLE_COLUMNS, row), list(problems or [])


def decode_item(obj: Any, now: datetime | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """An archive item object (`base` plus `visit` or `trip`) as column values."""
    row, problems, _ = item_row(obj, now)
    if not row:
        return {}, list(problems or [])
    return _as_dict(ITEM_COLUMNS, row), list(problems or [])


_KNOWN = {
    "places": frozenset(f.key for f in PLACE_FIELDS),
    "base": frozenset(f.key for f in ITEM_BASE_FIELDS),
    "visit": frozenset(f.key for f in VISIT_FIELDS) | {"itemId"},
    "trip": frozenset(f.key for f in TRIP_FIELDS) | {"itemId"},
    "samples": frozenset(f.key for f in SAMPLE_FIELDS),
}


def unknown_keys(kind: str, obj: Any) -> list[str]:
    """The keys of a record Ferry has no column for (`base.x` for an item's parts)."""
    if obj.__class__ is not dict:
        return []
    if kind != "items":
        return [key for key in obj if key not in _KNOWN[kind]]
    found = [key for key in obj if key not in _ITEM_PARTS]
    for part in _ITEM_PARTS:
        detail = obj.get(part)
        if detail.__class__ is dict:
            found += [f"{part}.{key}" for key in detail if key not in _KNOWN[part]]
    return found


def errors_of(problems: list[Problem] | None) -> list[Problem]:
    """The problems that refuse a record (not the warnings)."""
    return [p for p in problems or () if not p.warning]


# --- the fast path: a block of records decoded in C --------------------------------------
#
# Most archives are valid, and a valid sample needs no report line. So the import first
# hands msgspec a whole block of records (a JSON array of ~2,000 samples) with a typed
# schema built from the same field table, and checks what msgspec cannot say (UUID
# layout, NUL in text, ranges, choices) in the compiled function below. The schema only
# accepts records the per-record decoder would take with no problem, no warning and no
# unknown key, and then yields the same column values; anything else (a missing key with a
# default, a null, an unknown key, an integral float for an int, any bad value) makes the
# whole block return None, and the caller decodes that block record by record with
# `sample_row`, which writes the report. On 1 M samples this is ~1.5 µs a record against
# ~5.5 µs for orjson plus the compiled decoder (docs/performance.md, "Import").

# Keys LocoKit2 writes on every sample that Ferry has no column for (its R-tree row and a
# derived flag): a block may hold them, and they are counted and named as unknown keys.
SAMPLE_EXTRA_KEYS = ("rtreeId", "hasLocation")


@dataclass(frozen=True, slots=True)
class FastBlock:
    """A block's column values (in field order) and where it sits in its file, and the
    extra keys its records held (in key order)."""

    columns: list[Any]
    file_no: int
    start: int
    count: int
    extra_keys: tuple[str, ...]
    extra_columns: list[tuple[Any, ...]]

    def __len__(self) -> int:
        return self.count

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """The staging rows `(file_no, idx, *values)`."""
        start = self.start
        return list(zip(repeat(self.file_no), range(start, start + self.count), *self.columns))

    def live_rows(self, account_id: str) -> Iterator[tuple[Any, ...]]:
        """The rows of the live table `(account_id, *values)`."""
        if not self.count:
            return iter(())
        return zip(repeat(account_id), *self.columns)

    @property
    def unknown(self) -> int:
        """Keys of the block's records that Ferry has no column for."""
        return sum(len(c) - c.count(msgspec.UNSET) for c in self.extra_columns)

    def unknown_keys(self) -> Iterator[list[str]]:
        """Per record that holds any, the keys Ferry has no column for, in order."""
        if not self.unknown:
            return
        for values in zip(*self.extra_columns, strict=True):
            found = [
                k for k, v in zip(self.extra_keys, values, strict=True) if v is not msgspec.UNSET
            ]
            if found:
                yield found


FastRows = Callable[[bytes, int, int], FastBlock | None]

_UUID_LINES = re.compile(
    r"(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\n)*"
).fullmatch
# Dates fromisoformat reads to the same aware datetime as `_archive_date` (an offset or Z).
_ISO_LINES = re.compile(
    r"(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})\n)*"
).fullmatch
_FROM_ISO = datetime.fromisoformat
_TYPES: dict[Kind, Any] = {
    Kind.UUID: str,
    Kind.TEXT: str,
    Kind.BOOL: bool,
    Kind.FLOAT: float,
    Kind.INT: int,
    Kind.SMALLINT: int,
    Kind.DATE: str | float,  # converted by _archive_date, as the per-record decoder does
}


def _present(column: tuple[Any, ...], always: bool) -> Any:
    return column if always else [v for v in column if v is not None]


class _FastRows:
    """Typed decoding of a block of records; the checks run column by column in C
    (joins, one regex, min/max, set inclusion), not record by record."""

    def __init__(self, fields: tuple[Field, ...], name: str, extra: tuple[str, ...]) -> None:
        spec: list[Any] = []
        for f in fields:
            kind = _TYPES[f.kind]
            # A field with a default must be present and not null (a missing one is a
            # warning), an optional one may be either.
            spec.append((f.key, kind) if f.always else (f.key, kind | None, None))
        # Extra keys: any JSON value, UNSET when the record lacks the key.
        spec += [(key, Any, msgspec.UNSET) for key in extra]
        self.extra = extra
        struct = msgspec.defstruct(name, spec, kw_only=True, forbid_unknown_fields=True)
        self.decode = msgspec.json.Decoder(list[struct]).decode  # type: ignore[valid-type]
        self.fields = fields
        self.dates = [i for i, f in enumerate(fields) if f.kind is Kind.DATE]
        self.uuids = [(i, f.always) for i, f in enumerate(fields) if f.kind is Kind.UUID]
        self.texts = [(i, f) for i, f in enumerate(fields) if f.kind is Kind.TEXT]
        self.ranges: list[tuple[int, bool, float, float, frozenset[int] | None]] = []
        for i, f in enumerate(fields):
            if f.kind in (Kind.INT, Kind.SMALLINT):
                low = max(-_INT32 - 1, f.minimum if f.minimum is not None else -_INT32 - 1)
                high = min(_INT32, f.maximum if f.maximum is not None else _INT32)
                self.ranges.append((i, f.always, low, high, f.choices))
            elif f.kind is Kind.FLOAT and (f.minimum is not None or f.maximum is not None):
                low = f.minimum if f.minimum is not None else -math.inf
                high = f.maximum if f.maximum is not None else math.inf
                self.ranges.append((i, f.always, low, high, None))

    def __call__(self, block: bytes, file_no: int, start: int) -> FastBlock | None:
        try:
            records = self.decode(block)
        except msgspec.DecodeError:  # ValidationError is one
            return None
        if not records:
            return FastBlock([], file_no, start, 0, self.extra, [])
        columns: list[Any] = list(zip(*map(_astuple, records), strict=True))
        extra_columns = columns[len(self.fields) :]
        del columns[len(self.fields) :]
        uuids: list[str] = []
        for i, always in self.uuids:
            uuids += _present(columns[i], always)
        # The length rules out a value holding a newline of its own (the per-record
        # check takes `$` as the end of the value).
        joined = "\n".join(uuids) + "\n"
        if len(joined) != 37 * len(uuids) or not _UUID_LINES(joined):
            return None
        for i, f in self.texts:
            values = _present(columns[i], f.always)
            if "\x00" in "".join(values) or (f.nonempty and "" in values):
                return None
        for i, always, low, high, choices in self.ranges:
            values = _present(columns[i], always)
            if values and (min(values) < low or max(values) > high):
                return None
            if choices is not None and not choices.issuperset(values):
                return None
        for i in self.dates:
            column = columns[i]
            try:
                if _ISO_LINES("\n".join(column) + "\n"):
                    columns[i] = list(map(_FROM_ISO, column))
                    continue
            except (TypeError, ValueError):  # a number among them, or a day 31 of June
                pass
            try:
                columns[i] = list(map(_archive_date, column))
            except (ValueError, TypeError, OverflowError):
                return None
        return FastBlock(columns, file_no, start, len(records), self.extra, extra_columns)


def compile_fast_rows(
    fields: tuple[Field, ...], name: str, *, extra: tuple[str, ...] = ()
) -> FastRows:
    """A function: (JSON array of records, file_no, index of the first) -> the block's
    values (as staging or live rows) and the `extra` keys the records held, or None when
    any record needs the per-record decoder."""
    return _FastRows(fields, name, extra)


fast_sample_rows = compile_fast_rows(SAMPLE_FIELDS, "FastSample", extra=SAMPLE_EXTRA_KEYS)
