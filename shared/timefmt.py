"""Dates as the archive writes and reads them (SPEC section 4)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

APPLE_EPOCH = datetime(2001, 1, 1, tzinfo=UTC)
# Numeric dates below this are seconds since 2001-01-01 (Apple's reference date);
# at or above it they are Unix seconds. 978307200 is 2001-01-01 in Unix seconds.
APPLE_EPOCH_UNIX = 978_307_200
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_iso(value: datetime) -> str:
    """ISO 8601 UTC ending in `Z`; fractional seconds only when present, zeros trimmed."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 date with `Z` or an offset; a naive value is taken as UTC."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    # fromisoformat accepts at most 6 fractional digits; Swift may write more or fewer.
    dot = raw.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(raw) and raw[end].isdigit():
            end += 1
        digits = raw[dot + 1 : end]
        if not digits:
            raise ValueError(f"not an ISO 8601 date: {text!r}")
        raw = raw[:dot] + "." + (digits + "000000")[:6] + raw[end:]
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 names an instant before the first one Python has.
        raise ValueError(f"date out of range: {text!r}") from None


def from_number(seconds: float) -> datetime:
    """A numeric archive date: Apple reference seconds below 978307200, Unix seconds above."""
    if not math.isfinite(seconds):
        raise ValueError("date is not a finite number")
    base = APPLE_EPOCH if seconds < APPLE_EPOCH_UNIX else _UNIX_EPOCH
    return base + timedelta(seconds=seconds)


def decode_date(value: object) -> datetime:
    """An archive date in any accepted form (string or number) as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError("expected a date, got a boolean")
    if isinstance(value, int | float):
        return from_number(float(value))
    if isinstance(value, str):
        return parse_iso(value)
    raise ValueError(f"expected a date, got {type(value).__name__}")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
