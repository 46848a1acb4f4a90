"""CSV and TSV: one `COPY (SELECT …) TO STDOUT (FORMAT csv, HEADER)`, streamed as it comes.

PostgreSQL quotes as RFC 4180 says (a field holding the delimiter, a quote, CR or LF is
quoted, quotes doubled; NULL is an empty field, an empty text `""`) but ends records with
LF. The server sends every record as one CopyData message and libpq hands over one
message per call, so the last byte of each message is the record's end: it becomes CRLF
while line breaks inside quoted fields stay exactly as stored. The values arrive already
formatted by the SELECT (`shared.tables.sql.text_columns`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from shared.tables.copyout import Batch, copy_out
from shared.tables.formats import StreamedFormat
from shared.tables.sql import Selection, text_columns

BOM = b"\xef\xbb\xbf"
CRLF = b"\r\n"
# Records are gathered up to this many bytes before one chunk is handed on.
CHUNK_BYTES = 256 * 1024


class Delimited(StreamedFormat):
    """CSV (`,`) or TSV (tab), UTF-8, CRLF, a header row, optionally a BOM for Excel."""

    def __init__(self, *, name: str, delimiter: str, bom: bool) -> None:
        self.name = name
        self.extension = name
        kind = "csv" if delimiter == "," else "tab-separated-values"
        self.content_type = f"text/{kind}; charset=utf-8"
        self.delimiter = delimiter
        self.bom = bom

    def copy_statement(self, selection: Selection) -> str:
        """The COPY that writes the file's records (header included)."""
        options = "FORMAT csv, HEADER" + (", DELIMITER E'\\t'" if self.delimiter == "\t" else "")
        select = selection.select(text_columns(selection.table, selection.columns, selection.zone))
        return f"COPY ({select}) TO STDOUT ({options})"

    def chunks(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> Iterator[bytes]:
        """The file's bytes in chunks of about CHUNK_BYTES; `on_rows` counts data rows."""
        if self.bom:
            yield BOM
        header = 1  # the first record is the header, not a row
        statement = self.copy_statement(selection)
        for records in copy_out(conn, statement, selection.values, batch_bytes=CHUNK_BYTES):
            yield crlf(records)
            on_rows(len(records) - header)
            header = 0


def crlf(batch: Batch) -> bytes:
    """COPY records (each ending in LF) joined, every record ending in CRLF instead.

    When the block holds exactly one LF per record no field has a line break, and one
    replace in C does it; otherwise each record's last byte is its end.
    """
    block = bytes(batch.data)
    if block.count(b"\n") == len(batch):
        return block.replace(b"\n", CRLF)
    return CRLF.join(record[:-1] for record in batch.records()) + CRLF
