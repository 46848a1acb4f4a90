"""Small table exports answered straight from the web process (SPEC 13 `delivery`).

The web calls `delivery_inline` to decide (a count that stops one row past
FERRY_SYNC_EXPORT_MAX_ROWS, so a large account costs no full count), then answers 200
with `stream`'s chunks as the body and `InlineExport.name` / `content_type` as headers.
`stream` opens its own connection and snapshot at the first chunk and closes them when
the body is done or the client goes away (the generator is closed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.errors import ValidationFailed
from shared.store.db import raw_connection
from shared.tables.export import count_rows, file_name, open_snapshot, selection_for
from shared.tables.params import TableExportParams
from shared.tables.writers import writer_for
from shared.timefmt import utcnow


@dataclass(frozen=True, slots=True)
class InlineExport:
    """A file answered in the response itself: its name, type and bytes."""

    name: str
    content_type: str
    rows: int
    chunks: Iterator[bytes]

    @property
    def disposition(self) -> str:
        """The `Content-Disposition` header (the name is ASCII: table, date, extension)."""
        return f'attachment; filename="{self.name}"'


def delivery_inline(
    database_url: str, account_id: str, params: TableExportParams, *, max_rows: int
) -> int | None:
    """The number of rows when the export is answered inline, None when it is queued.

    `auto` is inline up to `max_rows` rows; `inline` over it is a 422 naming `delivery`;
    `background` is always queued.
    """
    if params.delivery == "background":
        return None
    with raw_connection(database_url) as conn:
        open_snapshot(conn, params)
        rows = count_rows(conn, selection_for(params, account_id), limit=max_rows + 1)
    if rows <= max_rows:
        return rows
    if params.delivery == "inline":
        raise ValidationFailed(
            f"delivery: 'inline' is for at most {max_rows} rows"
            " (FERRY_SYNC_EXPORT_MAX_ROWS) and this export has more; use 'auto' or 'background'",
            details={"field": "delivery"},
        )
    return None


def inline_export(
    database_url: str,
    account_id: str,
    params: TableExportParams,
    *,
    rows: int,
    now: datetime | None = None,
) -> InlineExport:
    """The answer of an inline export: name, content type and the streamed bytes."""
    writer = writer_for(params)
    return InlineExport(
        name=file_name(params, now or utcnow()),
        content_type=writer.content_type,
        rows=rows,
        chunks=stream(database_url, account_id, params),
    )


def stream(database_url: str, account_id: str, params: TableExportParams) -> Iterator[bytes]:
    """The export file's bytes, made while they are sent (XLSX: once its zip is done)."""
    writer = writer_for(params)
    with (
        raw_connection(database_url) as conn,
        tempfile.TemporaryDirectory(prefix="ferry-inline-") as scratch,
    ):
        open_snapshot(conn, params)
        selection = selection_for(params, account_id)
        yield from writer.chunks(conn, selection, _ignore, scratch=Path(scratch))


def _ignore(rows: int) -> None:
    """Inline exports report no progress."""
