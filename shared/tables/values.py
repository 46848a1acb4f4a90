"""How table exports write values: the rules, in one place. Pure.

The SQL in `shared.tables.sql` is generated from these constants, and the unit tests check
the Python forms here against the same corpus the integration tests run through
PostgreSQL, so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime

# A text whose first character is one of these is written with a leading "'" in CSV, TSV
# and XLSX, so no spreadsheet reads it as a formula (SPEC 13). The full-width forms are
# there because some spreadsheets fold them to their ASCII twins before parsing.
FORMULA_STARTS: tuple[str, ...] = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    "\n",
    "\uff1d",  # FULLWIDTH EQUALS SIGN
    "\uff0b",  # FULLWIDTH PLUS SIGN
    "\uff0d",  # FULLWIDTH HYPHEN-MINUS
    "\uff20",  # FULLWIDTH COMMERCIAL AT
)
ESCAPE = "'"
# A text that already starts with the escape gets one more, so that the import can strip
# exactly one "'" wherever one of these follows it and every text comes back as it was:
# "'=a" is written "''=a", read back "'=a"; "'abc" is written "''abc", read back "'abc".
ESCAPED_STARTS: tuple[str, ...] = (*FORMULA_STARTS, ESCAPE)

# Floats with a magnitude in [PLAIN_LOW, PLAIN_HIGH) (or zero) come out of PostgreSQL in
# positional notation already; outside it PostgreSQL writes an exponent ("1e-05"), which
# the CSV writers expand so that no spreadsheet shows a number in scientific form.
PLAIN_LOW = 1e-4
PLAIN_HIGH = 1e15

# Excel's serial dates count days from 1899-12-30 for every date from 1900-03-01 on (the
# fictitious 1900-02-29 makes earlier serials off by one); earlier moments are text.
EXCEL_EPOCH = datetime(1899, 12, 30)
EXCEL_FIRST_DATE = datetime(1900, 3, 1)
EXCEL_EPOCH_OFFSET_SECONDS = 2_209_161_600  # 1899-12-30 → 1970-01-01
SECONDS_PER_DAY = 86_400
# The most rows one sheet holds besides its header row (Excel's 1,048,576 in all).
SHEET_ROWS = 1_048_575
# The longest text one Excel cell holds (UTF-16 code units); longer texts are cut there.
CELL_MAX_CHARS = 32_767


def neutralise(text: str) -> str:
    """`text` as CSV, TSV and XLSX write it: with a leading "'" when it looks like a formula
    (or starts with "'" itself)."""
    if text and text[0] in ESCAPED_STARTS:
        return ESCAPE + text
    return text


def plain_float(text: str) -> str:
    """A float's shortest text (as PostgreSQL or `repr` writes it) in positional notation.

    "1e-05" → "0.00001", "1.5e+20" → "150000000000000000000"; digits are never added or
    lost, so the text reads back as the same double.
    """
    mantissa, found, exponent_text = text.partition("e")
    if not found:
        return text
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "")
    exponent = int(exponent_text)
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    if len(digits) - 1 <= exponent:
        return f"{sign}{digits}{'0' * (exponent - len(digits) + 1)}"
    return f"{sign}{digits[: exponent + 1]}.{digits[exponent + 1 :]}"


def excel_serial(local: datetime) -> float | None:
    """The Excel serial date of a wall-clock time (None before 1900-03-01)."""
    naive = local.replace(tzinfo=None)
    if naive < EXCEL_FIRST_DATE:
        return None
    return (naive - EXCEL_EPOCH).total_seconds() / SECONDS_PER_DAY


def iso_in_zone(moment: datetime, zone: str) -> str:
    """A moment as the exports write it: ISO 8601 in `zone`, `Z` for UTC, else its offset.

    Fractional seconds only when present, trailing zeros trimmed. An offset with seconds
    (local mean time of the 1800s) has no ISO 8601 form: such a moment is written in UTC.
    """
    from zoneinfo import ZoneInfo

    if zone == "UTC":
        return _wall(moment.astimezone(UTC)) + "Z"
    local = moment.astimezone(ZoneInfo(zone))
    offset = local.utcoffset()
    assert offset is not None
    seconds = int(offset.total_seconds())
    if seconds % 60:
        return _wall(moment.astimezone(UTC)) + "Z"
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{_wall(local)}{sign}{hours:02d}:{minutes:02d}"


def _wall(value: datetime) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text
