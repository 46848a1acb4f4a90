"""Reading table exports back with outside readers and checking them against the database.

Readers: Python's `csv` (RFC 4180, `newline=""` so line breaks inside fields stay as
they are), `json`, and openpyxl. What a cell must hold is said here from the stored row
and SPEC 13, independently of the SQL that wrote it: text exactly as stored (with the one
leading `'` of the formula rule in CSV, TSV and XLSX), dates in the asked zone, numbers
equal to the stored double, booleans `true`/`false`, NULL as an empty cell or `null`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from openpyxl.utils.escape import unescape
from psycopg.rows import dict_row

from shared.fields import Kind
from shared.store.db import raw_connection
from shared.tables.columns import TABLES, Column
from shared.tables.values import CELL_MAX_CHARS, iso_in_zone

# SPEC 13's characters and their full-width forms, plus the escape itself (a text that
# starts with "'" gets one more, so that the import's one stripped "'" is lossless).
ESCAPED_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20'")

BOM = b"\xef\xbb\xbf"


def db_rows(
    database_url: str, account_id: str, table: str, *, where: str = "", values: Any = None
) -> list[dict[str, Any]]:
    """The table's rows of the account, in the export's order, as PostgreSQL holds them."""
    spec = TABLES[table]
    a = spec.alias
    query = (
        f"SELECT * FROM {spec.sql_table} {a} WHERE {a}.account_id = %(account)s {where}"
        f" ORDER BY {spec.order_by}"
    )
    with raw_connection(database_url) as conn, conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(query, {"account": account_id, **(values or {})})
        return list(cursor.fetchall())


def applies(column: Column, row: dict[str, Any]) -> bool:
    """Whether an item's visit or trip column applies to this row."""
    if column.only is None:
        return True
    return bool(row["is_visit"]) == (column.only == "visit")


def stored(column: Column, row: dict[str, Any]) -> Any:
    """The value the export must show for the column: None where it does not apply."""
    return row[column.name] if applies(column, row) else None


def escaped(text: str) -> str:
    """Text as CSV, TSV and XLSX must hold it (SPEC 13's formula rule)."""
    return "'" + text if text and text[0] in ESCAPED_STARTS else text


# --- CSV and TSV -------------------------------------------------------------------------------


def read_delimited(data: bytes, delimiter: str) -> tuple[list[str], list[list[str]]]:
    """Header and records, read by Python's csv module; asserts CRLF record ends."""
    assert not data.startswith(BOM), "a BOM only when asked"
    text = data.decode("utf-8")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    assert text.endswith("\r\n")
    return records[0], records[1:]


def check_delimited_cell(column: Column, cell: str, row: dict[str, Any], zone: str) -> None:
    """One CSV/TSV cell against the stored row."""
    value = stored(column, row)
    where = f"{column.name} of {row['id']}: {cell!r} vs {value!r}"
    if value is None:
        assert cell == "", where
    elif column.kind is Kind.TEXT:
        assert cell == escaped(value), where
    elif column.kind is Kind.DATE:
        assert cell == iso_in_zone(value, zone), where
    elif column.kind is Kind.BOOL:
        assert cell == ("true" if value else "false"), where
    elif column.kind is Kind.FLOAT:
        if not math.isfinite(value):
            assert cell == "", where
        else:
            assert "e" not in cell.lower() and float(cell) == value, where
            assert math.copysign(1, float(cell)) == math.copysign(1, value), where
    else:
        assert cell == str(value), where


# --- JSON ------------------------------------------------------------------------------------


def read_json(data: bytes, *, lines: bool) -> list[dict[str, Any]]:
    """The objects of a JSON array or of JSON Lines, keys in file order."""
    if lines:
        text = data.decode("utf-8")
        assert text == "" or text.endswith("\n")
        # JSON Lines splits at LF only (str.splitlines would split at U+2028 too).
        return [json.loads(line) for line in text.split("\n")[:-1]]
    loaded = json.loads(data)
    assert isinstance(loaded, list)
    return loaded


def check_json_value(column: Column, found: Any, row: dict[str, Any], zone: str) -> None:
    """One JSON value against the stored row (text exactly as stored: no escaping)."""
    value = stored(column, row)
    where = f"{column.name} of {row['id']}: {found!r} vs {value!r}"
    if value is None or (column.kind is Kind.FLOAT and not math.isfinite(value)):
        assert found is None, where
    elif column.kind is Kind.DATE:
        assert found == iso_in_zone(value, zone), where
    elif column.kind is Kind.FLOAT:
        assert isinstance(found, int | float) and not isinstance(found, bool), where
        assert float(found) == value, where
    else:
        assert found == value and type(found) is type(value), where


# --- XLSX ------------------------------------------------------------------------------------


def read_xlsx(path: Path | bytes) -> dict[str, list[tuple[Any, ...]]]:
    """Every sheet's rows (header included) as openpyxl reads them, by sheet name.

    Text goes through OOXML's `_xHHHH_` unescaping, which Excel applies when it reads a
    cell and openpyxl leaves to its caller (`openpyxl.utils.escape.unescape`).
    """
    source: Any = io.BytesIO(path) if isinstance(path, bytes) else path
    book = load_workbook(source, read_only=True)
    try:
        return {
            sheet.title: [
                tuple(unescape(v) if isinstance(v, str) else v for v in row)
                for row in sheet.iter_rows(values_only=True)
            ]
            for sheet in book.worksheets
        }
    finally:
        book.close()


def check_xlsx_cell(column: Column, found: Any, row: dict[str, Any], zone: str) -> None:
    """One XLSX cell against the stored row: typed, dates as wall time in the zone."""
    value = stored(column, row)
    where = f"{column.name} of {row['id']}: {found!r} vs {value!r}"
    if value is None or (column.kind is Kind.FLOAT and not math.isfinite(value)):
        assert found is None, where
    elif column.kind is Kind.DATE:
        local = value.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        if local < datetime(1900, 3, 1):
            assert found == iso_in_zone(value, zone), where
        else:
            # openpyxl turns serials into datetimes rounded to the millisecond.
            assert isinstance(found, datetime), where
            assert abs(found - local) <= timedelta(milliseconds=0.5), where
    elif column.kind is Kind.TEXT:
        assert found == escaped(value)[:CELL_MAX_CHARS], where
    elif column.kind is Kind.BOOL:
        assert found is value, where
    elif column.kind is Kind.FLOAT:
        assert isinstance(found, float | int) and float(found) == value, where
    else:
        assert found == value, where
