"""One cell of an imported table as the value Ferry stores (SPEC 13 "Import"). Pure.

`parser(kind, …)` gives a function: raw cell → value, raising ValueError with the reason.
Cells come as text (CSV, TSV) or typed (JSON values, XLSX numbers, booleans and dates);
a typed cell that holds text is read as text. Empty cells never reach a parser.

Texts lose exactly the one leading `'` of Ferry's own formula escaping: only when the
character after it is one the export would have escaped (`values.ESCAPED_STARTS`), and
only in the formats the export escapes (CSV, TSV, XLSX), so export → import gives every
text back as it was. Numbers are never altered: a float's text reads as the same double.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any

from shared.fields import Kind
from shared.tables.values import ESCAPE, ESCAPED_STARTS

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_UUID_MATCH = _UUID.match
_INT_TEXT = re.compile(r"^\s*[+-]?\d+(\.0*)?\s*$").match
_INT32 = 2**31 - 1
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_ESCAPED = frozenset(ESCAPED_STARTS)

Parser = Callable[[Any], Any]


def unescape(text: str) -> str:
    """A text as stored, from its escaped form in CSV, TSV or XLSX (one `'` less)."""
    if len(text) > 1 and text[0] == ESCAPE and text[1] in _ESCAPED:
        return text[1:]
    return text


def parse_date(text: str, zone: tzinfo) -> datetime:
    """An ISO 8601 date; one without an offset is in `zone`."""
    value = text.strip()
    if value[-1:] in ("z", "Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed


def parser(
    kind: Kind, *, zone: tzinfo, escaped: bool, date_epoch: datetime | None = None
) -> Parser:
    """The reader of a column's cells: raw cell → stored value (ValueError: why not)."""
    if kind is Kind.UUID:

        def uuid(v: Any) -> str:
            if v.__class__ is str and _UUID_MATCH(v.strip()):
                return v.strip().lower()
            raise ValueError("not a UUID")

        return uuid
    if kind is Kind.TEXT:

        def text(v: Any) -> str:
            if v.__class__ is not str:
                if v.__class__ is bool or not isinstance(v, int | float):
                    raise ValueError("not a text")
                v = str(v)
            if "\x00" in v:
                raise ValueError("holds the character U+0000")
            return unescape(v) if escaped else v

        return text
    if kind in (Kind.INT, Kind.SMALLINT):

        def integer(v: Any) -> int:
            t = v.__class__
            if t is str:
                if not _INT_TEXT(v):
                    raise ValueError("not an integer")
                value = int(v.strip().split(".")[0])
            elif t is int:
                value = v
            elif t is float and v.is_integer():
                value = int(v)
            else:
                raise ValueError("not an integer")
            if not -_INT32 - 1 <= value <= _INT32:
                raise ValueError("not a 32-bit integer")
            return value

        return integer
    if kind is Kind.FLOAT:

        def number(v: Any) -> float:
            t = v.__class__
            if t is str:
                try:
                    value = float(v)
                except ValueError:
                    raise ValueError("not a number") from None
                if "_" in v:
                    raise ValueError("not a number")
            elif t is float or t is int:
                value = float(v)
            else:
                raise ValueError("not a number")
            # `v - v == 0.0` is False for NaN and the infinities only.
            if value - value != 0.0:
                raise ValueError("not a finite number")
            return value

        return number
    if kind is Kind.BOOL:

        def boolean(v: Any) -> bool:
            if v.__class__ is bool:
                return bool(v)
            if v.__class__ is str:
                low = v.strip().lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
            raise ValueError("not true or false")

        return boolean

    def date(v: Any) -> datetime:
        if v.__class__ is datetime:
            # An XLSX date is the wall-clock time in the import's zone.
            return v if v.tzinfo is not None else v.replace(tzinfo=zone)
        if v.__class__ is str and v.strip():
            try:
                return parse_date(v, zone)
            except ValueError:
                pass
        if date_epoch is not None and v.__class__ in (int, float) and 0 <= v < 2_958_466:
            # An XLSX date cell: days since the workbook's epoch, wall-clock time in `zone`.
            # Exact arithmetic: a float product would round some microseconds wrongly.
            n, d = float(v).as_integer_ratio()
            micros = (2 * n * 86_400_000_000 + d) // (2 * d)
            moment = date_epoch + timedelta(microseconds=micros)
            return moment.replace(tzinfo=zone)
        raise ValueError("not an ISO 8601 date")

    return date
