"""Bucket names of the archive layout (SPEC 4): place hex digit, UTC month, ISO 8601 week."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.archive.buckets import (
    PLACE_BUCKETS,
    month_bucket,
    month_range,
    place_bucket,
    week_bucket,
    week_of_monday,
    week_range,
)

# --- places ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("place_id", "bucket"),
    [
        ("0b6e7c1a-1111-4222-8333-444455556666", "0"),
        ("9fffffff-1111-4222-8333-444455556666", "9"),
        ("a1b2c3d4-1111-4222-8333-444455556666", "A"),
        ("F1B2C3D4-1111-4222-8333-444455556666", "F"),
        ("e1b2c3d4-1111-4222-8333-444455556666", "E"),
    ],
)
def test_given_a_place_id_when_bucketed_then_its_upper_case_first_char_names_the_file(
    place_id: str, bucket: str
) -> None:
    """A place goes to `places/<first char of the upper-case id>.json`, in any input case."""
    assert place_bucket(place_id) == bucket
    assert place_bucket(place_id.lower()) == place_bucket(place_id.upper())
    assert bucket in PLACE_BUCKETS


def test_the_place_buckets_are_the_sixteen_hex_digits_in_upper_case() -> None:
    """There are exactly 16 place files: 0.json … F.json."""
    assert tuple("0123456789ABCDEF") == PLACE_BUCKETS


@pytest.mark.parametrize("place_id", ["g1b2c3d4-1111", "-1b2", " a1b2", "", "Z"])
def test_given_an_id_not_starting_with_a_hex_digit_when_bucketed_then_it_is_refused(
    place_id: str,
) -> None:
    """An id whose first character is not a hex digit has no places file."""
    with pytest.raises(ValueError):
        place_bucket(place_id)


# --- months ---------------------------------------------------------------------------


def test_given_a_local_evening_that_is_next_month_in_utc_when_bucketed_then_utc_month_wins() -> (
    None
):
    """An item starting 31 Jan 20:00 at UTC-05:00 starts 1 Feb 01:00 UTC: `2024-02`."""
    new_york_winter = timezone(timedelta(hours=-5))
    start = datetime(2024, 1, 31, 20, 0, tzinfo=new_york_winter)

    assert month_bucket(start) == "2024-02"


def test_given_a_local_morning_that_is_last_month_in_utc_when_bucketed_then_utc_month_wins() -> (
    None
):
    """An item starting 1 Mar 05:00 at UTC+09:00 starts 28 Feb 20:00 UTC: `2023-02`."""
    tokyo = timezone(timedelta(hours=9))
    start = datetime(2023, 3, 1, 5, 0, tzinfo=tokyo)

    assert month_bucket(start) == "2023-02"


def test_given_new_years_eve_in_utc_when_bucketed_then_the_month_is_december() -> None:
    """The last microsecond of a year still belongs to its December."""
    assert month_bucket(datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == "2024-12"
    assert month_bucket(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01"


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("2024-01", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)),
        ("2024-02", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-11", datetime(2024, 11, 1, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC)),
        ("2024-12", datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_given_a_month_name_when_ranged_then_it_covers_exactly_that_utc_month(
    name: str, start: datetime, end: datetime
) -> None:
    """`month_range` gives `[first instant, first instant of the next month)` in UTC."""
    assert month_range(name) == (start, end)
    assert month_bucket(start) == name
    assert month_bucket(end - timedelta(microseconds=1)) == name
    assert month_bucket(end) != name


@pytest.mark.parametrize("name", ["2024-1", "2024/01", "24-01", "2024-W01", ""])
def test_given_a_malformed_month_name_when_ranged_then_it_is_refused(name: str) -> None:
    """Only `YYYY-MM` names a month."""
    with pytest.raises(ValueError):
        month_range(name)


# --- ISO weeks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "week"),
    [
        (datetime(2024, 12, 30, 12, tzinfo=UTC), "2025-W01"),  # SPEC 4's example
        (datetime(2021, 1, 3, 12, tzinfo=UTC), "2020-W53"),  # SPEC 4's example
        (datetime(2020, 12, 31, 12, tzinfo=UTC), "2020-W53"),
        (datetime(2024, 1, 1, 0, tzinfo=UTC), "2024-W01"),
        (datetime(2023, 1, 1, 23, 59, tzinfo=UTC), "2022-W52"),
        (datetime(2026, 12, 31, 12, tzinfo=UTC), "2026-W53"),
        (datetime(2024, 6, 15, 12, tzinfo=UTC), "2024-W24"),
    ],
)
def test_given_a_utc_instant_when_bucketed_then_its_iso_week_year_and_number_name_the_file(
    day: datetime, week: str
) -> None:
    """Weeks are ISO 8601 week dates: the week-year may differ from the calendar year."""
    assert week_bucket(day) == week


def test_given_a_sunday_evening_that_is_monday_in_utc_when_bucketed_then_the_utc_week_wins() -> (
    None
):
    """Sunday 2024-12-29 22:00 at UTC-03:00 is Monday 2024-12-30 01:00 UTC: `2025-W01`."""
    local = datetime(2024, 12, 29, 22, 0, tzinfo=timezone(timedelta(hours=-3)))

    assert week_bucket(local) == "2025-W01"


def test_given_a_monday_morning_that_is_sunday_in_utc_when_bucketed_then_the_utc_week_wins() -> (
    None
):
    """Monday 2021-01-04 01:00 at UTC+02:00 is Sunday 2021-01-03 23:00 UTC: `2020-W53`."""
    local = datetime(2021, 1, 4, 1, 0, tzinfo=timezone(timedelta(hours=2)))

    assert week_bucket(local) == "2020-W53"


@pytest.mark.parametrize("name", ["2025-W01", "2020-W53", "2024-W52", "2026-W53", "2015-W53"])
def test_given_a_week_name_when_ranged_then_it_covers_monday_to_monday_in_utc(name: str) -> None:
    """`week_range` gives seven days from Monday 00:00 UTC, and round-trips with the bucket."""
    start, end = week_range(name)

    assert start.tzinfo is not None and start.utcoffset() == timedelta(0)
    assert start.isoweekday() == 1
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)
    assert end - start == timedelta(days=7)
    assert week_bucket(start) == name
    assert week_bucket(end - timedelta(microseconds=1)) == name
    assert week_bucket(start - timedelta(microseconds=1)) != name
    assert week_bucket(end) != name
    assert week_of_monday(start.date()) == name


def test_the_week_2025_w01_starts_on_monday_2024_12_30() -> None:
    """SPEC 4's example, read from the other side."""
    assert week_range("2025-W01")[0] == datetime(2024, 12, 30, tzinfo=UTC)
    assert week_range("2020-W53")[0] == datetime(2020, 12, 28, tzinfo=UTC)


@pytest.mark.parametrize("name", ["2025-W1", "2025W01", "2025-01", "2024-W54", "2025-W00", ""])
def test_given_a_malformed_or_impossible_week_name_when_ranged_then_it_is_refused(
    name: str,
) -> None:
    """Only `YYYY-Www` of a week that exists names a week."""
    with pytest.raises(ValueError):
        week_range(name)


def test_given_a_day_that_is_not_a_monday_when_naming_its_week_then_it_is_refused() -> None:
    """`week_of_monday` guards against off-by-some-days callers."""
    with pytest.raises(ValueError):
        week_of_monday(date(2024, 12, 31))


_offsets = st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14)).map(
    lambda delta: timezone(timedelta(minutes=delta // timedelta(minutes=1)))
)
_aware = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 12, 31), timezones=_offsets
)


@given(_aware)
def test_property_every_instant_lies_in_the_week_its_bucket_names(moment: datetime) -> None:
    """For any aware instant, the week its sample file names covers that instant."""
    name = week_bucket(moment)
    start, end = week_range(name)

    assert start <= moment < end


@given(_aware)
def test_property_every_instant_lies_in_the_month_its_bucket_names(moment: datetime) -> None:
    """For any aware instant, the month its items file names covers that instant."""
    start, end = month_range(month_bucket(moment))

    assert start <= moment < end
