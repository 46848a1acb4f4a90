"""JSON (one array of objects) and JSON Lines (one object per line), built by PostgreSQL.

The server writes each row's object (`shared.tables.sql.json_line`: keys in the asked
order, null for NULL) and COPY hands it over as one line; Python never parses a value.
JSON text holds no raw line break (every control character is escaped inside strings), so
each newline in a chunk is the end of an object and the array's separators are a plain
byte replacement. Measured against fetching typed rows and writing them with orjson in
docs/design.md "Tables". Text is written exactly as stored: no formula escaping (JSON is
not opened as a spreadsheet, and its readers want the value itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

from shared.tables.copyout import Batch, copy_out
from shared.tables.formats import StreamedFormat
from shared.tables.sql import JSON_COPY_OPTIONS, Selection, json_line

CHUNK_BYTES = 256 * 1024


class JsonRecords(StreamedFormat):
    """JSON Lines (`lines=True`) or one JSON array of objects."""

    def __init__(self, *, lines: bool) -> None:
        self.lines = lines
        self.name = "jsonl" if lines else "json"
        self.extension = self.name
        self.content_type = "application/x-ndjson" if lines else "application/json"

    def copy_statement(self, selection: Selection) -> str:
        """The COPY that writes one object per line."""
        select = selection.select([json_line(selection.table, selection.columns, selection.zone)])
        return f"COPY ({select}) TO STDOUT {JSON_COPY_OPTIONS}"

    def chunks(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> Iterator[bytes]:
        """The file's bytes in chunks of about CHUNK_BYTES; `on_rows` counts the rows."""
        first = True
        statement = self.copy_statement(selection)
        for lines in copy_out(conn, statement, selection.values, batch_bytes=CHUNK_BYTES):
            yield self._block(lines, first)
            on_rows(len(lines))
            first = False
        if not self.lines:
            yield b"[]\n" if first else b"\n]\n"

    def _block(self, lines: Batch, first: bool) -> bytes:
        block = bytes(lines.data)
        if self.lines:
            return block
        # Objects end with a newline; the last one's separator waits for the next block.
        body = block[:-1].replace(b"\n", b",\n")
        return (b"[\n" if first else b",\n") + body
