"""Reading a table file once, as a stream (SPEC 13 "Import"): format, encoding, delimiter,
header, then the rows.

The format is recognised by content (a zip holding `xl/workbook.xml` is XLSX; text that
starts with `[` is a JSON array, with `{` JSON Lines; other text is CSV or TSV); the name
only breaks a tie between delimiters. Text is decoded by its BOM, else as UTF-8, else as
Windows-1252 (reported). Rows are numbered as a spreadsheet shows them: the header is
row 1. What makes the whole file unreadable is a `BadFile`; what is wrong with one row is
left to the row's validation (`RowProblem`).
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import ijson
import orjson

from shared.errors import BadFile
from shared.tables.values import EXCEL_EPOCH

MAX_COLUMNS = 500
MAX_FIELD_BYTES = 1024 * 1024
# More empty rows than this one after another is a sheet that claims rows it does not
# hold (an XLSX "zip bomb" of rows): reading on would take minutes for nothing.
MAX_EMPTY_RUN = 10_000
FALLBACK_ENCODING = "windows-1252"
DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
NOT_A_TABLE = "not a CSV, TSV, JSON, JSON Lines or XLSX file"
# Python's csv module counts a field's characters: one over the limit is a field over 1 MiB
# of UTF-8 at least when it is ASCII, and at most 4 MiB otherwise; the bytes are checked
# exactly where they are known (JSON, XLSX strings).
csv.field_size_limit(MAX_FIELD_BYTES)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """What is wrong with a whole row (not one cell): too many fields, not an object."""

    reason: str


@dataclass(slots=True)
class TableFile:
    """An open table file: what it is, its header, and its rows (read once)."""

    format: str
    header: list[str]
    rows: Iterator[tuple[int, list[Any] | RowProblem]]
    encoding: str | None = None
    delimiter: str | None = None
    # Cells are text as a spreadsheet wrote them ("'" escapes may be in them) or typed.
    text_cells: bool = True
    escaped: bool = True
    # XLSX: dates are numbers of days from this moment (a cell has no zone).
    date_epoch: datetime | None = None
    notes: list[str] = field(default_factory=list)
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Close the file."""
        for closer in self._closers:
            closer.close()


def open_table(
    path: Path,
    *,
    name: str = "",
    sheet: str | None = None,
    max_expanded_bytes: int = 2**34,
    max_ratio: float = 100.0,
) -> TableFile:
    """Open an uploaded table file; BadFile when it is none of the formats."""
    with path.open("rb") as probe:
        head = probe.read(_SNIFF_BYTES)
    if not head.strip():
        raise BadFile("the file is empty: a header row is required")
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(path, sheet, max_expanded_bytes=max_expanded_bytes, max_ratio=max_ratio)
    encoding, bom = _encoding(head)
    text_head = head[bom:].decode(encoding.replace("-sig", ""), errors="ignore")
    if "\x00" in text_head:
        raise BadFile(f"{NOT_A_TABLE} (binary data)")
    stripped = text_head.lstrip("\ufeff \t\r\n")
    raw = path.open("rb")
    try:
        if encoding.startswith("utf-8") and stripped.startswith("["):
            return _open_json(raw, encoding)
        text = _text(raw, encoding)
        if stripped.startswith("{"):
            return _open_jsonl(raw, text, encoding)
        return _open_delimited(raw, text, encoding, stripped, name)
    except BaseException:
        raw.close()
        raise


def _encoding(head: bytes) -> tuple[str, int]:
    """The text encoding (by BOM, else UTF-8, else the fallback) and the BOM's length."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, len(bom) if encoding == "utf-8-sig" else 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=False)
        return "utf-8", 0
    except UnicodeDecodeError:
        pass
    try:
        head.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        raise BadFile(
            f"undecodable text: neither UTF-8 nor {FALLBACK_ENCODING} (and no byte order mark)"
        ) from None
    return FALLBACK_ENCODING, 0


def _text(raw: IO[bytes], encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")


def _undecodable(row: int, encoding: str) -> BadFile:
    return BadFile(f"undecodable text near row {row}: not valid {encoding}", details={"row": row})


def _check_header(header: list[Any]) -> list[str]:
    names = ["" if cell is None else str(cell).strip() for cell in header]
    while names and names[-1] == "":
        names.pop()
    if not names:
        raise BadFile("no header row: the first row is empty")
    if len(names) > MAX_COLUMNS:
        raise BadFile(f"{len(names)} columns; at most {MAX_COLUMNS} are read")
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        raise BadFile(f"no header row: column {blank[0]} of the first row has no name")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise BadFile(f"the header names column {n!r} twice")
        seen.add(n)
        if len(n.encode()) > MAX_FIELD_BYTES:
            raise BadFile("a header field over 1 MiB", details={"row": 1})
    return names


# --- CSV and TSV ---------------------------------------------------------------------------


def _delimiter(first_line: str, name: str) -> str:
    """The delimiter of the header line: the candidate seen most outside quotes."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts.values())
    if best == 0:
        return "\t" if name.lower().endswith(".tsv") else ","
    tied = [d for d in DELIMITERS if counts[d] == best]
    if "\t" in tied and name.lower().endswith(".tsv"):
        return "\t"
    return tied[0]


def _open_delimited(
    raw: IO[bytes], text: io.TextIOWrapper, encoding: str, head: str, name: str
) -> TableFile:
    first = head.split("\n", 1)[0]
    delimiter = _delimiter(first, name)
    reader = csv.reader(text, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise BadFile(f"row 1: {exc}", details={"row": 1}) from None
    except UnicodeDecodeError:
        raise _undecodable(1, encoding) from None
    if header is None:
        raise BadFile("no header row")
    names = _check_header(header)
    width = len(names)

    def rows() -> Iterator[tuple[int, list[Any] | RowProblem]]:
        number = 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reason = str(exc)
                if "field larger than field limit" in reason:
                    reason = "a field over 1 MiB"
                raise BadFile(f"row {number + 1}: {reason}", details={"row": number + 1}) from None
            except UnicodeDecodeError:
                raise _undecodable(number + 1, encoding) from None
            number += 1
            if not record or record == [""]:
                continue  # a blank line
            if len(record) != width:
                if len(record) > width and not any(record[width:]):
                    record = record[:width]  # trailing empty fields (a spreadsheet's habit)
                else:
                    yield number, RowProblem(f"{len(record)} fields; the header has {width}")
                    continue
            yield number, record

    kind = "tsv" if delimiter == "\t" else "csv"
    return TableFile(
        format=kind,
        header=names,
        rows=rows(),
        encoding=encoding.replace("-sig", ""),
        delimiter=delimiter,
        _closers=[text, raw],
    )


# --- JSON and JSON Lines ------------------------------------------------------------------


def _object_cells(obj: Any, header: list[str], index: dict[str, int]) -> list[Any] | RowProblem:
    if obj.__class__ is _Invalid:
        return RowProblem("not valid JSON")
    if obj.__class__ is not dict:
        return RowProblem("not a JSON object")
    extra = [key for key in obj if key not in index]
    if extra:
        return RowProblem(f"a key the first object does not have: {extra[0]!r}")
    return [obj.get(name) for name in header]


def _big_value(obj: dict[str, Any]) -> bool:
    for value in obj.values():
        if value.__class__ is str and len(value) > MAX_FIELD_BYTES // 4:
            if len(value.encode()) > MAX_FIELD_BYTES:
                return True
        elif value.__class__ in (list, dict) and len(orjson.dumps(value)) > MAX_FIELD_BYTES:
            return True
    return False


def _json_rows(objects: Iterator[Any]) -> tuple[list[str], Iterator[tuple[int, Any]]]:
    first = next(objects, None)
    if first is None:
        raise BadFile("no header: the file holds no object (its keys are the columns)")
    if first.__class__ is not dict:
        raise BadFile("row 2: not a JSON object; a JSON table is an array of objects")
    header = _check_header(list(first))
    index = {name: i for i, name in enumerate(header)}

    def rows() -> Iterator[tuple[int, Any]]:
        number = 1
        for obj in _chain(first, objects):
            number += 1
            if obj.__class__ is dict and _big_value(obj):
                raise BadFile(f"row {number}: a field over 1 MiB", details={"row": number})
            yield number, _object_cells(obj, header, index)

    return header, rows()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _open_json(raw: IO[bytes], encoding: str) -> TableFile:
    def objects() -> Iterator[Any]:
        try:
            yield from ijson.items(raw, "item", use_float=True)
        except ijson.JSONError as exc:
            raise BadFile(f"invalid JSON: {exc}") from None
        except UnicodeDecodeError:
            raise BadFile("undecodable text: not valid UTF-8") from None

    header, rows = _json_rows(objects())
    return TableFile(
        format="json",
        header=header,
        rows=rows,
        encoding="utf-8",
        text_cells=False,
        escaped=False,
        _closers=[raw],
    )


def _open_jsonl(raw: IO[bytes], text: io.TextIOWrapper, encoding: str) -> TableFile:
    def objects() -> Iterator[Any]:
        line_no = 0
        while True:
            try:
                line = text.readline()
            except UnicodeDecodeError:
                raise _undecodable(line_no + 2, encoding) from None
            if not line:
                return
            line_no += 1
            if not line.strip():
                continue
            if len(line) > MAX_FIELD_BYTES * 4:
                raise BadFile(f"line {line_no}: a field over 1 MiB", details={"row": line_no + 1})
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                yield _Invalid()

    header, rows = _json_rows(objects())
    return TableFile(
        format="jsonl",
        header=header,
        rows=rows,
        encoding=encoding.replace("-sig", ""),
        text_cells=False,
        escaped=False,
        _closers=[text, raw],
    )


class _Invalid:
    """A JSON Lines line that is not JSON: its row is refused, the file goes on."""


# --- XLSX -------------------------------------------------------------------------------------


def _check_zip(path: Path, *, max_expanded_bytes: int, max_ratio: float) -> None:
    """A workbook is a zip: refuse one that expands past the limits (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = {m.filename for m in members}
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadFile(f"{NOT_A_TABLE} (a broken zip: {exc})") from None
    if "xl/workbook.xml" not in names:
        raise BadFile(f"{NOT_A_TABLE} (a zip that is not an XLSX workbook)")
    expanded = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members) or 1
    if expanded > max_expanded_bytes:
        raise BadFile(f"the workbook expands to {expanded} bytes, over the limit")
    if expanded > 1024 * 1024 and expanded / packed > max_ratio:
        raise BadFile(
            f"the workbook expands {expanded / packed:.0f} times (at most {max_ratio:g}):"
            " a zip bomb"
        )


def _open_xlsx(
    path: Path, sheet: str | None, *, max_expanded_bytes: int, max_ratio: float
) -> TableFile:
    import openpyxl
    from openpyxl.utils.escape import unescape

    _check_zip(path, max_expanded_bytes=max_expanded_bytes, max_ratio=max_ratio)
    handle = path.open("rb")  # a file object: openpyxl judges a path by its extension
    try:
        # data_only: a formula cell gives its cached value; nothing is ever evaluated.
        book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:
        handle.close()
        raise BadFile(f"an unreadable XLSX workbook: {exc}") from None
    try:
        if sheet is None:
            ws = book.worksheets[0]
        elif sheet in book.sheetnames:
            ws = book[sheet]
        else:
            raise BadFile(f"no sheet {sheet!r}; the workbook has {', '.join(book.sheetnames)}")
        # The sheet's own dimension claim is not trusted: the rows are read as they are.
        ws.reset_dimensions()
        # Date cells are read as their serial numbers: openpyxl's own conversion rounds to
        # the millisecond, and Ferry's dates have microseconds.
        book._date_formats = set()
        epoch = datetime(1904, 1, 1) if book.epoch.year == 1904 else EXCEL_EPOCH
        values = ws.iter_rows(values_only=True)
        header_row = next(values, None)
        if header_row is None:
            raise BadFile("no header row: the sheet is empty")
        names = _check_header([unescape(c) if isinstance(c, str) else c for c in header_row])
        width = len(names)
    except BaseException:
        book.close()
        handle.close()
        raise

    def rows() -> Iterator[tuple[int, list[Any] | RowProblem]]:
        number = 1
        empty_run = 0
        for raw_row in values:
            number += 1
            cells = list(raw_row)
            while cells and cells[-1] is None:
                cells.pop()
            if not cells:
                empty_run += 1
                if empty_run > MAX_EMPTY_RUN:
                    raise BadFile(
                        f"more than {MAX_EMPTY_RUN} empty rows in a row from row"
                        f" {number - empty_run + 1}: the sheet claims rows it does not hold",
                        details={"row": number},
                    )
                continue
            empty_run = 0
            if len(cells) > width:
                yield number, RowProblem(f"{len(cells)} cells; the header has {width}")
                continue
            for i, found in enumerate(cells):
                if found.__class__ is str:
                    # XML cannot carry some characters: the export wrote them as _xHHHH_.
                    cell = cells[i] = unescape(found) if "_x" in found else found
                    if len(cell) > MAX_FIELD_BYTES // 4 and len(cell.encode()) > MAX_FIELD_BYTES:
                        raise BadFile(f"row {number}: a field over 1 MiB", details={"row": number})
            cells.extend([None] * (width - len(cells)))
            yield number, cells

    return TableFile(
        format="xlsx",
        header=names,
        rows=rows(),
        text_cells=False,
        escaped=True,
        date_epoch=epoch,
        _closers=[book, handle],
    )
