"""XLSX: XlsxWriter in constant-memory mode, rows written as whole XML rows.

XlsxWriter builds the workbook: the sheets, the bold frozen header row (written through its
public API), the styles, the zip. Its per-cell API costs about 6 µs a cell here (`write_*`,
then `_write_cell` building attribute lists), 150 s for 1 M samples of 23 columns, so the
data rows go through `RowSheet.append`: one XML string per batch of rows, written to the
same constant-memory row file XlsxWriter itself writes to (bench/tables.py). Every cell
is typed, as SPEC 13 asks:

- numbers as numbers, written with `repr` (shortest exact; XlsxWriter's own `%.16G`
  would round 0.30000000000000004 to 0.3); NaN and infinities, which no cell holds, empty;
- booleans as booleans; dates as Excel serials of the wall-clock time in the export's
  zone with a date format (the server computes them); a date before 1900-03-01, which no
  serial holds, as its ISO text;
- text always as an inline string, never a formula: formula-like text comes escaped from
  the SELECT. Characters XML cannot carry (controls, U+FFFE, U+FFFF, and CR, which XML
  readers turn into LF) are written as OOXML's `_xHHHH_` escapes, as Excel writes them
  itself: Excel reads them back as the character (openpyxl leaves the decoding to its
  caller, `openpyxl.utils.escape.unescape`); a literal `_xHHHH_` is written
  `_x005F_xHHHH_`, so it too reads back unchanged. A text longer than Excel's 32,767
  characters is cut there and counted in the result (`truncated`).

Past 1,048,575 data rows the rows go on in a new sheet (`samples (2)`, …) with its own
header, so no row is dropped.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import psycopg
import xlsxwriter
import xlsxwriter.workbook
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet

from shared.fields import Kind
from shared.tables.batches import prefetched
from shared.tables.columns import Column
from shared.tables.formats import FileFormat
from shared.tables.sql import Selection, typed_columns
from shared.tables.values import CELL_MAX_CHARS, SHEET_ROWS

# Rows fetched from the server-side cursor at a time (and written as one XML string).
FETCH_ROWS = 2000
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
ZIP_LEVEL = 1
# Bytes of zip written between two cancel checks while XlsxWriter closes the workbook.
CHECK_BYTES = 4 * 1024 * 1024
_ZIP_LOCK = threading.Lock()
WIDTHS = {Kind.DATE: 23, Kind.UUID: 37}

_XML_SPECIAL = re.compile("[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9A-Fa-f]{4}_")
_LITERAL_ESCAPE = re.compile("(_x[0-9A-Fa-f]{4}_)")
_UNWRITABLE = re.compile("[\x00-\x08\x0b-\x1f\ufffe\uffff]")


def _close(workbook: xlsxwriter.Workbook) -> None:
    """Zip the workbook at deflate level ZIP_LEVEL instead of XlsxWriter's fixed 6.

    XlsxWriter has no option for it, and at level 6 the zip took half of an export's time
    (3.4 s of 5.9 s for 100 k samples of 23 columns; level 1 is three times faster for
    10 % more bytes). Its
    workbook module looks `ZipFile` up when it zips, so for the length of one close that
    name gives a ZipFile with a level; the lock keeps two threads' closes (inline exports
    in the web) from restoring each other's. tests/unit/test_table_xlsx.py fails should a
    new XlsxWriter stop zipping this way.
    """
    with _ZIP_LOCK:
        original = xlsxwriter.workbook.ZipFile
        xlsxwriter.workbook.ZipFile = functools.partial(original, compresslevel=ZIP_LEVEL)
        try:
            workbook.close()
        finally:
            xlsxwriter.workbook.ZipFile = original


class _Checked:
    """The workbook's output file, calling `check` every CHECK_BYTES written.

    XlsxWriter zips the whole workbook in `close`, seconds for 1 M rows: the checks let a
    cancel or a lost lease stop it there too.
    """

    def __init__(self, raw: BinaryIO, check: Callable[[], None]) -> None:
        self._raw = raw
        self._check = check
        self._since = 0

    def write(self, data: bytes) -> int:
        self._since += len(data)
        if self._since >= CHECK_BYTES:
            self._since = 0
            self._check()
        return self._raw.write(data)

    def __getattr__(self, name: str) -> Any:
        # tell, seek, flush, …: zipfile uses them as on the file itself.
        return getattr(self._raw, name)


class RowSheet(Worksheet):
    """A constant-memory worksheet that also takes whole rows of finished XML."""

    def append(self, xml: str, *, first_row: int, last_row: int, last_col: int) -> None:
        """Write rows `first_row..last_row` (0-based) given as `<row>` elements."""
        if self.table:
            # The header row still waits in XlsxWriter's one-row buffer: write it first.
            self._write_single_row(first_row)
        self.fh.write(xml)
        self._check_dimensions(last_row, last_col)
        self.previous_row = last_row

    def discard(self) -> None:
        """Close the row file of an abandoned workbook (its folder is removed after)."""
        self._opt_close()


def xml_text(text: str) -> tuple[str, bool]:
    """A text as an inline string's XML content, and whether it was cut to fit a cell."""
    cut = False
    if len(text) > CELL_MAX_CHARS // 2 and _utf16_units(text) > CELL_MAX_CHARS:
        text = _cut(text)
        cut = True
    if _XML_SPECIAL.search(text):
        text = _LITERAL_ESCAPE.sub(r"_x005F\1", text)
        text = _UNWRITABLE.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text, cut


def _utf16_units(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _cut(text: str) -> str:
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > CELL_MAX_CHARS:
            return text[:index]
    return text


class _Rows:
    """Turns fetched rows into `<row>` XML with one function compiled for the columns.

    The SELECT hands every value over as its cell's text (`typed_columns`), so a row is
    one string join; the per-cell closures this replaced cost
    four times as much (bench/tables.py). The generated source holds only column
    letters and a style number, never a value.
    """

    def __init__(self, columns: Sequence[Column], date_style: int) -> None:
        self.truncated = 0
        pieces = []
        index = 0
        for position, column in enumerate(columns):
            pieces.append(_cell_source(column.kind, xl_col_to_name(position), index, date_style))
            index += 2 if column.kind is Kind.DATE else 1
        cells = ", ".join(pieces) if pieces else "''"
        source = (
            "def rows(batch, first):\n"
            "    out = []\n"
            "    append = out.append\n"
            "    for offset, r in enumerate(batch):\n"
            "        n = str(first + offset)\n"
            f"        append(''.join((f'<row r=\"{{n}}\">', {cells}, '</row>')))\n"
            "    return ''.join(out)\n"
        )
        namespace: dict[str, Any] = {"text": self._text}
        exec(compile(source, "<xlsx rows>", "exec"), namespace)
        self.rows: Callable[[Sequence[tuple[Any, ...]], int], str] = namespace["rows"]

    def _text(self, value: str, ref: str) -> str:
        text, cut = xml_text(value)
        if cut:
            self.truncated += 1
        space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
        return f'<c r="{ref}" t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _cell_source(kind: Kind, letter: str, i: int, date_style: int) -> str:
    """A Python expression giving one cell's XML from row `r` and row number `n`."""
    ref = f"{letter}{{n}}"
    if kind is Kind.DATE:
        early = f"('' if r[{i + 1}] is None else text(r[{i + 1}], f'{ref}'))"
        return (
            f'(f\'<c r="{ref}" s="{date_style}"><v>{{r[{i}]}}</v></c>\''
            f" if r[{i}] is not None else {early})"
        )
    if kind is Kind.TEXT:
        return f"('' if r[{i}] is None else text(r[{i}], f'{ref}'))"
    if kind is Kind.UUID:
        cell = f'f\'<c r="{ref}" t="inlineStr"><is><t>{{r[{i}]}}</t></is></c>\''
    elif kind is Kind.BOOL:
        cell = f'f\'<c r="{ref}" t="b"><v>{{r[{i}]}}</v></c>\''
    else:
        cell = f"f'<c r=\"{ref}\"><v>{{r[{i}]}}</v></c>'"
    return f"('' if r[{i}] is None else {cell})"


class Xlsx(FileFormat):
    """One workbook; sheets named after the table, rolling over past SHEET_ROWS rows."""

    name = "xlsx"
    extension = "xlsx"
    content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def __init__(self, *, sheet_rows: int = SHEET_ROWS, fetch_rows: int = FETCH_ROWS) -> None:
        # sheet_rows is smaller only in tests of the roll-over that cannot afford 1 M rows.
        self.sheet_rows = sheet_rows
        self.fetch_rows = fetch_rows

    def write(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        out: BinaryIO,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> dict[str, Any]:
        """Write the workbook to `out`; returns rows, sheets and texts cut to fit a cell.

        XlsxWriter's row files go to `scratch` (the attempt's work folder), so whatever a
        cancel or a crash leaves there goes with the folder.
        """
        options: dict[str, Any] = {"constant_memory": True}
        if scratch is not None:
            options["tmpdir"] = str(scratch)
        # `on_rows(0)` while zipping: the cancel and lease checks keep running.
        workbook = xlsxwriter.Workbook(_Checked(out, lambda: on_rows(0)), options)
        # ZIP64 records only where a member passes 4 GiB; smaller files are plain zips.
        workbook.use_zip64()
        try:
            stats = self._fill(conn, selection, workbook, on_rows)
            _close(workbook)
        except BaseException:
            # Zipping what was written would only delay a cancel: drop it instead.
            for written in workbook.worksheets():
                written.discard()
            raise
        return stats

    def _fill(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        workbook: xlsxwriter.Workbook,
        on_rows: Callable[[int], None],
    ) -> dict[str, Any]:
        """Write every row into sheets of at most `sheet_rows` rows each."""
        bold = workbook.add_format({"bold": True})
        dates = workbook.add_format({"num_format": DATE_FORMAT})
        cells = _Rows(selection.columns, dates._get_xf_index())
        last_col = max(0, len(selection.columns) - 1)
        select = selection.select(typed_columns(selection.table, selection.columns, selection.zone))
        sheets = 1
        sheet = self._sheet(workbook, selection, sheets, bold)
        used = 0  # data rows on the current sheet
        rows = 0
        with conn.cursor(name="ferry_table_export") as cursor:
            cursor.execute(select, selection.values)
            for batch in prefetched(cursor, self.fetch_rows):
                start = 0
                while start < len(batch):
                    if used == self.sheet_rows:
                        sheets += 1
                        sheet = self._sheet(workbook, selection, sheets, bold)
                        used = 0
                    take = min(len(batch) - start, self.sheet_rows - used)
                    sheet.append(
                        cells.rows(batch[start : start + take], used + 2),
                        first_row=used + 1,
                        last_row=used + take,
                        last_col=last_col,
                    )
                    used += take
                    start += take
                rows += len(batch)
                on_rows(len(batch))
        return {"rows": rows, "sheets": sheets, "truncated": cells.truncated}

    def _sheet(
        self, workbook: xlsxwriter.Workbook, selection: Selection, number: int, bold: Any
    ) -> RowSheet:
        name = selection.table.name if number == 1 else f"{selection.table.name} ({number})"
        sheet: RowSheet = workbook.add_worksheet(name, worksheet_class=RowSheet)
        for position, column in enumerate(selection.columns):
            sheet.write_string(0, position, column.name, bold)
            width = WIDTHS.get(column.kind)
            if width:
                sheet.set_column(position, position, width)
        sheet.freeze_panes(1, 0)
        return sheet
