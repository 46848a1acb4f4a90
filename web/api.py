"""The JSON API under /api/v1 (SPEC 9): parse the request, call the service, answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request, send_file, url_for

from shared.errors import BadRequest, NotFound, ValidationFailed
from shared.jobs.states import JobType, Status
from shared.jobs.store import Job, JobFilter
from shared.params import parse_import_form
from shared.service import JobService
from shared.store.accounts import get_account
from shared.timefmt import parse_iso
from web.auth import principal, require_ops, require_token
from web.errors import error_response
from web.sse import job_events, resume_after
from web.streams import TooManyStreams
from web.uploads import adopted

blueprint = Blueprint("api", __name__)

MAX_PAGE = 200
_STATUSES = {s.value for s in Status}
_TYPES = {t.value for t in JobType}


def _service() -> JobService:
    return current_app.extensions["ferry"].service


def _job_response(job: Job, status: int) -> Response:
    """The job as the service left it (the caller already holds the updated row)."""
    response = jsonify(job=_service().view(job))
    response.status_code = status
    return response


def _json_body(*, required: bool) -> Any:
    raw = request.get_data(cache=False)
    if not raw.strip():
        if required:
            raise BadRequest("a JSON body is required", details={"field": "body"})
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", details={"field": "body"}) from None


def _refuse(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"field": field})


def _filter_from(source: Any, *, ops: bool, listing: bool = True) -> JobFilter:
    """A job filter from query arguments or a JSON body (both name their fields)."""
    if not isinstance(source, dict):
        raise BadRequest("the body must be a JSON object", details={"field": "body"})
    allowed = {"status", "type"} | ({"limit", "cursor"} if listing else set())
    if ops:
        allowed |= {"account", "error_code", "since", "until"}
    for key in source:
        if key not in allowed:
            raise _refuse(key, "is not a known filter")
    statuses = source.get("status")
    if isinstance(statuses, str):
        statuses = [s for s in statuses.split(",") if s]
    if statuses is not None and (
        not isinstance(statuses, list) or not all(s in _STATUSES for s in statuses)
    ):
        raise _refuse("status", f"must be among {', '.join(sorted(_STATUSES))}")
    job_type = source.get("type")
    if job_type is not None and job_type not in _TYPES:
        raise _refuse("type", f"must be one of {', '.join(sorted(_TYPES))}")
    account_id = None
    if source.get("account"):
        try:
            account_id = get_account(current_app.extensions["ferry"].engine, source["account"]).id
        except NotFound:
            raise _refuse("account", "no such account") from None
    window = {}
    for field in ("since", "until"):
        if source.get(field) is not None:
            try:
                window[field] = parse_iso(str(source[field]))
            except ValueError:
                raise _refuse(field, "must be an ISO 8601 date") from None
    error_code = source.get("error_code")
    if error_code is not None and not isinstance(error_code, str):
        raise _refuse("error_code", "must be a string")
    return JobFilter(
        account_id=account_id, status=statuses, type=job_type, error_code=error_code, **window
    )


def _page_args() -> tuple[int, str | None]:
    raw = request.args.get("limit", "50")
    try:
        limit = int(raw)
    except ValueError:
        raise _refuse("limit", "must be a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise _refuse("limit", f"must be between 1 and {MAX_PAGE}")
    return limit, request.args.get("cursor") or None


def _list(where: JobFilter) -> Response:
    service = _service()
    limit, cursor = _page_args()
    jobs, next_cursor = service.page(where, limit=limit, cursor=cursor)
    return jsonify(jobs=[service.view(j) for j in jobs], next_cursor=next_cursor)


# --- a person's own jobs ---------------------------------------------------------------


@blueprint.post("/exports")
@require_token
def create_export() -> Response:
    """Queue an export; an Idempotency-Key returns the same job for the same account."""
    body = _json_body(required=True)
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > 255:
        raise _refuse("Idempotency-Key", "must be at most 255 characters")
    service = _service()
    job, created = service.submit_export(principal().account_id, body, idempotency_key=key)
    response = jsonify(job=service.view(job))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blueprint.get("/jobs")
@require_token
def list_jobs() -> Response:
    """The caller's jobs, newest first; filters `status`, `type`; `limit`, `cursor`."""
    where = _filter_from(request.args.to_dict(), ops=False)
    return _list(JobFilter(account_id=principal().account_id, status=where.status, type=where.type))


@blueprint.get("/jobs/<job_id>")
@require_token
def get_job(job_id: str) -> Response:
    """One of the caller's jobs."""
    service = _service()
    return jsonify(job=service.view(service.get(job_id, account_id=principal().account_id)))


@blueprint.get("/jobs/<job_id>/events")
@require_token
def job_event_stream(job_id: str) -> Response:
    """Server-Sent Events: a snapshot, then progress and status changes, until the end or
    the stream's lifetime; 429 `too_many_streams` while the account has its cap open."""
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
        after=resume_after(request.headers.get("Last-Event-ID")),
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


@blueprint.post("/jobs/<job_id>/cancel")
@require_token
def cancel_job(job_id: str) -> Response:
    """Cancel one of the caller's jobs (409 when it already ended)."""
    job = _service().cancel(job_id, account_id=principal().account_id)
    return _job_response(job, 202)


@blueprint.post("/jobs/<job_id>/retry")
@require_token
def retry_job(job_id: str) -> Response:
    """Restart one of the caller's failed or cancelled jobs."""
    job = _service().retry(job_id, account_id=principal().account_id, by="user")
    return _job_response(job, 202)


@blueprint.get("/jobs/<job_id>/download")
@require_token
def download(job_id: str) -> Response:
    """A succeeded export's zip, streamed (409 while not ready, 410 after retention)."""
    found = _service().download(job_id, account_id=principal().account_id)
    return send_file(
        found.path,
        mimetype="application/zip",
        as_attachment=True,
        download_name=found.name,
        conditional=True,
    )


@blueprint.post("/imports")
@require_token
def create_import() -> Response:
    """Queue an import of an uploaded archive (multipart: file, confirm, on_conflict, …)."""
    upload = request.files.get("file")
    form = {k: v for k, v in request.form.items()}
    params = parse_import_form(form, has_file=upload is not None and bool(upload.filename))
    assert upload is not None
    received = Path(upload.stream.name)  # streamed into storage by FerryRequest
    upload.stream.close()
    service = _service()
    job = service.submit_import(
        principal().account_id,
        received=received,
        filename=upload.filename or "upload",
        params=params,
    )
    adopted(str(received))
    response = jsonify(job=service.view(job))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


@blueprint.post("/jobs/<job_id>/confirm")
@require_token
def confirm_job(job_id: str) -> Response:
    """Let an import waiting at its report go on (409 while the report lists errors)."""
    body = _json_body(required=False)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", details={"field": "body"})
    for key in body:
        if key != "skip_invalid":
            raise _refuse(key, "is not a known field")
    skip_invalid = body.get("skip_invalid", False)
    if not isinstance(skip_invalid, bool):
        raise _refuse("skip_invalid", "must be true or false")
    job = _service().confirm(job_id, account_id=principal().account_id, skip_invalid=skip_invalid)
    return _job_response(job, 202)


# --- operators ---------------------------------------------------------------------------


@blueprint.get("/ops/jobs")
@require_ops
def ops_list_jobs() -> Response:
    """Jobs of every account; filters status, type, account, error_code, since, until."""
    return _list(_filter_from(request.args.to_dict(), ops=True))


@blueprint.post("/ops/jobs/<job_id>/retry")
@require_ops
def ops_retry_job(job_id: str) -> Response:
    """Restart any failed or cancelled job."""
    job = _service().retry(job_id, by=f"ops:{principal().account_name}")
    return jsonify(restarted=[job.id])


@blueprint.post("/ops/jobs/retry")
@require_ops
def ops_retry_matching() -> Response:
    """Restart every failed (default) or cancelled job matching the filter body."""
    body = _json_body(required=False)
    where = _filter_from(body, ops=True, listing=False)
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
