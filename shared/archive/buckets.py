"""Bucket names of the archive layout: place hex digit, UTC month, ISO 8601 week."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

PLACE_BUCKETS = tuple("0123456789ABCDEF")
_WEEK_NAME = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH_NAME = re.compile(r"^(\d{4})-(\d{2})$")


def place_bucket(place_id: str) -> str:
    """The places file of a place: the first character of its upper-case id."""
    first = place_id[:1].upper()
    if first not in PLACE_BUCKETS:
        raise ValueError(f"place id {place_id!r} does not start with a hex digit")
    return first


def month_bucket(moment: datetime) -> str:
    """The items file of an item: `YYYY-MM` of its start date in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m")


def week_bucket(moment: datetime) -> str:
    """The samples file of a sample: ISO 8601 week `YYYY-Www` of its date in UTC."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year:04d}-W{week:02d}"


def week_of_monday(monday: date) -> str:
    """The ISO week name of the week that starts on `monday`."""
    if monday.isoweekday() != 1:
        raise ValueError(f"{monday} is not a Monday")
    year, week, _ = monday.isocalendar()
    return f"{year:04d}-W{week:02d}"


def week_range(name: str) -> tuple[datetime, datetime]:
    """The UTC instants `[start, end)` covered by an ISO week name."""
    match = _WEEK_NAME.match(name)
    if not match:
        raise ValueError(f"not an ISO week name: {name!r}")
    monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return start, start + timedelta(days=7)


def month_range(name: str) -> tuple[datetime, datetime]:
    """The UTC instants `[start, end)` covered by a `YYYY-MM` name."""
    match = _MONTH_NAME.match(name)
    if not match:
        raise ValueError(f"not a month name: {name!r}")
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end
