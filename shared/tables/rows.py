"""One imported row, cell by cell: the values to stage and the cell errors (SPEC 11, 13).

Pure. A `RowReader` is built once per file and mapping; it reads the mapped cells of a
row with each column's parser and the rules of its field (`shared.fields`): required
values, ranges, non-empty texts, LocoKit2's activity types, end ≥ start, and for items
the visit or trip columns a row of the other kind must leave empty. An empty cell of a
column the Arc apps require takes the apps' default (`Field.default`; a `lastSaved` the
import's time, a visit's or trip's the item's). The Arc apps' visit and trip rules
(`shared.app_rules`) are applied when the row holds every column they read.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from shared import app_rules
from shared.fields import (
    ITEM_BASE_FIELDS,
    PLACE_FIELDS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Field,
    Kind,
    Now,
    Problem,
)
from shared.tables.cells import parser

FIELDS: dict[str, dict[str, Field]] = {
    "samples": {f.column: f for f in SAMPLE_FIELDS},
    "places": {f.column: f for f in PLACE_FIELDS},
    "items": {f.column: f for f in ITEM_BASE_FIELDS + VISIT_FIELDS + TRIP_FIELDS},
}
VISIT_ONLY = frozenset(f.column for f in VISIT_FIELDS)
TRIP_ONLY = frozenset(f.column for f in TRIP_FIELDS)
_SHOWN = 200  # characters of a refused value shown in its error
_UUID_MATCH = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$").match
_BOOLS = {
    spelling: value
    for word, value in (("true", True), ("false", False))
    for spelling in (word, word.upper(), word.capitalize())
}


def _fast(kind: Kind, i: int) -> list[str]:
    """The inline reading of a text cell of one kind (the parser `r{i}` when it fails)."""
    if kind is Kind.FLOAT:
        # float() takes "nan", "inf" and "1_0" too: those go to the parser, which refuses.
        return [
            "try:",
            f"    v{i} = float(c)",
            "except ValueError:",
            f"    v{i} = r{i}(c)",
            f"if v{i} - v{i} != 0.0 or '_' in c:",
            f"    v{i} = r{i}(c)",
        ]
    if kind in (Kind.INT, Kind.SMALLINT):
        return [
            "try:",
            f"    v{i} = int(c)",
            "except ValueError:",
            f"    v{i} = r{i}(c)",
            f"if '_' in c or not -2147483648 <= v{i} <= 2147483647:",
            f"    v{i} = r{i}(c)",
        ]
    if kind is Kind.UUID:
        return [f"v{i} = c if _UM(c) else r{i}(c)"]
    if kind is Kind.BOOL:
        return [f"v{i} = _BOOL.get(c)", f"if v{i} is None:", f"    v{i} = r{i}(c)"]
    if kind is Kind.TEXT:
        return [f"v{i} = c if c[0] != \"'\" and '\\x00' not in c else r{i}(c)"]
    return [f"v{i} = r{i}(c)"]


_ACTIVITY = "not one of LocoKit2's ActivityType values (-1, 0, 1-6, 20-35, 50-61)"


def shown(value: Any) -> Any:
    """A cell's value as an error shows it (long texts cut)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def cell_error(row: int, column: str | None, value: Any, reason: str) -> dict[str, Any]:
    """A cell error as the preview lists it."""
    return {"row": row, "column": column, "value": shown(value), "reason": reason}


@dataclass(frozen=True, slots=True)
class _Cell:
    position: int
    name: str  # the file's column name
    field: Field
    read: Any
    default: Any  # None, a value, or Now


class RowReader:
    """Reads rows of one file with one mapping into staged value tuples."""

    def __init__(
        self,
        *,
        table: str,
        header: Sequence[str],
        mapped: Sequence[tuple[int, str]],
        zone: tzinfo,
        escaped: bool,
        now: datetime,
        generate_ids: bool,
        text_cells: bool = True,
        date_epoch: datetime | None = None,
    ) -> None:
        fields = FIELDS[table]
        self.table = table
        self.now = now
        self.generate_ids = generate_ids
        # CSV and TSV cannot tell an empty text from no value: both are none there.
        self._empty_text = None if text_cells else ""
        self.cells = [
            _Cell(
                position=pos,
                name=header[pos],
                field=fields[column],
                read=parser(fields[column].kind, zone=zone, escaped=escaped, date_epoch=date_epoch),
                default=fields[column].default,
            )
            for pos, column in mapped
        ]
        # The staged columns, in the order of the values a row gives.
        self.columns: tuple[str, ...] = tuple(c.field.column for c in self.cells) + (
            ("id",) if generate_ids else ()
        )
        self.file_column = {c.field.column: c.name for c in self.cells}
        self._index = {column: i for i, column in enumerate(self.columns)}
        self._items = table == "items"
        index = self._index
        self._visit_rules = self._items and all(
            c in index
            for c in (
                "place_id",
                "confirmed_place",
                "uncertain_place",
                "latitude",
                "longitude",
                "custom_title",
            )
        )
        self._trip_rules = self._items and all(
            c in index
            for c in (
                "uncertain_activity_type",
                "confirmed_activity_type",
                "classified_activity_type",
            )
        )

        self._read_cells = self._compile(empty_text=self._empty_text)
        # The cells `_defaults` looks at: required ones and those with a default.
        self._defaulted = [
            (i, cell)
            for i, cell in enumerate(self.cells)
            if cell.field.required or cell.field.default is not None
        ]

    def _compile(self, *, empty_text: str | None) -> Any:
        """The cell loop as one straight-line function for this mapping.

        A text cell of each kind has its fast path inline (`int`, `float`, a dict of the
        boolean spellings, the UUID pattern, texts without an escape); anything else, and
        every failure, goes through the column's parser, which says why. It reads a CSV
        row in about a third of the time of a loop calling a parser per cell (bench/
        tables.py --part import).
        """
        names: dict[str, Any] = {
            "_err": cell_error,
            "_UM": _UUID_MATCH,
            "_BOOL": _BOOLS,
            "_ACT": _ACTIVITY,
        }
        lines = ["def read_cells(row, cells):", "    e = []"]
        for i, cell in enumerate(self.cells):
            f = cell.field
            names[f"r{i}"] = cell.read
            names[f"n{i}"] = cell.name
            empty = repr(empty_text) if f.kind is Kind.TEXT else "None"
            lines += [
                f"    c = cells[{cell.position}]",
                "    if c is None:",
                f"        v{i} = None",
                "    elif c == '':",
                f"        v{i} = {empty}",
                "    else:",
                "        try:",
                "            if c.__class__ is str:",
            ]
            lines += [f"                {line}" for line in _fast(f.kind, i)]
            lines += [
                "            else:",
                f"                v{i} = r{i}(c)",
                "        except ValueError as x:",
                f"            v{i} = None",
                f"            e.append(_err(row, n{i}, c, str(x)))",
            ]
            checks = []
            if f.nonempty:
                checks.append((f"v{i} == ''", repr("must not be empty")))
            if f.minimum is not None:
                checks.append((f"v{i} < {f.minimum!r}", repr(f"must be at least {f.minimum:g}")))
            if f.maximum is not None:
                checks.append((f"v{i} > {f.maximum!r}", repr(f"must be at most {f.maximum:g}")))
            if f.choices is not None:
                names[f"ch{i}"] = f.choices
                checks.append((f"v{i} not in ch{i}", "_ACT"))
            for number, (condition, reason) in enumerate(checks):
                keyword = "if" if number == 0 else "elif"
                lines += [
                    f"        {keyword} v{i} is not None and {condition}:",
                    f"            e.append(_err(row, n{i}, c, {reason}))",
                ]
        values = ", ".join(f"v{i}" for i in range(len(self.cells)))
        lines.append(f"    return [{values}], e")
        exec(compile("\n".join(lines), f"<table reader {self.table}>", "exec"), names)
        return names["read_cells"]

    def read(
        self, row: int, cells: Sequence[Any]
    ) -> tuple[list[Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
        """(values in `columns` order, or None when refused; cell errors; warnings)."""
        values, errors = self._read_cells(row, cells)
        warnings: list[dict[str, Any]] = []
        if self.generate_ids:
            values.append(str(uuid.uuid4()))
        if self._items:
            warnings = self._item_rules(row, values, cells, errors)
        self._defaults(row, values, errors)
        return (None if errors else values), errors, warnings

    def _defaults(self, row: int, values: list[Any], errors: list[dict[str, Any]]) -> None:
        """Required cells left empty are errors; cells with an Arc default take it."""
        is_visit = values[self._index["is_visit"]] if "is_visit" in self._index else None
        for i, cell in self._defaulted:
            if values[i] is not None:
                continue
            f = cell.field
            column = f.column
            part = self._items and (column in VISIT_ONLY or column in TRIP_ONLY)
            if f.required:
                if not any(e["column"] == cell.name for e in errors):
                    errors.append(cell_error(row, cell.name, None, "is required"))
                continue
            if f.default is None:
                continue
            if part:
                if is_visit is None or (column in VISIT_ONLY) != bool(is_visit):
                    continue
                if isinstance(f.default, Now):
                    saved = self._index.get("last_saved")
                    values[i] = values[saved] if saved is not None else None
                    values[i] = values[i] or self.now
                    continue
            values[i] = self.now if isinstance(f.default, Now) else f.default

    def _item_rules(
        self, row: int, values: list[Any], cells: Sequence[Any], errors: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        index = self._index
        start, end = index.get("start_date"), index.get("end_date")
        if (
            start is not None
            and end is not None
            and values[start] is not None
            and values[end] is not None
            and values[end] < values[start]
        ):
            name = self.file_column["end_date"]
            errors.append(cell_error(row, name, values[end], "is before start_date"))
        if "is_visit" not in index or values[index["is_visit"]] is None:
            return []
        visit = bool(values[index["is_visit"]])
        other = TRIP_ONLY if visit else VISIT_ONLY
        for i, cell in enumerate(self.cells):
            if cell.field.column in other and values[i] is not None:
                what = "a trip" if visit is False else "a visit"
                errors.append(
                    cell_error(
                        row,
                        cell.name,
                        cells[cell.position],
                        f"applies to {'trips' if visit else 'visits'} only; this row is {what}",
                    )
                )
                values[i] = None
        if errors:
            return []
        found: list[Problem] = []
        if visit and self._visit_rules:
            part = tuple(
                values[index[f.column]] if f.column in index else None for f in VISIT_FIELDS
            )
            fixed = app_rules.visit_rules(True, part, found)
            for f, value in zip(VISIT_FIELDS, fixed, strict=True):
                if f.column in index:
                    values[index[f.column]] = value
        elif not visit and self._trip_rules:
            part = tuple(
                values[index[f.column]] if f.column in index else None for f in TRIP_FIELDS
            )
            fixed = app_rules.trip_rules(part, found)
            for f, value in zip(TRIP_FIELDS, fixed, strict=True):
                if f.column in index:
                    values[index[f.column]] = value
        # The apps' rules set such rows right; the preview's warnings say so.
        return [cell_error(row, None, None, f"{p.field}: {p.reason}") for p in found]
