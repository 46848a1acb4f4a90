"""SQL that makes PostgreSQL write archive JSON itself, one object per line.

Built from the field tables in `records`, so the SQL and the Python codecs cannot
disagree (an integration test compares them row by row). `concat_ws` skips NULL
arguments, which omits null fields without `json_strip_nulls` re-parsing every object:
on 1 M samples the server spends 5.5 s here against 13.5 s for
`json_strip_nulls(json_build_object(...))` and 7.2 s for plain `row_to_json`
(bench/export.py, docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.fields import (
    ITEM_BASE_FIELDS,
    PLACE_FIELDS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Field,
    Kind,
)

# COPY's CSV format with a quote and a delimiter that JSON text never contains (control
# characters are always escaped inside JSON strings): each line arrives exactly as
# PostgreSQL built it. The default text format would escape every backslash again.
COPY_OPTIONS = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


def _value_sql(field: Field, column: str) -> str:
    if field.kind is Kind.UUID:
        return f"'\"' || upper({column}::text) || '\"'"
    if field.kind is Kind.DATE:
        # With DateStyle ISO (set on every connection) a UTC timestamp's text is
        # "2024-01-31 09:30:00.25": fractional seconds only when present. 30 % cheaper
        # than to_json or to_char on 1 M rows.
        return f"'\"' || replace(({column} AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z\"'"
    if field.kind is Kind.TEXT:
        return f"to_json({column})::text"
    if field.kind is Kind.FLOAT:
        # float8's text (extra_float_digits = 1) is the shortest exact form, valid JSON;
        # NaN and infinities have no JSON form and are left out like nulls. Cheaper than
        # to_json by 40 % on 1 M samples.
        return f"CASE WHEN {column} > '-Infinity' AND {column} < 'Infinity' THEN {column}::text END"
    # int, smallint, bool: their text form is their JSON form.
    return f"{column}::text"


def _pair_sql(field: Field, alias: str) -> str:
    return f"'\"{field.key}\":' || {_value_sql(field, f'{alias}.{field.column}')}"


def _object_sql(pairs: Sequence[str]) -> str:
    return "'{' || concat_ws(',', " + ", ".join(pairs) + ") || '}'"


def place_json(alias: str = "p") -> str:
    """An expression giving a place row's archive object as JSON text."""
    return _object_sql([_pair_sql(f, alias) for f in PLACE_FIELDS])


def sample_json(alias: str = "s") -> str:
    """An expression giving a sample row's archive object as JSON text."""
    return _object_sql([_pair_sql(f, alias) for f in SAMPLE_FIELDS])


def item_json(alias: str = "i") -> str:
    """An expression giving an item row's `{"base", "visit"|"trip"}` object as JSON text."""
    id_field = next(f for f in ITEM_BASE_FIELDS if f.key == "id")
    item_id = "'\"itemId\":' || " + _value_sql(id_field, f"{alias}.id")
    base = _object_sql([_pair_sql(f, alias) for f in ITEM_BASE_FIELDS])
    visit = _object_sql([item_id, *(_pair_sql(f, alias) for f in VISIT_FIELDS)])
    trip = _object_sql([item_id, *(_pair_sql(f, alias) for f in TRIP_FIELDS)])
    return (
        f"'{{\"base\":' || {base} || ',' || CASE WHEN {alias}.is_visit"
        f" THEN '\"visit\":' || {visit} ELSE '\"trip\":' || {trip} END || '}}'"
    )
