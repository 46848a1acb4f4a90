"""The table import's pure rules: header matching, mappings, and each cell's reading."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.errors import ValidationFailed
from shared.tables.cells import unescape
from shared.tables.columns import TABLES
from shared.tables.mapping import match, normalise, parse_mapping
from shared.tables.rows import RowReader
from shared.tables.values import neutralise

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "name", ["timeline_item_id", "timelineItemId", "Timeline Item ID", "TIMELINE-ITEM-ID"]
)
def test_headers_match_ignoring_case_spaces_underscores_and_camel_case(name: str) -> None:
    assert normalise(name) == normalise("timeline_item_id")
    found = match([name, "other"], TABLES["samples"], {})
    assert found.used == {name: "timeline_item_id"}
    assert found.unmapped == ["other"]


def test_an_explicit_mapping_wins_and_a_column_is_fed_once() -> None:
    found = match(["id", "Key", "speed"], TABLES["samples"], {"Key": "id", "speed": None})
    assert found.used == {"Key": "id", "speed": None}
    assert found.unmapped == ["id"]  # would feed `id` a second time


@pytest.mark.parametrize(
    ("raw", "column"),
    [({"a": "nope"}, "nope"), ({"a": "speed", "b": "speed"}, "speed")],
)
def test_a_mapping_to_an_unknown_column_or_twice_to_one_is_a_422_naming_it(
    raw: dict[str, str], column: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_mapping(raw, TABLES["samples"])
    assert refused.value.details == {"field": "mapping", "column": column}


@pytest.mark.parametrize(
    "text", ["=1", "+1", "-1", "@a", "\ta", "\ra", "\na", "\uff1da", "'a", "''a", "a'", "plain"]
)
def test_one_escape_is_removed_exactly_where_the_export_added_it(text: str) -> None:
    assert unescape(neutralise(text)) == text


def _reader(table: str, header: list[str], **options: Any) -> RowReader:
    found = match(header, TABLES[table], {})
    return RowReader(
        table=table,
        header=header,
        mapped=found.columns(header),
        zone=ZoneInfo(options.pop("zone", "UTC")),
        escaped=options.pop("escaped", True),
        now=NOW,
        generate_ids=False,
        **options,
    )


SAMPLE = ["id", "date", "speed", "moving_state", "disabled", "source", "seconds_from_gmt"]
GOOD = ["0b3f6a64-5a51-4e8b-9a0e-1e4a0b7a7f11", "2024-01-01T10:00:00Z", "1.5", "1", "true"]


@pytest.mark.parametrize(
    ("column", "cell", "reason"),
    [
        ("speed", "nan", "not a finite number"),
        ("speed", "inf", "not a finite number"),
        ("speed", "1_000", "not a number"),
        ("speed", "fast", "not a number"),
        ("moving_state", "2", "must be at most 1"),
        ("moving_state", "1.5", "not an integer"),
        ("seconds_from_gmt", "99999999999", "not a 32-bit integer"),
        ("disabled", "maybe", "not true or false"),
        ("id", "not-a-uuid", "not a UUID"),
        ("date", "31/12/2024", "not an ISO 8601 date"),
        ("source", "a\x00b", "holds the character U+0000"),
    ],
)
def test_a_bad_cell_is_an_error_naming_row_column_value_and_reason(
    column: str, cell: str, reason: str
) -> None:
    reader = _reader("samples", SAMPLE)
    cells = [*GOOD, "app", "3600"]
    cells[SAMPLE.index(column)] = cell
    values, errors, _ = reader.read(7, cells)
    assert values is None
    assert errors == [{"row": 7, "column": column, "value": cell, "reason": reason}]


def test_good_cells_read_as_stored_with_defaults_for_empty_ones() -> None:
    reader = _reader("samples", SAMPLE, zone="Europe/Berlin")
    values, errors, _ = reader.read(
        2, [GOOD[0].upper(), "2024-07-01 12:00:00", "5", "-1", "FALSE", "", "-3600"]
    )
    assert errors == []
    assert values is not None
    row = dict(zip(reader.columns, values, strict=True))
    assert row["id"] == GOOD[0]
    assert row["date"] == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)
    assert row["speed"] == 5.0 and row["moving_state"] == -1 and row["disabled"] is False
    assert row["source"] == "LocoKit2"  # an empty cell of a column the apps require
    assert row["seconds_from_gmt"] == -3600


def test_an_item_row_is_checked_as_the_arc_apps_need() -> None:
    header = ["id", "is_visit", "start_date", "end_date", "distance", "radius_mean"]
    reader = _reader("items", header)
    key = GOOD[0]
    values, errors, _ = reader.read(
        3, [key, "true", "2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z", "12", ""]
    )
    assert values is None
    assert [(e["column"], e["reason"]) for e in errors] == [
        ("end_date", "is before start_date"),
        ("distance", "applies to trips only; this row is a visit"),
    ]
    values, errors, _ = reader.read(
        4, [key, "true", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "", ""]
    )
    assert errors == [] and values is not None
    row = dict(zip(reader.columns, values, strict=True))
    assert row["radius_mean"] == 50.0 and row["distance"] is None
