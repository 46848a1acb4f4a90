"""Dates as the archive writes and reads them (SPEC 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.timefmt import (
    APPLE_EPOCH_UNIX,
    decode_date,
    format_iso,
    from_number,
    parse_iso,
    utcnow,
)

# --- writing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2024-01-02T03:04:05.12Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC), "2024-01-02T03:04:05.000001Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC), "2024-01-02T03:04:05.5Z"),
    ],
)
def test_given_a_utc_instant_when_formatted_then_it_ends_in_z_with_trimmed_fraction(
    value: datetime, text: str
) -> None:
    """Dates are written as ISO 8601 UTC ending in `Z`; fractions only when present."""
    assert format_iso(value) == text


def test_given_an_instant_with_an_offset_when_formatted_then_it_is_written_in_utc() -> None:
    """A local time is converted, never written with its offset."""
    local = datetime(2024, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))

    assert format_iso(local) == "2024-02-29T23:30:00Z"


# --- reading strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05+00:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-01T22:04:05-05:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.1Z", datetime(2024, 1, 2, 3, 4, 5, 100000, tzinfo=UTC)),
        ("2024-01-02T03:04:05.12Z", datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123Z", datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)),
        ("2024-01-02T03:04:05.1234Z", datetime(2024, 1, 2, 3, 4, 5, 123400, tzinfo=UTC)),
        ("2024-01-02T03:04:05.12345Z", datetime(2024, 1, 2, 3, 4, 5, 123450, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05.1234567Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05.12345678Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456789Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T05:04:05.123456789+02:00", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
    ],
)
def test_given_an_iso_date_in_any_accepted_form_when_parsed_then_it_is_that_utc_instant(
    text: str, value: datetime
) -> None:
    """`Z`, offsets, 1 to 9 fraction digits (Swift writes several) and naive (= UTC) dates."""
    parsed = parse_iso(text)

    assert parsed == value
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-01-02T03:04:05.Z", "2024-01-32"]
)
def test_given_text_that_is_not_an_iso_date_when_parsed_then_it_is_refused(text: str) -> None:
    """Garbage never becomes a date."""
    with pytest.raises(ValueError):
        parse_iso(text)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_given_a_date_whose_utc_instant_is_out_of_range_when_parsed_then_a_value_error(
    text: str,
) -> None:
    """A date that is valid ISO 8601 but names an instant before year 1 or after 9999 in
    UTC is refused with a ValueError, like any other bad date (not an OverflowError)."""
    with pytest.raises(ValueError, match="out of range"):
        parse_iso(text)


_instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(_instants)
def test_property_what_is_written_reads_back_to_the_same_microsecond(value: datetime) -> None:
    """format_iso then parse_iso is the identity on UTC instants."""
    text = format_iso(value)

    assert text.endswith("Z")
    assert parse_iso(text) == value


# --- reading numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "value"),
    [
        (0, datetime(2001, 1, 1, tzinfo=UTC)),
        (86400, datetime(2001, 1, 2, tzinfo=UTC)),
        (700_000_000, datetime(2023, 3, 8, 20, 26, 40, tzinfo=UTC)),
        (700_000_000.5, datetime(2023, 3, 8, 20, 26, 40, 500000, tzinfo=UTC)),
        (978_307_199, datetime(2001, 1, 1, tzinfo=UTC) + timedelta(seconds=978_307_199)),
        (978_307_200, datetime(2001, 1, 1, tzinfo=UTC)),
        (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1_700_000_000.25, datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)),
    ],
)
def test_given_a_numeric_date_when_read_then_below_978307200_is_apple_time_else_unix(
    number: float, value: datetime
) -> None:
    """Values below 978307200 are seconds since 2001-01-01Z; from there on, Unix seconds."""
    assert APPLE_EPOCH_UNIX == 978_307_200
    assert from_number(number) == value
    assert decode_date(number) == value


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_given_a_non_finite_number_when_read_as_a_date_then_it_is_refused(number: float) -> None:
    """NaN and infinities are not dates."""
    with pytest.raises(ValueError):
        decode_date(number)


@pytest.mark.parametrize("value", [True, False, None, [2024], {"date": 0}])
def test_given_a_value_that_is_neither_text_nor_number_when_read_as_a_date_then_refused(
    value: object,
) -> None:
    """A boolean is not a number of seconds, and lists or objects are not dates."""
    with pytest.raises(ValueError):
        decode_date(value)


def test_given_a_string_when_read_as_a_date_then_it_is_parsed_as_iso() -> None:
    """`decode_date` reads the string form too."""
    assert decode_date("2024-12-30T00:00:00Z") == datetime(2024, 12, 30, tzinfo=UTC)


def test_utcnow_is_aware_utc_and_current() -> None:
    """The clock the code stamps records with is UTC, never naive local time."""
    before = datetime.now(UTC)
    now = utcnow()
    after = datetime.now(UTC)

    assert now.utcoffset() == timedelta(0)
    assert before <= now <= after
