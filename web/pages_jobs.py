"""People's pages: sign-in, the jobs list, a job's page and what can be done to the job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, flash, redirect, render_template, request, send_file, url_for

from shared.errors import BadRequest, Conflict, ValidationFailed
from shared.jobs.states import TERMINAL, JobType, Status
from shared.jobs.store import JobFilter
from web.page_kit import person, safe_next, service
from web.pages import blueprint
from web.session import sign_in, sign_out, signed_in

PAGE_SIZE = 25
FINDINGS_PER_PAGE = 20
STATUSES = [s.value for s in Status]
TYPES = [t.value for t in JobType]


@blueprint.get("/")
def home() -> Any:
    """The sign-in form, or the signed-in person's jobs."""
    if signed_in() is None:
        return render_template("signin.html", next=request.args.get("next", ""), error=None)
    return jobs_list()


@blueprint.post("/")
def sign_in_submit() -> Any:
    """Sign in with an API token; back to the sign-in form when it is not known."""
    found = sign_in(request.form.get("token", ""))
    if found is None:
        html = render_template(
            "signin.html",
            next=request.form.get("next", ""),
            error="That token is not known (or was revoked). Check it and try again.",
        )
        return html, 401
    return redirect(safe_next(request.form.get("next")), code=303)


@blueprint.get("/signout")
def sign_out_page() -> Any:
    """A page with the sign-out button (sign-out itself is a POST, with CSRF)."""
    return render_template("signout.html")


@blueprint.post("/signout")
def sign_out_submit() -> Any:
    """End the session."""
    sign_out()
    flash("You are signed out.")
    return redirect(url_for("pages.home"), code=303)


def jobs_list() -> Any:
    """The person's jobs, newest first, filtered, a page at a time."""
    caller = person()
    status = request.args.get("status") or None
    job_type = request.args.get("type") or None
    if status not in (None, *STATUSES) or job_type not in (None, *TYPES):
        raise BadRequest("that status or type is not one Ferry knows")
    where = JobFilter(
        account_id=caller.account_id, status=[status] if status else None, type=job_type
    )
    jobs, next_cursor = service().page(
        where, limit=PAGE_SIZE, cursor=request.args.get("cursor") or None
    )
    views = [service().view(job) for job in jobs]
    live = any(v["status"] not in TERMINAL for v in views)
    return render_template(
        "jobs.html",
        jobs=views,
        next_cursor=next_cursor,
        status=status or "",
        type=job_type or "",
        statuses=STATUSES,
        types=TYPES,
        live=live,
        paged=bool(request.args.get("cursor")),
    )


@blueprint.get("/jobs/<uuid:job_id>")
def job_page(job_id: str) -> Any:
    """One of the person's jobs: progress phase by phase, actions, error, preview."""
    caller = person()
    job = service().get(job_id, account_id=caller.account_id)
    view = service().view(job)
    return render_template(
        "job.html",
        job=view,
        findings=findings(view, request.args),
        live=view["status"] not in TERMINAL,
    )


def findings(view: dict[str, Any], args: Mapping[str, str]) -> dict[str, Any]:
    """The preview's errors and warnings, one page of each (`?errors=N&warnings=N`)."""
    preview = view.get("preview") or {}
    out: dict[str, Any] = {}
    for kind in ("errors", "warnings"):
        listed = list(preview.get(kind) or [])
        pages = max(1, -(-len(listed) // FINDINGS_PER_PAGE))
        try:
            page = min(max(1, int(args.get(kind, "1"))), pages)
        except ValueError:
            page = 1
        start = (page - 1) * FINDINGS_PER_PAGE
        out[kind] = {
            "rows": listed[start : start + FINDINGS_PER_PAGE],
            "page": page,
            "pages": pages,
            "listed": len(listed),
            # An archive's report counts in `*_count`, a table's in `*_total`.
            "total": int(
                preview.get(f"{kind[:-1]}_count", preview.get(f"{kind[:-1]}_total", len(listed)))
                or 0
            ),
        }
    return out


def _act(job_id: str, action: str) -> Response:
    """Run an action on the person's job; its 409 is said on the job's page."""
    caller = person()
    jobs = service()
    try:
        if action == "cancel":
            jobs.cancel(job_id, account_id=caller.account_id)
            flash("Cancel asked: the job stops at its next batch and removes what it wrote.")
        elif action == "retry":
            job = jobs.retry(job_id, account_id=caller.account_id, by="user")
            flash(f"Restarted: attempt {job.attempt} is queued.")
        elif action == "confirm":
            skip = request.form.get("skip_invalid") == "true"
            modified = request.form.get("modified") or None
            jobs.confirm(job_id, account_id=caller.account_id, skip_invalid=skip, modified=modified)
            flash("Confirmed: the job goes on.")
        elif action == "remap":
            jobs.remap(job_id, account_id=caller.account_id, mapping=_mapping(request.form))
            flash("Checking the file again with this mapping…")
    except (Conflict, ValidationFailed) as refused:
        flash(refused.message, "error")
    return redirect(url_for("pages.job_page", job_id=job_id), code=303)  # type: ignore[return-value]


@blueprint.post("/jobs/<uuid:job_id>/cancel")
def cancel(job_id: str) -> Response:
    """Cancel the job (an awaiting import too: that is the preview's Cancel)."""
    return _act(job_id, "cancel")


@blueprint.post("/jobs/<uuid:job_id>/retry")
def retry(job_id: str) -> Response:
    """Restart a failed or cancelled job."""
    return _act(job_id, "retry")


@blueprint.post("/jobs/<uuid:job_id>/confirm")
def confirm(job_id: str) -> Response:
    """Let an awaiting import go on."""
    return _act(job_id, "confirm")


def _mapping(form: Mapping[str, str]) -> dict[str, str | None]:
    """The mapping form: `col_N` names a file column, `to_N` its Ferry column ('' ignores)."""
    mapping: dict[str, str | None] = {}
    for key, name in form.items():
        if key.startswith("col_"):
            mapping[name] = form.get("to_" + key.removeprefix("col_")) or None
    return mapping


@blueprint.post("/jobs/<uuid:job_id>/remap")
def remap(job_id: str) -> Response:
    """Check a table import's file again with the mapping of the preview's form."""
    return _act(job_id, "remap")


@blueprint.get("/jobs/<uuid:job_id>/download")
def download(job_id: str) -> Any:
    """The finished export's file (the API's rules: 409 not ready, 410 expired)."""
    found = service().download(job_id, account_id=person().account_id)
    return send_file(
        found.path,
        mimetype=found.content_type,
        as_attachment=True,
        download_name=found.name,
        conditional=True,
    )
