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

    def read(
        self, row: int, cells: Sequence[Any]
    ) -> tuple[list[Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
        """(values in `columns` order, or None when refused; cell errors; warnings)."""
        values: list[Any] = []
        errors: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        for cell in self.cells:
            raw = cells[cell.position]
            if raw is None:
                values.append(None)
                continue
            if raw == "":
                values.append(self._empty_text if cell.field.kind == "text" else None)
                continue
            try:
                value = cell.read(raw)
            except ValueError as exc:
                errors.append(cell_error(row, cell.name, raw, str(exc)))
                values.append(None)
                continue
            f = cell.field
            if f.nonempty and value == "":
                errors.append(cell_error(row, cell.name, raw, "must not be empty"))
            elif f.minimum is not None and value < f.minimum:
                errors.append(cell_error(row, cell.name, raw, f"must be at least {f.minimum:g}"))
            elif f.maximum is not None and value > f.maximum:
                errors.append(cell_error(row, cell.name, raw, f"must be at most {f.maximum:g}"))
            elif f.choices is not None and value not in f.choices:
                errors.append(cell_error(row, cell.name, raw, _ACTIVITY))
            values.append(value)
        if self.generate_ids:
            values.append(str(uuid.uuid4()))
        if self._items:
            warnings = self._item_rules(row, values, cells, errors)
        self._defaults(row, values, errors)
        return (None if errors else values), errors, warnings

    def _defaults(self, row: int, values: list[Any], errors: list[dict[str, Any]]) -> None:
        """Required cells left empty are errors; cells with an Arc default take it."""
        is_visit = values[self._index["is_visit"]] if "is_visit" in self._index else None
        for i, cell in enumerate(self.cells):
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
