"""[D] The table endpoints of SPEC 9 and 13 declared ahead of their views.

The served document lists only routes that exist (so that what it promises can be fuzzed),
so these are not in it yet: `POST /exports` takes `ExportRequest` once table exports are
served over HTTP. tests/unit/test_openapi_planned.py builds a document with it and
validates it. (Built since: the import history and rollback routes, `POST /imports` of a
table and `POST /jobs/{id}/remap`: web/api.py, web/schemas.py.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, RootModel, StrictBool

from web.schemas import (
    ExportArchiveRequest,
    IsoDate,
    Request,
    TableName,
    Text,
)


class ExportTableRequest(Request):
    """`POST /exports` for a table (SPEC 13)."""

    type: Literal["table"]
    table: TableName
    format: Literal["csv", "tsv", "json", "jsonl", "xlsx"]
    columns: list[Text] | None = Field(
        None, min_length=1, description="the table's columns in this order (default: all)"
    )
    from_: IsoDate | None = Field(None, alias="from")
    to: IsoDate | None = None
    timezone: Text | None = Field(None, description="an IANA zone for dates, e.g. Europe/Berlin")
    bom: StrictBool = Field(False, description="a UTF-8 byte order mark (for Excel)")
    delivery: Literal["auto", "inline", "background"] = "auto"


class ExportRequest(RootModel[Any]):
    """`POST /exports`: an archive or a table, by `type`."""

    root: Annotated[ExportArchiveRequest | ExportTableRequest, Field(discriminator="type")]
