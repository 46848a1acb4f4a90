"""Which writer makes which format."""

from __future__ import annotations

from typing import Any

from shared.tables.delimited import Delimited
from shared.tables.formats import TableFormat
from shared.tables.jsonfmt import JsonRecords
from shared.tables.params import TableExportParams
from shared.tables.xlsx import Xlsx


def writer_for(params: TableExportParams) -> TableFormat:
    """The writer of the asked format, with the request's options."""
    if params.format == "csv":
        return Delimited(name="csv", delimiter=",", bom=params.bom)
    if params.format == "tsv":
        return Delimited(name="tsv", delimiter="\t", bom=params.bom)
    if params.format == "json":
        return JsonRecords(lines=False)
    if params.format == "jsonl":
        return JsonRecords(lines=True)
    if params.format == "xlsx":
        return Xlsx()
    raise ValueError(f"no writer for format {params.format!r}")


# The media types of the table files (without parameters), as `POST /exports` and the
# download answer them, each with the JSON Schema of its body.
MEDIA_TYPES: dict[str, dict[str, Any]] = {
    "text/csv": {"type": "string"},
    "text/tab-separated-values": {"type": "string"},
    "application/json": {"type": "array", "items": {"type": "object"}},
    "application/x-ndjson": {"type": "string"},
    Xlsx.content_type: {"type": "string", "contentMediaType": Xlsx.content_type},
}
