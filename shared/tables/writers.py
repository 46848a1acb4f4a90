"""Which writer makes which format."""

from __future__ import annotations

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
