"""[D] The table endpoints of SPEC 9 and 13, declared ahead of their views.

The served document lists only routes that exist (so that what it promises can be fuzzed),
so these are not in it yet (`ExportRequest` is served: `POST /exports` takes it). The tables
work adds each view with the declaration here:

    @blueprint.get("/imports")
    @operation(**LIST_IMPORTS)
    def list_imports(query: ImportsQuery) -> Response: ...

and the document then describes it with no other change. `POST /imports` takes
`ImportTableForm` (beside `ImportForm`) then;
`POST /jobs/{id}/confirm` takes `RollbackConfirmRequest` for a rollback job.
tests/unit/test_openapi_planned.py builds a document with all of these and validates it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from web.contract import Reply
from web.schemas import (
    ConfirmRequest,
    FormBool,
    IsoDate,
    JobEnvelope,
    Request,
    Shape,
    StatusName,
    TableName,
    Text,
    Uuid,
)


class ImportTableForm(Request):
    """`POST /imports` of a table: the multipart fields besides `file`."""

    type: Literal["table"]
    table: TableName
    mapping: Text | None = Field(
        None, description="a JSON object: file column -> Ferry column, or null to ignore it"
    )
    mode: Literal["insert", "upsert"] = "upsert"
    timezone: Text | None = Field(None, description="for dates without an offset")
    sheet: Text | None = Field(None, description="XLSX: the sheet (default: the first)")
    confirm: FormBool = False
    skip_invalid: FormBool = False


class RemapRequest(Request):
    """`POST /jobs/{id}/remap`: another mapping for a table import's stored file."""

    mapping: dict[str, Text | None] = Field(
        description="file column -> Ferry column, or null to ignore the file column"
    )


class RollbackConfirmRequest(ConfirmRequest):
    """`POST /jobs/{id}/confirm` of a rollback that found rows modified since the import."""

    modified: Literal["keep", "revert"] | None = None


class ImportsQuery(Request):
    """`GET /imports`: a page of the import history."""

    limit: int = Field(50, ge=1, le=200)
    cursor: Text | None = None


class ImportCounts(Shape):
    """What an import wrote."""

    created: int = Field(ge=0)
    updated: int = Field(ge=0)
    skipped: int = Field(ge=0)
    invalid: int = Field(ge=0)


class ImportRecord(Shape):
    """One import in the history (an archive or a table)."""

    id: Uuid
    type: Literal["archive", "table"]
    table: str | None
    filename: str
    status: StatusName
    counts: ImportCounts
    finished_at: IsoDate | None
    rollback_until: IsoDate | None
    rolled_back_at: IsoDate | None
    rollback_job: Uuid | None


class ImportsPage(Shape):
    """A page of the import history, newest first."""

    imports: list[ImportRecord]
    next_cursor: str | None


LIST_IMPORTS: dict[str, Any] = {
    "id": "listImports",
    "tags": ("imports",),
    "auth": "user",
    "query": ImportsQuery,
    "replies": {200: Reply("the account's imports, newest first", ImportsPage)},
    "errors": (400,),
}
ROLLBACK_IMPORT: dict[str, Any] = {
    "id": "rollbackImport",
    "tags": ("imports",),
    "auth": "user",
    "replies": {
        202: Reply(
            "the rollback job (type import.rollback), as it was queued",
            JobEnvelope,
            headers={"Location": "the job's URL"},
        )
    },
    # 409 `rollback_expired` after rollback_until; `conflict` for a batch rolled back.
    "errors": (409,),
}
REMAP_JOB: dict[str, Any] = {
    "id": "remapJob",
    "tags": ("jobs",),
    "auth": "user",
    "body": RemapRequest,
    "replies": {202: Reply("the job, back at awaiting_confirmation", JobEnvelope)},
    "errors": (409,),
}
