"""A table export request (SPEC 13 "Export"): parsed from the body, stored on the job.

Every refusal is a 422 naming the field (`details.field`), as for archive exports; an
unknown or repeated column also names the column (`details.column`).
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import BadRequest
from shared.params import optional_date, refuse
from shared.tables.columns import TABLES, Column, Table
from shared.timefmt import format_iso, parse_iso

FORMATS = ("csv", "tsv", "json", "jsonl", "xlsx")
DELIVERIES = ("auto", "inline", "background")
DEFAULT_ZONE = "UTC"
_FIELDS = frozenset(
    {"type", "table", "format", "columns", "from", "to", "timezone", "bom", "delivery"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TableExportParams:
    """Which table, columns and rows; how the file is written; how it is delivered."""

    table: str
    format: str
    columns: tuple[str, ...] | None = None  # None: every column, in SPEC 3's order
    start: datetime | None = None
    end: datetime | None = None
    timezone: str = DEFAULT_ZONE
    bom: bool = False
    delivery: str = "auto"

    @property
    def definition(self) -> Table:
        """The table's definition."""
        return TABLES[self.table]

    def picked(self) -> tuple[Column, ...]:
        """The columns to write, in the asked order."""
        return self.definition.pick(self.columns)

    def to_json(self) -> dict[str, Any]:
        """The form stored in `jobs.params`."""
        out: dict[str, Any] = {
            "table": self.table,
            "format": self.format,
            "timezone": self.timezone,
            "bom": self.bom,
            "delivery": self.delivery,
        }
        if self.columns is not None:
            out["columns"] = list(self.columns)
        if self.start is not None:
            out["from"] = format_iso(self.start)
        if self.end is not None:
            out["to"] = format_iso(self.end)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableExportParams:
        """Read back the stored form."""
        columns = data.get("columns")
        return cls(
            table=str(data["table"]),
            format=str(data["format"]),
            columns=None if columns is None else tuple(columns),
            start=parse_iso(data["from"]) if data.get("from") else None,
            end=parse_iso(data["to"]) if data.get("to") else None,
            timezone=str(data.get("timezone", DEFAULT_ZONE)),
            bom=bool(data.get("bom", False)),
            delivery=str(data.get("delivery", "auto")),
        )


def parse_table_export(body: Any) -> TableExportParams:
    """Validate a `POST /exports` body of `"type": "table"`."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", details={"field": "body"})
    if body.get("type") != "table":
        raise refuse("type", "must be 'table'")
    for key in body:
        if key not in _FIELDS:
            raise refuse(key, "is not a known field")
    table = _choice(body, "table", tuple(TABLES), required=True)
    format_ = _choice(body, "format", FORMATS, required=True)
    columns = _columns(body.get("columns"), TABLES[table])
    start = optional_date(body, "from")
    end = optional_date(body, "to")
    if start is not None and end is not None and end <= start:
        raise refuse("to", "must be after 'from'")
    bom = body.get("bom", False)
    if not isinstance(bom, bool):
        raise refuse("bom", "must be true or false")
    return TableExportParams(
        table=table,
        format=format_,
        columns=columns,
        start=start,
        end=end,
        # null is the default, as for every other optional field
        timezone=_zone(DEFAULT_ZONE if body.get("timezone") is None else body["timezone"]),
        bom=bom,
        delivery=_choice(body, "delivery", DELIVERIES, default="auto"),
    )


def _choice(
    body: dict[str, Any],
    field: str,
    choices: tuple[str, ...],
    *,
    required: bool = False,
    default: str | None = None,
) -> str:
    value = body.get(field, default)
    if value is None:
        if required:
            raise refuse(field, f"is required: one of {', '.join(choices)}")
        raise refuse(field, f"must be one of {', '.join(choices)}")
    if not isinstance(value, str) or value not in choices:
        raise refuse(field, f"must be one of {', '.join(choices)}")
    return value


def _columns(value: Any, table: Table) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise refuse("columns", "must be a list of column names")
    if not value:
        raise refuse("columns", "must name at least one column (leave it out for all)")
    known = set(table.names)
    seen: set[str] = set()
    for name in value:
        if name not in known:
            error = refuse(
                "columns",
                f"{table.name} has no column {name!r}; its columns are {', '.join(table.names)}",
            )
            error.details["column"] = name
            raise error
        if name in seen:
            error = refuse("columns", f"column {name!r} is asked for twice")
            error.details["column"] = name
            raise error
        seen.add(name)
    return tuple(value)


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {DEFAULT_ZONE}


def _zone(value: Any) -> str:
    if not isinstance(value, str) or value not in _known_zones():
        raise refuse("timezone", "must be an IANA time zone name, like Europe/Berlin or UTC")
    return value


# --- imports --------------------------------------------------------------------------------

MODES = ("insert", "upsert")


@dataclass(frozen=True, slots=True, kw_only=True)
class TableImportParams:
    """A table import (SPEC 13 "Import"): which table, how the file maps onto it, and how
    its rows meet the account's."""

    table: str
    mapping: dict[str, str | None] | None = None
    mode: str = "upsert"
    timezone: str = DEFAULT_ZONE
    sheet: str | None = None
    confirm: bool = False
    skip_invalid: bool = False
    filename: str = ""
    bytes: int = 0

    job_type = "import.table"

    @property
    def definition(self) -> Table:
        """The table's definition."""
        return TABLES[self.table]

    def to_json(self) -> dict[str, Any]:
        """The form stored in `jobs.params`."""
        return {
            "type": "table",
            "table": self.table,
            "mapping": self.mapping,
            "mode": self.mode,
            "timezone": self.timezone,
            "sheet": self.sheet,
            "confirm": self.confirm,
            "skip_invalid": self.skip_invalid,
            "filename": self.filename,
            "bytes": self.bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableImportParams:
        """Read back the stored form."""
        return cls(
            table=str(data["table"]),
            mapping=data.get("mapping"),
            mode=str(data.get("mode", "upsert")),
            timezone=str(data.get("timezone") or DEFAULT_ZONE),
            sheet=data.get("sheet"),
            confirm=bool(data.get("confirm", False)),
            skip_invalid=bool(data.get("skip_invalid", False)),
            filename=str(data.get("filename", "")),
            bytes=int(data.get("bytes", 0)),
        )


def parse_table_import(
    *,
    table: str,
    mapping: Any = None,
    mode: str = "upsert",
    timezone: str | None = None,
    sheet: str | None = None,
    confirm: bool = False,
    skip_invalid: bool = False,
) -> TableImportParams:
    """Validate a table import's fields (a 422 naming the field, or the mapped column)."""
    from shared.tables.mapping import parse_mapping

    if table not in TABLES:
        raise refuse("table", f"must be one of {', '.join(TABLES)}")
    if mode not in MODES:
        raise refuse("mode", f"must be one of {', '.join(MODES)}")
    return TableImportParams(
        table=table,
        mapping=None if mapping is None else parse_mapping(mapping, TABLES[table]),
        mode=mode,
        timezone=_zone(timezone or DEFAULT_ZONE),
        sheet=sheet or None,
        confirm=confirm,
        skip_invalid=skip_invalid,
    )
