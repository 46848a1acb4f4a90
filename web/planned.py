"""[D] The table endpoints of SPEC 9 and 13, declared ahead of their views.

The served document lists only routes that exist (so that what it promises can be fuzzed),
so these are not in it yet. The tables work adds each view with the declaration here:

    @blueprint.post("/jobs/<uuid:job_id>/remap")
    @operation(**REMAP_JOB)
    def remap_job(job_id: str, body: RemapRequest) -> Response: ...

and the document then describes it with no other change. `POST /imports` takes
`ImportTableForm` (beside `ImportForm`) then; `POST /exports` already takes `ExportRequest`.
(The import history and rollback routes are built: web/api.py, web/schemas.py.)
tests/unit/test_openapi_planned.py builds a document with all of these and validates it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from web.contract import Reply
from web.schemas import FormBool, JobEnvelope, Request, TableName, Text


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


REMAP_JOB: dict[str, Any] = {
    "id": "remapJob",
    "tags": ("jobs",),
    "auth": "user",
    "body": RemapRequest,
    "replies": {202: Reply("the job, back at awaiting_confirmation", JobEnvelope)},
    "errors": (409,),
}
