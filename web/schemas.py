"""The shapes of the HTTP API (SPEC 9) as pydantic models.

Views validate their input with these models and the OpenAPI document is built from them
(`web/openapi.py`), so what the document says and what the API accepts are one thing.
Request models refuse unknown fields; response models describe what the views return.
Rules one field cannot state (`to` after `from`, a filter naming an account that exists)
stay with the core's parsers and answer 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    WithJsonSchema,
)

from shared.jobs.states import JobType, Status
from shared.timefmt import parse_iso

StatusName = Literal[
    "queued",
    "running",
    "awaiting_confirmation",
    "cancelling",
    "cancelled",
    "failed",
    "succeeded",
]
JobTypeName = Literal[
    "export.archive", "export.table", "import.archive", "import.table", "import.rollback"
]
assert set(StatusName.__args__) == {s.value for s in Status}  # type: ignore[attr-defined]
assert set(JobTypeName.__args__) == {t.value for t in JobType}  # type: ignore[attr-defined]

ERROR_CODES = (
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "gone",
    "payload_too_large",
    "validation_failed",
    "too_many_streams",
    "rollback_expired",
    "database_error",
    "storage_error",
    "internal",
)
ErrorCode = Literal[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "gone",
    "payload_too_large",
    "validation_failed",
    "too_many_streams",
    "rollback_expired",
    "database_error",
    "storage_error",
    "internal",
]
assert set(ErrorCode.__args__) == set(ERROR_CODES)  # type: ignore[attr-defined]


def _iso(value: str) -> str:
    try:
        parse_iso(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date, like 2024-01-31T00:00:00Z") from None
    return value


def _comma_list(value: Any) -> Any:
    # `status=queued,failed` (OpenAPI: style form, explode false) arrives as one string.
    if isinstance(value, str):
        return value.split(",")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000; refuse it where it comes in.
    if "\x00" in value:
        raise ValueError("must not contain the character U+0000")
    return value


NO_NUL = "^[^\\u0000]*$"
Text = Annotated[
    str, AfterValidator(_no_nul), WithJsonSchema({"type": "string", "pattern": NO_NUL})
]
IsoDate = Annotated[
    str, AfterValidator(_iso), WithJsonSchema({"type": "string", "format": "date-time"})
]
Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]
Statuses = Annotated[list[StatusName], BeforeValidator(_comma_list), Field(min_length=1)]


class Request(BaseModel):
    """A request part (body, form or query): unknown fields are refused, by name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Shape(BaseModel):
    """A response shape; clients must ignore fields they do not know."""

    model_config = ConfigDict(extra="allow")


# --- requests --------------------------------------------------------------------------------


class ExportArchiveRequest(Request):
    """`POST /exports` for an archive (SPEC 4 and 9)."""

    model_config = ConfigDict(
        title="ExportArchiveRequest",
        json_schema_extra={
            # incremental selects by what changed; it cannot be combined with a range.
            "if": {"properties": {"incremental": {"const": True}}, "required": ["incremental"]},
            "then": {"properties": {"from": {"type": "null"}, "to": {"type": "null"}}},
            "examples": [
                {"type": "archive"},
                {"type": "archive", "from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"},
                {"type": "archive", "incremental": True, "compress": "all"},
            ],
        },
    )

    type: Literal["archive"]
    from_: IsoDate | None = Field(
        None, alias="from", description="range start (inclusive); `to` must be after it"
    )
    to: IsoDate | None = Field(None, description="range end (exclusive)")
    incremental: StrictBool = Field(
        False, description="only what changed since the last full or incremental export"
    )
    compress: Literal["samples", "all", "none"] = Field(
        "samples", description="which folders' files are gzipped"
    )


TableName = Literal["samples", "items", "places"]


class ExportTableRequest(Request):
    """`POST /exports` for a table (SPEC 13)."""

    model_config = ConfigDict(
        title="ExportTableRequest",
        json_schema_extra={
            "examples": [
                {"type": "table", "table": "samples", "format": "csv"},
                {
                    "type": "table",
                    "table": "items",
                    "format": "xlsx",
                    "columns": ["id", "start_date", "end_date", "is_visit"],
                    "timezone": "Europe/Berlin",
                },
            ]
        },
    )

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


class ConfirmRequest(Request):
    """`POST /jobs/{id}/confirm`: an optional body."""

    skip_invalid: StrictBool = Field(
        False, description="apply the valid records and report the rest"
    )
    modified: Literal["keep", "revert"] | None = Field(
        None,
        description="a rollback that found rows changed since its import: leave them as they"
        " are now (`keep`) or undo them too (`revert`); required for a rollback, refused"
        " for any other job (422)",
    )


class JobsQuery(Request):
    """`GET /jobs`: filters and a page."""

    status: Statuses | None = Field(None, description="one or more statuses, comma-separated")
    type: JobTypeName | None = None
    limit: int = Field(50, ge=1, le=200, description="jobs per page")
    cursor: Text | None = Field(None, description="`next_cursor` of the previous page")


class OpsJobsQuery(JobsQuery):
    """`GET /ops/jobs`: the user filters plus account, error code and a creation window."""

    account: Text | None = Field(None, description="an account's name or id")
    error_code: Text | None = Field(None, description="the failed job's error code")
    since: IsoDate | None = Field(None, description="created at or after")
    until: IsoDate | None = Field(None, description="created before")


class RetryFilter(Request):
    """`POST /ops/jobs/retry`: which failed or cancelled jobs to restart (default: failed)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error_code": "storage_error"},
                {"status": ["cancelled"], "type": "export.archive"},
            ]
        }
    )

    status: list[Literal["failed", "cancelled"]] | None = Field(None, min_length=1)
    type: JobTypeName | None = None
    account: Text | None = Field(None, description="an account's name or id")
    error_code: Text | None = None
    since: IsoDate | None = Field(None, description="created at or after")
    until: IsoDate | None = Field(None, description="created before")


def _form_bool(value: Any) -> Any:
    # Multipart fields are text; only JSON's spellings of a boolean are accepted.
    if isinstance(value, str):
        if value == "true":
            return True
        if value == "false":
            return False
        raise ValueError("must be true or false")
    return value


FormBool = Annotated[StrictBool, BeforeValidator(_form_bool)]

# The fields of each kind of import besides `type`, `confirm` and `skip_invalid`.
ARCHIVE_ONLY = ("on_conflict",)
TABLE_ONLY = ("table", "mapping", "mode", "timezone", "sheet")


# Optional multipart fields: text, never null (left out, a field takes its default), so
# the document says string, or one of the choices.
FormConflict = Annotated[
    Literal["skip", "newer"] | None, WithJsonSchema({"type": "string", "enum": ["skip", "newer"]})
]
FormTable = Annotated[
    TableName | None,
    WithJsonSchema({"type": "string", "enum": ["samples", "items", "places"]}),
]
FormMode = Annotated[
    Literal["insert", "upsert"] | None,
    WithJsonSchema({"type": "string", "enum": ["insert", "upsert"]}),
]
FormText = Annotated[Text | None, WithJsonSchema({"type": "string", "pattern": NO_NUL})]


class ImportForm(Request):
    """`POST /imports`: the multipart fields besides `file`, for an archive (`type`
    archive, the default) or a table (`type` table, with `table`); a field of the other
    kind is a 422 naming it (`wrong_kind`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"type": {"const": "table"}}, "required": ["type"]},
            "then": {
                "required": ["table"],
                "properties": {name: False for name in ARCHIVE_ONLY},
            },
            "else": {"properties": {name: False for name in TABLE_ONLY}},
        }
    )

    type: Literal["archive", "table"] = "archive"
    confirm: FormBool = Field(
        False, description="apply without stopping at `awaiting_confirmation`"
    )
    on_conflict: FormConflict = Field(
        None,
        description="archive: when an id exists, keep the account's record (skip, the"
        " default), or the newer one",
    )
    skip_invalid: FormBool = Field(False, description="apply the valid records, report the rest")
    table: FormTable = Field(None, description="table: which table the file holds")
    mapping: FormText = Field(
        None,
        description="table: a JSON object, file column -> Ferry column, or null to ignore"
        " one (default: headers matched ignoring case, spaces, `_` and camelCase)",
    )
    mode: FormMode = Field(
        None, description="table: insert (rows must be new) or upsert by id (the default)"
    )
    timezone: FormText = Field(None, description="table: the zone of dates without an offset")
    sheet: FormText = Field(None, description="table, XLSX: the sheet (default: the first)")


def wrong_kind(form: ImportForm) -> str | None:
    """The first field of `form` that does not go with its `type` (`table` when a table
    import lacks it), or None."""
    if form.type == "table":
        if form.table is None:
            return "table"
        return next((n for n in ARCHIVE_ONLY if getattr(form, n) is not None), None)
    return next((n for n in TABLE_ONLY if getattr(form, n) is not None), None)


class RemapRequest(Request):
    """`POST /jobs/{id}/remap`: another mapping for a table import's stored file."""

    mapping: dict[str, Text | None] = Field(
        description="file column -> Ferry column, or null to ignore the file column"
    )


# --- responses -------------------------------------------------------------------------------


class ImportsQuery(Request):
    """`GET /imports`: a page of the import history."""

    limit: int = Field(50, ge=1, le=200)
    cursor: Text | None = Field(None, description="`next_cursor` of the previous page")


class ImportCounts(Shape):
    """What an import wrote."""

    created: int = Field(ge=0)
    updated: int = Field(ge=0)
    skipped: int = Field(ge=0)
    invalid: int = Field(ge=0)


class ImportRecord(Shape):
    """One import in the history (an archive or a table)."""

    id: Uuid = Field(description="the import job's id")
    type: Literal["archive", "table"]
    table: str | None = Field(description="a table import's table; null for an archive")
    filename: str
    status: StatusName = Field(description="the import job's status")
    counts: ImportCounts
    finished_at: IsoDate | None
    rollback_until: IsoDate | None = Field(
        description="until when it can be rolled back (its end + FERRY_ROLLBACK_HOURS);"
        " null when it cannot be (not succeeded, or made before undo existed)"
    )
    rolled_back_at: IsoDate | None
    rollback_job: Uuid | None = Field(description="the last rollback job asked for, if any")


class ImportsPage(Shape):
    """A page of the import history, newest first."""

    imports: list[ImportRecord]
    next_cursor: str | None


class ErrorDetails(Shape):
    """More about an error: `field` names the input at fault."""

    field: str | None = None


class ErrorBody(BaseModel):
    """What went wrong."""

    code: ErrorCode
    message: str
    details: ErrorDetails


class ErrorEnvelope(BaseModel):
    """Every error answer."""

    error: ErrorBody


class Progress(Shape):
    """A job's progress (SPEC 6)."""

    phase: str
    phase_index: int = Field(ge=0)
    phase_count: int = Field(ge=1)
    phase_done: int = Field(ge=0)
    phase_total: int = Field(ge=0)
    rows_done: int = Field(ge=0)
    rows_total: int = Field(ge=0)
    overall: float = Field(ge=0, le=1)
    eta_seconds: float | None
    updated_at: IsoDate


class JobError(Shape):
    """Why a job failed."""

    code: str
    message: str
    retryable: bool


class Job(BaseModel):
    """A job (SPEC 9)."""

    id: Uuid
    type: JobTypeName
    status: StatusName
    params: dict[str, Any]
    attempt: int = Field(ge=1)
    created_at: IsoDate
    started_at: IsoDate | None
    finished_at: IsoDate | None
    progress: Progress | None
    error: JobError | None
    result: dict[str, Any] | None = Field(
        description="export: download_url, bytes, files, stats, expires_at; import: counts"
    )
    preview: dict[str, Any] | None = Field(description="an import's validation report")


class JobEnvelope(BaseModel):
    """One job."""

    job: Job


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    jobs: list[Job]
    next_cursor: str | None


class Restarted(BaseModel):
    """The ids of the jobs an operator restarted."""

    restarted: list[Uuid]


class Liveness(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the database and Redis answer."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]
