"""The value rules of table exports (SPEC 13), in their Python form, and the tables' columns.

The integration tests check PostgreSQL's output against the same rules.
"""

from __future__ import annotations

import dataclasses
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import fields
from shared.fields import Kind
from shared.tables import columns as columns_module
from shared.tables.columns import TABLES
from shared.tables.values import excel_serial, iso_in_zone, neutralise, plain_float

# --- the formula rule ------------------------------------------------------------------------

FIRSTS = ["=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20", "'"]


@pytest.mark.parametrize("first", FIRSTS)
def test_given_text_starting_like_a_formula_when_written_then_one_quote_goes_first(
    first: str,
) -> None:
    assert neutralise(first + "cmd|' /C calc'!A0") == "'" + first + "cmd|' /C calc'!A0"
    assert neutralise(first) == "'" + first


@pytest.mark.parametrize(
    "text", ["", "a=b", "1+1", "x-y", "me@host", "in\ttab", "a\nb", " =leading space", "日本"]
)
def test_given_text_that_only_contains_them_later_when_written_then_it_is_unchanged(
    text: str,
) -> None:
    assert neutralise(text) == text


@given(st.text())
def test_given_any_text_when_written_and_one_quote_stripped_as_the_import_will_then_it_is_back(
    text: str,
) -> None:
    """The import strips one `'` when one of FIRSTS follows it: lossless for every text."""
    written = neutralise(text)
    read = written[1:] if written[:1] == "'" and written[1:2] in FIRSTS else written
    assert read == text


# --- floats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("1e-05", "0.00001"),
        ("-1.2345e-07", "-0.00000012345"),
        ("5e-324", "0." + "0" * 323 + "5"),
        ("1.5e+20", "150000000000000000000"),
        ("1e+15", "1000000000000000"),
        ("1.2345678901234567e+15", "1234567890123456.7"),
        ("-9.5e+16", "-95000000000000000"),
        ("0.25", "0.25"),
        ("-0", "-0"),
    ],
)
def test_given_a_float_in_exponent_form_when_written_then_positional_with_the_same_digits(
    text: str, plain: str
) -> None:
    assert plain_float(text) == plain
    assert float(plain) == float(text)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_given_any_double_when_written_positionally_then_it_reads_back_as_the_same_double(
    value: float,
) -> None:
    written = plain_float(repr(value))
    assert "e" not in written
    assert struct.pack("<d", float(written)) == struct.pack("<d", value)


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "zone", "text"),
    [
        (datetime(2024, 1, 31, 9, 30, tzinfo=UTC), "UTC", "2024-01-31T09:30:00Z"),
        (datetime(2024, 1, 31, 9, 30, 0, 250000, tzinfo=UTC), "UTC", "2024-01-31T09:30:00.25Z"),
        (datetime(2024, 1, 31, 9, 30, tzinfo=UTC), "Europe/Berlin", "2024-01-31T10:30:00+01:00"),
        (datetime(2024, 7, 1, 9, 30, tzinfo=UTC), "Europe/Berlin", "2024-07-01T11:30:00+02:00"),
        (datetime(2024, 7, 1, 12, tzinfo=UTC), "America/St_Johns", "2024-07-01T09:30:00-02:30"),
        (datetime(2024, 7, 1, 12, tzinfo=UTC), "Asia/Kathmandu", "2024-07-01T17:45:00+05:45"),
        (datetime(1880, 1, 1, 12, tzinfo=UTC), "Europe/Berlin", "1880-01-01T12:00:00Z"),
    ],
)
def test_given_a_moment_and_a_zone_when_written_then_iso_8601_with_that_moments_offset(
    moment: datetime, zone: str, text: str
) -> None:
    assert iso_in_zone(moment, zone) == text
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment


def test_given_wall_times_when_turned_into_excel_serials_then_days_since_1899_12_30() -> None:
    assert excel_serial(datetime(1900, 3, 1)) == 61.0
    assert excel_serial(datetime(2024, 1, 1, 12)) == 45292.5
    assert excel_serial(datetime(1900, 2, 28, 23, 59)) is None, "Excel's fictitious 1900-02-29"


# --- the tables' columns ---------------------------------------------------------------------


def test_given_the_field_tables_when_read_then_each_table_has_their_columns_in_order() -> None:
    assert TABLES["samples"].names == fields.SAMPLE_COLUMNS
    assert TABLES["places"].names == fields.PLACE_COLUMNS
    # SPEC 3's order: the visit's and the trip's lastSaved follow the base's last_saved.
    spec_order = [c for c in fields.ITEM_COLUMNS if not c.endswith("_last_saved")]
    at = spec_order.index("last_saved") + 1
    spec_order[at:at] = ["visit_last_saved", "trip_last_saved"]
    assert list(TABLES["items"].names) == spec_order
    assert TABLES["items"].names[10:13] == ("last_saved", "visit_last_saved", "trip_last_saved")
    for table in TABLES.values():
        assert "account_id" not in table.names
        assert len(set(table.names)) == len(table.names)


def test_given_items_when_read_then_visit_and_trip_columns_say_which_kind_they_apply_to() -> None:
    items = TABLES["items"]
    base = {f.column for f in fields.ITEM_BASE_FIELDS}
    for column in items.columns:
        if column.name in base:
            assert column.only is None, column.name
    assert items.column("custom_title").only == "visit"
    assert items.column("place_id").only == "visit"
    assert items.column("distance").only == "trip"
    assert items.column("start_date").kind is Kind.DATE


def test_given_a_new_field_when_the_tables_are_derived_then_it_is_exported_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Columns come from shared.fields, never from a hand-written list."""
    extra = fields.Field("visitMood", "visit_mood", Kind.TEXT)
    monkeypatch.setattr(columns_module, "VISIT_FIELDS", (*fields.VISIT_FIELDS, extra))

    derived = {c.name: c for c in columns_module._item_columns()}

    assert derived["visit_mood"] == columns_module.Column("visit_mood", Kind.TEXT, "visit")
    # after the visit columns, before the trip's (less the trip's lastSaved, moved up)
    assert list(derived)[-len(fields.TRIP_FIELDS)] == "visit_mood"


def test_given_a_column_in_both_visit_and_trip_fields_when_derived_then_it_applies_to_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared_one = dataclasses.replace(fields.VISIT_FIELDS[0], column="shared_column")
    monkeypatch.setattr(columns_module, "VISIT_FIELDS", (*fields.VISIT_FIELDS, shared_one))
    monkeypatch.setattr(columns_module, "TRIP_FIELDS", (*fields.TRIP_FIELDS, shared_one))

    derived = {c.name: c for c in columns_module._item_columns()}

    assert derived["shared_column"].only is None
    assert len(derived) == len(fields.ITEM_COLUMNS) + 1


def test_given_a_wall_time_with_microseconds_when_made_a_serial_then_it_keeps_them() -> None:
    """A serial double holds a moment of this century to about a microsecond."""
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456)
    serial = excel_serial(moment)
    assert serial is not None
    back = datetime(1899, 12, 30) + timedelta(days=serial)
    assert abs(back - moment) < timedelta(microseconds=2)
