"""The exportable tables and their columns (SPEC 13 "Tables and columns"). Pure.

Every column comes from the field tables of `shared.fields`, so a column added there is
exported without a change here. `account_id` is in no field table: it is never exported.
An item's visit columns are empty for trips and its trip columns empty for visits,
whatever the row holds (a NOT NULL default of a visit column says nothing about a trip).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.fields import (
    ITEM_BASE_FIELDS,
    PLACE_FIELDS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Field,
    Kind,
)


@dataclass(frozen=True, slots=True)
class Column:
    """One exported column: its snake_case name, kind, and the items it applies to."""

    name: str
    kind: Kind
    # "visit" or "trip" for a column of only that kind of item; None for every row.
    only: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """One exportable table: where its rows live and in which order they are written."""

    name: str
    sql_table: str
    alias: str
    columns: tuple[Column, ...]
    order_by: str

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in SPEC 3's order (the default of `columns`)."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """The column called `name` (KeyError when the table has none)."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def pick(self, names: Iterable[str] | None) -> tuple[Column, ...]:
        """The columns asked for, in the order asked (all when `names` is None)."""
        if names is None:
            return self.columns
        return tuple(self.column(name) for name in names)


def _plain(fields: tuple[Field, ...]) -> tuple[Column, ...]:
    return tuple(Column(f.column, f.kind) for f in fields)


# SPEC 3 lists the visit's and the trip's own lastSaved among the base columns, right
# after the base's `last_saved`; they stay empty where they do not apply.
_AFTER_LAST_SAVED = ("visit_last_saved", "trip_last_saved")


def _item_columns() -> tuple[Column, ...]:
    """Base columns, then visit columns, then trip columns, in SPEC 3's order; each once."""
    visit = {f.column for f in VISIT_FIELDS}
    trip = {f.column for f in TRIP_FIELDS}
    base = {f.column for f in ITEM_BASE_FIELDS}
    seen: dict[str, Column] = {}
    for field in ITEM_BASE_FIELDS + VISIT_FIELDS + TRIP_FIELDS:
        if field.column in seen:
            continue
        only = None
        if field.column not in base and not (field.column in visit and field.column in trip):
            only = "visit" if field.column in visit else "trip"
        seen[field.column] = Column(field.column, field.kind, only)
    moved = [seen.pop(name) for name in _AFTER_LAST_SAVED]
    ordered: list[Column] = []
    for column in seen.values():
        ordered.append(column)
        if column.name == "last_saved":
            ordered.extend(moved)
    return tuple(ordered)


TABLES: dict[str, Table] = {
    "samples": Table(
        name="samples",
        sql_table="samples",
        alias="s",
        columns=_plain(SAMPLE_FIELDS),
        order_by="s.date, s.id",
    ),
    "items": Table(
        name="items",
        sql_table="timeline_items",
        alias="i",
        columns=_item_columns(),
        order_by="i.start_date, i.id",
    ),
    "places": Table(
        name="places",
        sql_table="places",
        alias="p",
        columns=_plain(PLACE_FIELDS),
        order_by="p.name, p.id",
    ),
}
