"""Operators' pages: the overview, failed jobs across accounts, a job's attempts, restarts.

Filters live in the query string (bookmarkable) and become the same `JobFilter` as
`GET /api/v1/ops/jobs` (`web.filters.ops_filter`); restarts are the service's
`retry` and `retry_matching`, as `POST /api/v1/ops/jobs/...`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask import current_app, flash, redirect, render_template, request, url_for

from shared.errors import Conflict, ValidationFailed
from shared.jobs.states import TERMINAL, JobType, Status
from shared.jobs.store import JobFilter
from shared.store.accounts import account_names
from shared.timefmt import format_iso, utcnow
from web.filters import ops_filter
from web.page_kit import operator, service
from web.pages import blueprint
from web.pages_jobs import PAGE_SIZE

# Error codes a job can fail with (SPEC 5); the API's own refusals are not job errors.
JOB_ERROR_CODES = (
    "bad_request",
    "validation_failed",
    "bad_archive",
    "bad_file",
    "unsupported_version",
    "conflict",
    "rollback_expired",
    "storage_error",
    "database_error",
    "interrupted",
    "internal",
)
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
FILTER_FIELDS = ("status", "type", "account", "error_code", "window")


def _asked() -> dict[str, str]:
    """The filters of the query string (or of a confirming form), blanks left out."""
    source = request.form if request.method == "POST" else request.args
    asked = {name: source.get(name, "").strip() for name in FILTER_FIELDS if source.get(name)}
    for name, value in asked.items():
        if "\x00" in value:  # PostgreSQL text cannot hold it: refused, as by the API
            raise ValidationFailed(
                f"{name}: must not contain the character U+0000", details={"field": name}
            )
    return asked


def _where(asked: dict[str, str], *, default_status: str = "failed") -> JobFilter:
    """The store's filter of what was asked: failed jobs unless a status is given."""
    status = asked.get("status", default_status)
    if status not in ("any", *[s.value for s in Status]):
        raise ValidationFailed("status: not a status Ferry knows", details={"field": "status"})
    if asked.get("type") and asked["type"] not in [t.value for t in JobType]:
        raise ValidationFailed("type: not a job type Ferry knows", details={"field": "type"})
    since = None
    if asked.get("window"):
        if asked["window"] not in WINDOWS:
            raise ValidationFailed("window: choose 1h, 24h or 7d", details={"field": "window"})
        since = format_iso(utcnow() - WINDOWS[asked["window"]])
    return ops_filter(
        account=asked.get("account"),
        status=None if status == "any" else [status],
        type=asked.get("type"),
        error_code=asked.get("error_code"),
        since=since,
    )


@blueprint.get("/ops")
def ops_overview() -> Any:
    """Counts by status and type, jobs running now, queue age, failures of the last day."""
    operator()
    jobs = service()
    overview = jobs.overview()
    running = [jobs.view(job) for job in overview.running]
    names = account_names(
        current_app.extensions["ferry"].engine, [j.account_id for j in overview.running]
    )
    return render_template(
        "ops.html",
        overview=overview,
        running=running,
        owners={j.id: names.get(j.account_id, j.account_id) for j in overview.running},
        statuses=[s.value for s in Status],
        types=sorted({t for t, _ in overview.counts}),
    )


@blueprint.get("/ops/jobs")
def ops_jobs() -> Any:
    """Jobs of every account (failed by default), filtered, newest first, a page at a time."""
    operator()
    jobs = service()
    try:
        asked = _asked()
        where = _where(asked)
    except ValidationFailed as refused:
        asked = {}
        return _ops_jobs_page(asked, [], None, {}, error=refused.message), 422
    found, next_cursor = jobs.page(
        where, limit=PAGE_SIZE, cursor=request.args.get("cursor") or None
    )
    names = account_names(current_app.extensions["ferry"].engine, [j.account_id for j in found])
    views = [jobs.view(job) for job in found]
    return _ops_jobs_page(
        asked, views, next_cursor, {j.id: names.get(j.account_id, "") for j in found}
    )


def _ops_jobs_page(
    asked: dict[str, str],
    views: list[dict[str, Any]],
    next_cursor: str | None,
    owners: dict[str, str],
    *,
    error: str | None = None,
) -> str:
    return render_template(
        "ops_jobs.html",
        asked=asked,
        jobs=views,
        owners=owners,
        next_cursor=next_cursor,
        next_query=urlencode({**asked, "cursor": next_cursor or ""}),
        query=urlencode(asked),
        statuses=[s.value for s in Status],
        types=[t.value for t in JobType],
        codes=JOB_ERROR_CODES,
        windows=WINDOWS,
        error=error,
        status_shown=asked.get("status", "failed"),
        paged=bool(request.args.get("cursor")),
    )


@blueprint.get("/ops/jobs/<uuid:job_id>")
def ops_job(job_id: str) -> Any:
    """Any account's job with its attempt history."""
    operator()
    jobs = service()
    job = jobs.get(job_id)
    names = account_names(current_app.extensions["ferry"].engine, [job.account_id])
    return render_template(
        "ops_job.html",
        job=jobs.view(job),
        owner=names.get(job.account_id, job.account_id),
        history=jobs.history(job.id),
        terminal=job.status in TERMINAL,
    )


@blueprint.post("/ops/jobs/<uuid:job_id>/retry")
def ops_retry(job_id: str) -> Any:
    """Restart one job of any account."""
    caller = operator()
    try:
        job = service().retry(job_id, by=f"ops:{caller.account_name}")
        flash(f"Restarted: attempt {job.attempt} is queued.")
    except Conflict as refused:
        flash(refused.message, "error")
    return redirect(url_for("pages.ops_job", job_id=job_id), code=303)


@blueprint.get("/ops/jobs/retry")
def ops_retry_confirm() -> Any:
    """The page before a bulk restart: how many jobs match and will restart."""
    operator()
    asked = _asked()
    where = _where(asked)
    count = service().count_restartable(where)
    return render_template("ops_retry.html", asked=asked, count=count, query=urlencode(asked))


@blueprint.post("/ops/jobs/retry")
def ops_retry_matching() -> Any:
    """Restart every failed (or cancelled) job matching the filters; to the queued list."""
    caller = operator()
    asked = _asked()
    restarted = service().retry_matching(_where(asked), by=f"ops:{caller.account_name}")
    expected = request.form.get("expected", "")
    note = f"{len(restarted)} job(s) restarted"
    if expected.isdigit() and int(expected) != len(restarted):
        note += f" ({expected} matched when the count was shown; the jobs changed meanwhile)"
    flash(note + ".")
    # A restarted job's error is cleared (its history keeps it), so the list it lands on
    # is the queued jobs of the same type, account and window.
    kept = {k: v for k, v in asked.items() if k not in ("status", "error_code")}
    shown = {**kept, "status": "queued"}
    return redirect(url_for("pages.ops_jobs") + "?" + urlencode(shown), code=303)
