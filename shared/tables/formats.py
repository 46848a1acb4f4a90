"""What every table format offers its callers: a file written whole, or its bytes streamed.

The pipeline writes a file into the attempt's work folder (`write`); the web's inline
answer streams the same bytes as they are made (`chunks`). A format made of records
(CSV, TSV, JSON, JSON Lines) implements `chunks` and gets `write` from it; XLSX, a zip
finished only at the end, implements `write` and streams a finished temporary file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import psycopg

from shared.tables.sql import Selection

# Bytes read from a finished temporary file per streamed chunk.
STREAM_BLOCK = 1024 * 1024


class TableFormat(Protocol):
    """One kind of file (csv, tsv, json, jsonl, xlsx)."""

    name: str
    extension: str
    content_type: str

    def write(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        out: BinaryIO,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> dict[str, Any]:
        """Write the whole file to `out` (`scratch`: where temporary files may go);
        returns its stats (`rows`, …)."""

    def chunks(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> Iterator[bytes]:
        """The file's bytes as they are made (`scratch`: where a temporary file may go)."""


class StreamedFormat:
    """A format whose bytes come in order as the rows are read: `write` from `chunks`."""

    name: str
    extension: str
    content_type: str

    def chunks(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> Iterator[bytes]:
        """The file's bytes; subclasses say how."""
        raise NotImplementedError

    def write(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        out: BinaryIO,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> dict[str, Any]:
        """Write every chunk to `out`."""
        rows = 0

        def counted(n: int) -> None:
            nonlocal rows
            rows += n
            on_rows(n)

        for chunk in self.chunks(conn, selection, counted):
            out.write(chunk)
        return {"rows": rows}


class FileFormat:
    """A format written whole before any byte is final: `chunks` streams a temporary file."""

    name: str
    extension: str
    content_type: str

    def write(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        out: BinaryIO,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> dict[str, Any]:
        """Write the whole file; subclasses say how."""
        raise NotImplementedError

    def chunks(
        self,
        conn: psycopg.Connection,
        selection: Selection,
        on_rows: Callable[[int], None],
        *,
        scratch: Path | None = None,
    ) -> Iterator[bytes]:
        """Write the file into a temporary file, then hand its bytes on and remove it."""
        with tempfile.TemporaryFile(dir=scratch) as spool:
            self.write(conn, selection, spool, on_rows, scratch=scratch)
            spool.seek(0)
            while block := spool.read(STREAM_BLOCK):
                yield block
