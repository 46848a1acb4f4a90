"""The Python half of the XLSX writer, without a database: rows as the SELECT hands them
over (every value as its cell's text) written into a real workbook and read by openpyxl."""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from datetime import datetime
from typing import Any

import pytest
import xlsxwriter
import xlsxwriter.workbook
from openpyxl import load_workbook
from openpyxl.utils.escape import unescape

from shared.fields import Kind
from shared.tables.columns import Column
from shared.tables.xlsx import CHECK_BYTES, DATE_FORMAT, RowSheet, _Checked, _close, _Rows, xml_text

COLUMNS = (
    Column("id", Kind.UUID),
    Column("date", Kind.DATE),
    Column("speed", Kind.FLOAT),
    Column("count", Kind.INT),
    Column("flag", Kind.BOOL),
    Column("note", Kind.TEXT),
)


def _workbook(rows: list[tuple[Any, ...]]) -> tuple[bytes, _Rows]:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"constant_memory": True})
    bold = book.add_format({"bold": True})
    dates = book.add_format({"num_format": DATE_FORMAT})
    writer = _Rows(COLUMNS, dates._get_xf_index())
    sheet = book.add_worksheet("t", worksheet_class=RowSheet)
    for position, column in enumerate(COLUMNS):
        sheet.write_string(0, position, column.name, bold)
    sheet.freeze_panes(1, 0)
    sheet.append(writer.rows(rows, 2), first_row=1, last_row=len(rows), last_col=len(COLUMNS) - 1)
    _close(book)
    return out.getvalue(), writer


def _read(data: bytes) -> list[tuple[Any, ...]]:
    book = load_workbook(io.BytesIO(data))
    sheet = book.worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.b for cell in sheet[1])
    return [
        tuple(unescape(v) if isinstance(v, str) else v for v in row)
        for row in sheet.iter_rows(values_only=True)
    ]


def test_given_typed_rows_when_written_then_openpyxl_reads_typed_cells() -> None:
    first, second = "0b6e2c1e-0000-4000-8000-000000000001", "0b6e2c1e-0000-4000-8000-000000000002"
    rows = [
        (first, "45292.5", None, "0.30000000000000004", "7", "1", "home"),
        (second, None, "1880-01-01T12:00:00Z", "5e-324", None, "0", None),
    ]

    found = _read(_workbook(rows)[0])

    assert found[0] == ("id", "date", "speed", "count", "flag", "note")
    assert found[1] == (
        first,
        datetime(2024, 1, 1, 12),
        0.30000000000000004,
        7,
        True,
        "home",
    )
    assert found[2] == (
        second,
        "1880-01-01T12:00:00Z",
        5e-324,
        None,
        False,
        None,
    )


@pytest.mark.parametrize(
    "text",
    [
        "control \x00\x01\x08\x0b\x0c\x0e\x1f chars",
        "carriage\rreturn and\r\nCRLF",
        "a literal _x0041_ and _x005F_ escape",
        "non-characters \ufffe\uffff",
        "<b>&amp;</b> & < >",
        " spaces around ",
        "\ttab first",
        "emoji 🚀 日本語",
        "",
    ],
)
def test_given_text_xml_cannot_carry_when_written_then_it_reads_back_exactly(text: str) -> None:
    """Nothing crashes, nothing is lost: OOXML's _xHHHH_ escapes, decoded as Excel does."""
    row = ("0b6e2c1e-0000-4000-8000-000000000003", None, None, None, None, None, text)

    found = _read(_workbook([row])[0])

    assert found[1][5] == text


def test_given_a_text_longer_than_a_cell_when_escaped_then_it_is_cut_in_utf16_units() -> None:
    assert xml_text("x" * 32_767) == ("x" * 32_767, False)
    assert xml_text("x" * 32_768) == ("x" * 32_767, True)
    # A character outside the BMP counts two units, as in Excel.
    assert xml_text("🚀" * 16_384) == ("🚀" * 16_383, True)


def test_given_a_workbook_when_closed_then_its_members_are_deflated_at_level_one() -> None:
    """_close passes a level to XlsxWriter's ZipFile: this fails should XlsxWriter stop
    zipping through the `ZipFile` name of its workbook module."""
    original = xlsxwriter.workbook.ZipFile
    rows = [("0b6e2c1e-0000-4000-8000-000000000004", "45292.5", None, "1.5", "1", "1", "a" * 50)]

    data, _ = _workbook(rows * 1)

    assert xlsxwriter.workbook.ZipFile is original, "the name is restored"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
        content = archive.read(info)
    level_one = zlib.compressobj(1, zlib.DEFLATED, -15)
    expected = level_one.compress(content) + level_one.flush()
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert info.compress_size == len(expected)


def test_given_a_cancel_while_the_workbook_is_zipped_when_closed_then_the_close_stops() -> None:
    """The zip of a large workbook takes seconds: the output calls the cancel check."""

    class Cancelled(Exception):
        pass

    checks = []

    def check() -> None:
        checks.append(1)
        if len(checks) == 2:
            raise Cancelled

    out = io.BytesIO()
    book = xlsxwriter.Workbook(_Checked(out, check), {"constant_memory": True})
    writer = _Rows(COLUMNS, 0)
    sheet = book.add_worksheet("t", worksheet_class=RowSheet)
    # Random hex compresses to about half: some 10 MB of zip, over twice CHECK_BYTES.
    noise = random.Random(1)
    rows = [(None, None, None, None, None, None, noise.randbytes(160).hex()) for _ in range(60_000)]
    sheet.append(writer.rows(rows, 1), first_row=0, last_row=len(rows) - 1, last_col=5)

    with pytest.raises(Cancelled):
        _close(book)

    assert len(checks) == 2
    assert out.tell() < 3 * CHECK_BYTES, "the zip stopped soon after the check"
    assert xlsxwriter.workbook.ZipFile is zipfile.ZipFile, "the name is restored after a raise"
