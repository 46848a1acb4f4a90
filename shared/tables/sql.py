"""SQL that makes PostgreSQL select and format a table's rows for each kind of file.

Three shapes of one selection (`Selection`): `text_columns` for COPY … (FORMAT csv), every
value already as the CSV cell's text (ISO dates in the zone, `true`/`false`, positional
floats, formula-like text escaped); `json_line` for JSON, one object per row built by the
server like `shared.archive.sql` does; `typed_columns` for XLSX, numbers as numbers and
dates as Excel serials. The formatting lives in SQL because the server does it in C
while Python only moves bytes (bench/tables.py, docs/design.md "Tables").

Dates that depend on the zone read the session's TimeZone: the connection that runs these
statements sets it to the export's zone first (`set_zone`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from shared.fields import Kind
from shared.tables.columns import Column, Table
from shared.tables.values import (
    ESCAPE,
    ESCAPED_STARTS,
    EXCEL_EPOCH_OFFSET_SECONDS,
    EXCEL_FIRST_DATE,
    PLAIN_HIGH,
    PLAIN_LOW,
    SECONDS_PER_DAY,
)

# COPY's CSV format with a quote and a delimiter that JSON text never contains: each JSON
# line arrives exactly as the server built it (see shared.archive.sql).
JSON_COPY_OPTIONS = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


@dataclass(frozen=True, slots=True)
class Selection:
    """What an export holds: the rows (FROM and WHERE with their values), the columns in
    the asked order, and the zone its dates are written in."""

    table: Table
    columns: tuple[Column, ...]
    zone: str
    from_where: str
    values: dict[str, Any]

    def select(self, expressions: Sequence[str]) -> str:
        """A SELECT of `expressions` over the selection, in the table's order."""
        return f"SELECT {', '.join(expressions)} {self.from_where} ORDER BY {self.table.order_by}"

    def count(self, limit: int | None = None) -> str:
        """A SELECT of the number of rows (at most `limit`, which stops early)."""
        if limit is None:
            return f"SELECT count(*) {self.from_where}"
        return f"SELECT count(*) FROM (SELECT 1 {self.from_where} LIMIT {int(limit)}) AS n"


def select_rows(
    table: Table,
    *,
    account_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: tuple[Column, ...] | None = None,
    zone: str = "UTC",
) -> Selection:
    """SPEC 13's selection: samples by date in [from, to), items overlapping, places by
    `last_saved` in [from, to)."""
    a = table.alias
    where = [f"{a}.account_id = %(account)s"]
    values: dict[str, Any] = {"account": account_id}
    if start is not None:
        values["start"] = start
    if end is not None:
        values["end"] = end
    if table.name == "items":
        if end is not None:
            where.append(f"{a}.start_date < %(end)s")
        if start is not None:
            # Overlapping: not over before the range starts (an instant item at the start
            # counts), exactly as the archive export selects items.
            where.append(f"({a}.end_date > %(start)s OR {a}.start_date >= %(start)s)")
    else:
        date = "date" if table.name == "samples" else "last_saved"
        if start is not None:
            where.append(f"{a}.{date} >= %(start)s")
        if end is not None:
            where.append(f"{a}.{date} < %(end)s")
    from_where = f"FROM {table.sql_table} {a} WHERE " + " AND ".join(where)
    return Selection(
        table=table,
        columns=table.columns if columns is None else columns,
        zone=zone,
        from_where=from_where,
        values=values,
    )


def begin_snapshot(conn: psycopg.Connection, zone: str) -> None:
    """Start the export's read-only snapshot on `conn`, speaking `zone`.

    One REPEATABLE READ transaction holds the count and the rows, so the progress total
    is the number of rows written. JIT is off: compiling the long formatting expressions
    costs seconds on 1 M rows and saves nothing, the time goes to the output functions
    (bench/tables.py).
    """
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.execute("SELECT set_config('TimeZone', %s, true), set_config('jit', 'off', true)", (zone,))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_ESCAPED = {"\t": "E'\\t'", "\r": "E'\\r'", "\n": "E'\\n'"}
_FORMULA_LIST = ", ".join(_ESCAPED.get(c) or _literal(c) for c in ESCAPED_STARTS)


def _only(column: Column, alias: str, expression: str) -> str:
    """Empty for the kind of item the column does not apply to."""
    if column.only is None:
        return expression
    test = f"{alias}.is_visit" if column.only == "visit" else f"NOT {alias}.is_visit"
    return f"CASE WHEN {test} THEN {expression} END"


def neutralised(value: str) -> str:
    """A text expression with the formula-injection escape applied (values.neutralise)."""
    return (
        f"CASE WHEN left({value}, 1) IN ({_FORMULA_LIST})"
        f" THEN {_literal(ESCAPE)} || {value} ELSE {value} END"
    )


def iso_date(value: str, zone: str) -> str:
    """A timestamptz expression as ISO 8601 text in `zone` (values.iso_in_zone)."""
    utc = f"replace(({value} AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z'"
    if zone == "UTC":
        # With DateStyle ISO the text is "2024-01-31 09:30:00.25": fractional seconds only
        # when present. Cheaper than to_char by a third on 1 M rows.
        return utc
    # In the session's zone the text ends in +HH, +HH:MM or (local mean time) +HH:MM:SS.
    text = f"{value}::text"
    return (
        f"CASE WHEN substr(right({text}, 3), 1, 1) IN ('+', '-')"
        f" THEN replace({text}, ' ', 'T') || ':00'"
        f" WHEN substr(right({text}, 6), 1, 1) IN ('+', '-') THEN replace({text}, ' ', 'T')"
        f" ELSE {utc} END"
    )


def plain_float(value: str) -> str:
    """A float8 expression as exact positional text, NULL when not finite (values.plain_float)."""
    text = f"{value}::text"
    digits = f"replace(split_part(ltrim({text}, '-'), 'e', 1), '.', '')"
    exponent = f"split_part({text}, 'e', 2)::int"
    sign = f"CASE WHEN {value} < 0 THEN '-' ELSE '' END"
    # NULL first: it would fall through every test below to the costly last branch.
    return (
        f"CASE WHEN {value} IS NULL THEN NULL"
        f" WHEN {value} = 0 OR (abs({value}) >= {PLAIN_LOW!r} AND abs({value}) < {PLAIN_HIGH!r})"
        f" THEN {text}"
        f" WHEN {value} IN ('NaN', 'Infinity', '-Infinity') THEN NULL"
        f" WHEN strpos({text}, 'e') = 0 THEN {text}"
        f" WHEN {exponent} < 0"
        f" THEN {sign} || '0.' || repeat('0', -{exponent} - 1) || {digits}"
        f" WHEN length({digits}) - 1 <= {exponent}"
        f" THEN {sign} || {digits} || repeat('0', {exponent} - length({digits}) + 1)"
        f" ELSE {sign} || left({digits}, {exponent} + 1) || '.' || substr({digits}, {exponent} + 2)"
        " END"
    )


def _finite(value: str) -> str:
    return f"CASE WHEN {value} > '-Infinity' AND {value} < 'Infinity' THEN {value} END"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def text_columns(table: Table, columns: Sequence[Column], zone: str) -> list[str]:
    """Every column as the text of its CSV cell (NULL for an empty cell), named for HEADER."""
    a = table.alias
    out = []
    for column in columns:
        ref = f"{a}.{column.name}"
        if column.kind is Kind.TEXT:
            expression = neutralised(ref)
        elif column.kind is Kind.DATE:
            expression = iso_date(ref, zone)
        elif column.kind is Kind.FLOAT:
            expression = plain_float(ref)
        elif column.kind is Kind.BOOL:
            expression = f"{ref}::text"  # 'true' / 'false' (COPY itself would write t / f)
        else:
            expression = ref  # uuid, int, smallint: COPY's own text is the cell's
        out.append(f"{_only(column, a, expression)} AS {_quoted(column.name)}")
    return out


def _json_value(column: Column, ref: str, zone: str) -> str:
    if column.kind is Kind.TEXT:
        return f"to_json({ref})::text"
    if column.kind is Kind.UUID:
        return f"'\"' || {ref}::text || '\"'"
    if column.kind is Kind.DATE:
        return f"'\"' || {iso_date(ref, zone)} || '\"'"
    if column.kind is Kind.FLOAT:
        # float8's shortest exact text is a valid JSON number; NaN and infinities are not.
        return f"{_finite(ref)}::text"
    return f"{ref}::text"  # int, smallint, bool: their text is their JSON


def json_line(table: Table, columns: Sequence[Column], zone: str) -> str:
    """One expression: the row as a JSON object, keys in the asked order, null for NULL."""
    a = table.alias
    parts = []
    for index, column in enumerate(columns):
        key = ("{" if index == 0 else ",") + _json_key(column.name) + ":"
        value = _only(column, a, _json_value(column, f"{a}.{column.name}", zone))
        parts.append(f"{_literal(key)} || coalesce({value}, 'null')")
    if not parts:
        return "'{}'"
    return " || ".join(parts) + " || '}'"


def _json_key(name: str) -> str:
    # Column names are snake_case identifiers: no character needs escaping in JSON.
    return '"' + name + '"'


def typed_columns(table: Table, columns: Sequence[Column], zone: str) -> list[str]:
    """Values for XLSX cells, each as the text its cell's XML holds: numbers in their
    shortest exact form, booleans 1 or 0, dates as Excel serials of the wall-clock time in
    the zone (plus, for each date, the ISO text of a moment no serial holds), text escaped,
    uuids as text. Python then only joins strings."""
    a = table.alias
    out = []
    for column in columns:
        ref = f"{a}.{column.name}"
        if column.kind is Kind.TEXT:
            out.append(_only(column, a, neutralised(ref)))
        elif column.kind is Kind.DATE:
            local = f"({ref} AT TIME ZONE {_literal(zone)})"
            first = _literal(EXCEL_FIRST_DATE.isoformat(sep=" "))
            # In numeric, rounded to a double once: the serial is then the double nearest
            # the moment, and the import gets the same microsecond back (date_part's
            # double sums and divides with three roundings, off by a microsecond at times).
            serial = (
                f"CASE WHEN {local} >= {first} THEN (((extract(epoch FROM {local})"
                f" + {EXCEL_EPOCH_OFFSET_SECONDS}) / {SECONDS_PER_DAY})::float8)::text END"
            )
            early = f"CASE WHEN {local} < {first} THEN {iso_date(ref, zone)} END"
            out.append(_only(column, a, serial))
            out.append(_only(column, a, early))
        elif column.kind is Kind.FLOAT:
            out.append(_only(column, a, f"({_finite(ref)})::text"))
        elif column.kind is Kind.BOOL:
            out.append(_only(column, a, f"CASE WHEN {ref} THEN '1' WHEN NOT {ref} THEN '0' END"))
        else:
            out.append(_only(column, a, f"{ref}::text"))  # uuid, int, smallint
    return out
