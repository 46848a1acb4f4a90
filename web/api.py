"""The JSON API under /api/v1 (SPEC 9): parse the request, call the service, answer.

Each view's `@operation` says who may call it, what it reads and what it answers; the
OpenAPI document at /api/v1/openapi.json is built from those declarations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    request,
    send_file,
    stream_with_context,
    url_for,
)

from shared.jobs.states import Status
from shared.jobs.store import Job, JobFilter
from shared.params import ImportArchiveParams
from shared.service import JobService
from shared.tables.inline import InlineExport
from shared.tables.params import TableImportParams, parse_table_import
from shared.tables.writers import MEDIA_TYPES as TABLE_MEDIA_TYPES
from web import schemas
from web.auth import principal
from web.contract import Header, Reply, operation, refuse
from web.errors import error_response
from web.filters import ops_filter
from web.logs import note_job
from web.sse import job_events, resume_after
from web.streams import TooManyStreams
from web.uploads import adopted, display_name

blueprint = Blueprint("api", __name__)

_JOB_ID = {"job_id": "$response.body#/job/id"}
# What a client can do next with a job it was just given (OpenAPI links, for tools).
_JOB_LINKS = {
    "get": ("getJob", _JOB_ID),
    "cancel": ("cancelJob", _JOB_ID),
    "retry": ("retryJob", _JOB_ID),
    "confirm": ("confirmJob", _JOB_ID),
    "download": ("downloadJob", _JOB_ID),
}
_QUEUED = Reply(
    "the job, as it was queued",
    schemas.JobEnvelope,
    headers={"Location": "the job's URL"},
    links=_JOB_LINKS,
)
_CHANGED = Reply("the job, as the request left it", schemas.JobEnvelope, links=_JOB_LINKS)


def _service() -> JobService:
    return current_app.extensions["ferry"].service


def _job_response(job: Job, status: int, *, location: bool = False) -> Response:
    """The job as the service left it (the caller already holds the updated row)."""
    note_job(job.id)
    response = jsonify(job=_service().view(job))
    response.status_code = status
    if location:
        response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


def _filter(query: schemas.RetryFilter | schemas.OpsJobsQuery) -> JobFilter:
    """The job store's filter for an operator's query or retry body."""
    return ops_filter(
        account=query.account,
        status=query.status,
        type=query.type,
        error_code=query.error_code,
        since=query.since,
        until=query.until,
    )


def _page(where: JobFilter, query: schemas.JobsQuery) -> Response:
    service = _service()
    jobs, next_cursor = service.page(where, limit=query.limit, cursor=query.cursor)
    return jsonify(jobs=[service.view(j) for j in jobs], next_cursor=next_cursor)


# --- the document ------------------------------------------------------------------------


@blueprint.get("/openapi.json")
@operation(
    "getOpenApi",
    tags=("meta",),
    auth=None,
    replies={200: Reply("the OpenAPI 3.1 document", schema={"type": "object"})},
)
def openapi_document() -> Response:
    """This API's OpenAPI 3.1 description (no auth)."""
    from web.openapi import document

    cache = current_app.extensions.setdefault("ferry_openapi", {})
    if "document" not in cache:
        cache["document"] = document(current_app)
    return jsonify(cache["document"])


# --- a person's own jobs ---------------------------------------------------------------


@blueprint.post("/exports")
@operation(
    "createExport",
    tags=("jobs",),
    auth="user",
    body=schemas.ExportRequest,
    headers=(
        Header(
            "Idempotency-Key",
            "the same key from the same account returns the same job (an empty one is none)",
            max_length=255,
        ),
    ),
    replies={
        200: Reply(
            "a small table export (`delivery` auto up to FERRY_SYNC_EXPORT_MAX_ROWS rows, or"
            " inline): the file itself, as an attachment",
            media_type="text/csv",
            also={k: v for k, v in TABLE_MEDIA_TYPES.items() if k != "text/csv"},
            schema=TABLE_MEDIA_TYPES["text/csv"],
            headers={"Content-Disposition": 'attachment; filename="{table}-….{ext}"'},
        ),
        202: Reply(
            "the job, as it was queued (or as it is, for a replayed Idempotency-Key)",
            schemas.JobEnvelope,
            headers={
                "Location": "the job's URL",
                "Idempotent-Replayed": "(optional) `true` when the key was seen before",
            },
            links=_JOB_LINKS,
        ),
    },
    errors=(409,),
)
def create_export(body: schemas.ExportRequest, headers: dict[str, str | None]) -> Response:
    """Queue an archive export, or export a table (SPEC 13).

    `to` must be after `from` (422 naming `to` otherwise). An `Idempotency-Key` reused with
    a different body is a 409. A table export of at most FERRY_SYNC_EXPORT_MAX_ROWS rows
    (`delivery` auto) answers with the file itself (200); `inline` over that is a 422
    naming `delivery`; `background` always queues a job.
    """
    service = _service()
    answer = service.request_export(
        principal().account_id,
        body.root.model_dump(by_alias=True, exclude_unset=True),
        idempotency_key=headers["Idempotency-Key"],
    )
    if isinstance(answer, InlineExport):
        return Response(
            stream_with_context(answer.chunks),
            content_type=answer.content_type,
            headers={"Content-Disposition": answer.disposition, "Cache-Control": "no-store"},
        )
    response = _job_response(answer.job, 202, location=True)
    if not answer.created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blueprint.get("/jobs")
@operation(
    "listJobs",
    tags=("jobs",),
    auth="user",
    query=schemas.JobsQuery,
    replies={
        200: Reply(
            "a page of the caller's jobs, newest first",
            schemas.JobPage,
            links={"first": ("getJob", {"job_id": "$response.body#/jobs/0/id"})},
        )
    },
    errors=(400,),
)
def list_jobs(query: schemas.JobsQuery) -> Response:
    """The caller's jobs, newest first, filtered by status and type, a page at a time.

    A cursor that is not one this API gave is a 400 naming `cursor`.
    """
    where = JobFilter(account_id=principal().account_id, status=query.status, type=query.type)
    return _page(where, query)


@blueprint.get("/jobs/<uuid:job_id>")
@operation(
    "getJob",
    tags=("jobs",),
    auth="user",
    replies={200: Reply("the job", schemas.JobEnvelope)},
)
def get_job(job_id: str) -> Response:
    """One of the caller's jobs."""
    service = _service()
    return _job_response(service.get(job_id, account_id=principal().account_id), 200)


@blueprint.get("/jobs/<uuid:job_id>/events")
@operation(
    "jobEvents",
    tags=("jobs",),
    auth="user",
    headers=(
        Header(
            "Last-Event-ID",
            "the id of the last event received; the stream starts again with a snapshot",
        ),
    ),
    replies={
        200: Reply(
            "Server-Sent Events: `snapshot` first, then `progress` and `status`, `end` last",
            media_type="text/event-stream",
            schema={"type": "string"},
        )
    },
    errors=(429,),
)
def job_event_stream(job_id: str, headers: dict[str, str | None]) -> Response:
    """Follow a job: a snapshot, then its progress and status changes, until it ends.

    Streams per account are capped (429 `too_many_streams` beyond the cap, with
    Retry-After) and live at most FERRY_STREAM_SECONDS; the client reconnects with
    `Last-Event-ID` and gets a fresh snapshot.
    """
    resources = current_app.extensions["ferry"]
    account_id = principal().account_id
    resources.service.get(job_id, account_id=account_id)  # 404 before a slot is taken
    try:
        slot = resources.streams.take(account_id)
    except TooManyStreams as refused:
        response, status = error_response(
            "too_many_streams",
            f"this account already has {refused.limit} open event streams; "
            "close one, or retry after the time in Retry-After",
            {"limit": refused.limit},
            status=429,
        )
        response.status_code = status
        response.headers["Retry-After"] = str(refused.retry_after)
        return response
    stream: Iterator[str] = job_events(
        resources.service,
        resources.live,
        job_id,
        after=resume_after(headers.get("Last-Event-ID")),
        seconds=resources.settings.stream_seconds,
        slot=slot,
    )
    response = Response(
        stream,
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # The server closes the body when the stream ends or the client went away.
    response.call_on_close(slot.release)
    return response


@blueprint.post("/jobs/<uuid:job_id>/cancel")
@operation(
    "cancelJob",
    tags=("jobs",),
    auth="user",
    replies={202: _CHANGED},
    errors=(409,),
)
def cancel_job(job_id: str) -> Response:
    """Cancel one of the caller's jobs (409 when it already ended)."""
    job = _service().cancel(job_id, account_id=principal().account_id)
    return _job_response(job, 202)


@blueprint.post("/jobs/<uuid:job_id>/retry")
@operation(
    "retryJob",
    tags=("jobs",),
    auth="user",
    replies={202: _CHANGED},
    errors=(409,),
)
def retry_job(job_id: str) -> Response:
    """Restart one of the caller's failed or cancelled jobs (409 for any other status)."""
    job = _service().retry(job_id, account_id=principal().account_id, by="user")
    return _job_response(job, 202)


@blueprint.get("/jobs/<uuid:job_id>/download")
@operation(
    "downloadJob",
    tags=("jobs",),
    auth="user",
    replies={
        200: Reply(
            "the export's file (an archive's zip, or a table), as an attachment",
            media_type="application/zip",
            also=TABLE_MEDIA_TYPES,
            schema={"type": "string", "contentMediaType": "application/zip"},
        )
    },
    errors=(409, 410),
)
def download(job_id: str) -> Any:
    """A succeeded export's file, streamed (409 while not ready, 410 after retention)."""
    found = _service().download(job_id, account_id=principal().account_id)
    note_job(job_id)
    return send_file(
        found.path,
        mimetype=found.content_type,
        as_attachment=True,
        download_name=found.name,
        conditional=True,
    )


@blueprint.post("/imports")
@operation(
    "createImport",
    tags=("jobs",),
    auth="user",
    body=schemas.ImportForm,
    body_kind="multipart",
    files=("file",),
    replies={202: _QUEUED},
)
def create_import(body: schemas.ImportForm) -> Response:
    """Queue an import of an uploaded archive (zip, tar or tar.gz) or table file.

    `type=archive` (the default) takes an archive; `type=table` a CSV, TSV, JSON, JSON
    Lines or XLSX file of `table`, recognised by its content, with an optional `mapping`
    (422 naming a mapped column that does not exist, or two file columns mapped to one).
    Without `confirm=true` the job stops at `awaiting_confirmation` with its validation
    report as `preview`.
    """
    params: ImportArchiveParams | TableImportParams
    wrong = schemas.wrong_kind(body)
    if wrong == "table" and body.table is None:
        raise refuse("table", "is required with type table")
    if wrong is not None:
        raise refuse(wrong, f"does not go with type {body.type}")
    if body.type == "table":
        assert body.table is not None
        params = parse_table_import(
            table=body.table,
            mapping=body.mapping,
            mode=body.mode or "upsert",
            timezone=body.timezone,
            sheet=body.sheet,
            confirm=body.confirm,
            skip_invalid=body.skip_invalid,
        )
    else:
        params = ImportArchiveParams(
            confirm=body.confirm,
            on_conflict=body.on_conflict or "skip",
            skip_invalid=body.skip_invalid,
        )
    upload = request.files["file"]
    received = Path(upload.stream.name)  # streamed into storage by FerryRequest
    upload.stream.close()
    job = _service().submit_import(
        principal().account_id,
        received=received,
        filename=display_name(upload.filename or ""),
        params=params,
    )
    adopted(str(received))
    return _job_response(job, 202, location=True)


@blueprint.post("/jobs/<uuid:job_id>/remap")
@operation(
    "remapJob",
    tags=("jobs",),
    auth="user",
    body=schemas.RemapRequest,
    replies={202: Reply("the job, queued to read its file again", schemas.JobEnvelope)},
    errors=(409,),
)
def remap_job(job_id: str, body: schemas.RemapRequest) -> Response:
    """Validate a table import's stored file again with another mapping.

    The job must be a table import at `awaiting_confirmation` (409 otherwise); it is
    queued again and comes back to `awaiting_confirmation` with a new preview. A mapping
    to an unknown column, or of two file columns to one, is a 422 naming it.
    """
    job = _service().remap(job_id, account_id=principal().account_id, mapping=body.mapping)
    return _job_response(job, 202)


@blueprint.post("/jobs/<uuid:job_id>/confirm")
@operation(
    "confirmJob",
    tags=("jobs",),
    auth="user",
    body=schemas.ConfirmRequest,
    body_required=False,
    replies={202: _CHANGED},
    errors=(409,),
)
def confirm_job(job_id: str, body: schemas.ConfirmRequest) -> Response:
    """Let an import waiting at its report go on to apply, or a rollback waiting on rows
    changed since its import go on (`modified`: keep or revert).

    409 when the job is not awaiting confirmation, or while its report lists errors and
    neither the import nor this body says `skip_invalid`; 422 naming `modified` when a
    rollback's confirm lacks it, or another job's has it.
    """
    job = _service().confirm(
        job_id,
        account_id=principal().account_id,
        skip_invalid=body.skip_invalid,
        modified=body.modified,
    )
    return _job_response(job, 202)


# --- import history and undo (SPEC 13) ----------------------------------------------------


@blueprint.get("/imports")
@operation(
    "listImports",
    tags=("imports",),
    auth="user",
    query=schemas.ImportsQuery,
    replies={
        200: Reply(
            "the account's imports, newest first",
            schemas.ImportsPage,
            links={"rollback": ("rollbackImport", {"job_id": "$response.body#/imports/0/id"})},
        )
    },
    errors=(400,),
)
def list_imports(query: schemas.ImportsQuery) -> Response:
    """The caller's import history (archive and table imports), newest first, a page at a
    time, each with its counts and until when it can be rolled back.

    A cursor that is not one this API gave is a 400 naming `cursor`.
    """
    records, next_cursor = _service().imports_page(
        principal().account_id, limit=query.limit, cursor=query.cursor
    )
    return jsonify(imports=records, next_cursor=next_cursor)


@blueprint.post("/imports/<uuid:job_id>/rollback")
@operation(
    "rollbackImport",
    tags=("imports",),
    auth="user",
    replies={202: _QUEUED},
    errors=(409,),
)
def rollback_import(job_id: str) -> Response:
    """Undo one of the caller's succeeded imports: queues an `import.rollback` job.

    409 `rollback_expired` after the import's `rollback_until`; 409 `conflict` when it
    was rolled back already, a rollback of it is under way, or it did not succeed.
    """
    job = _service().request_rollback(job_id, account_id=principal().account_id)
    return _job_response(job, 202, location=True)


# --- operators ---------------------------------------------------------------------------


@blueprint.get("/ops/jobs")
@operation(
    "opsListJobs",
    tags=("ops",),
    auth="ops",
    query=schemas.OpsJobsQuery,
    replies={200: Reply("a page of jobs of every account, newest first", schemas.JobPage)},
    errors=(400,),
)
def ops_list_jobs(query: schemas.OpsJobsQuery) -> Response:
    """Jobs of every account; filters status, type, account, error_code, since, until.

    An `account` that names no account is a 422 naming it.
    """
    return _page(_filter(query), query)


@blueprint.post("/ops/jobs/<uuid:job_id>/retry")
@operation(
    "opsRetryJob",
    tags=("ops",),
    auth="ops",
    replies={200: Reply("the id of the job restarted", schemas.Restarted)},
    errors=(409,),
)
def ops_retry_job(job_id: str) -> Response:
    """Restart any account's failed or cancelled job."""
    job = _service().retry(job_id, by=f"ops:{principal().account_name}")
    note_job(job.id)
    return jsonify(restarted=[job.id])


@blueprint.post("/ops/jobs/retry")
@operation(
    "opsRetryMatching",
    tags=("ops",),
    auth="ops",
    body=schemas.RetryFilter,
    body_required=False,
    replies={200: Reply("the ids of the jobs restarted", schemas.Restarted)},
)
def ops_retry_matching(body: schemas.RetryFilter) -> Response:
    """Restart every failed (by default) or cancelled job matching the filter body."""
    where = _filter(body)
    if not where.status:
        where = JobFilter(
            account_id=where.account_id,
            status=[Status.FAILED.value],
            type=where.type,
            error_code=where.error_code,
            since=where.since,
            until=where.until,
        )
    jobs = _service().retry_matching(where, by=f"ops:{principal().account_name}")
    return jsonify(restarted=[job.id for job in jobs])
