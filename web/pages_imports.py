"""People's import history (SPEC 14 "Import history"): every import with its counts, how
long it can still be undone, and the undo itself (`JobService.request_rollback`, as
`POST /api/v1/imports/{id}/rollback`)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from shared.errors import Conflict, RollbackExpired
from shared.timefmt import parse_iso, utcnow
from web.page_kit import person, service
from web.pages import blueprint
from web.pages_jobs import PAGE_SIZE


@blueprint.get("/imports")
def imports_list() -> Any:
    """The person's imports, newest first, a page at a time."""
    caller = person()
    records, next_cursor = service().imports_page(
        caller.account_id, limit=PAGE_SIZE, cursor=request.args.get("cursor") or None
    )
    now = utcnow()
    for record in records:
        until = record.get("rollback_until")
        left = (parse_iso(until) - now).total_seconds() if until else 0.0
        record["seconds_left"] = max(0.0, left)
        record["can_undo"] = (
            record["status"] == "succeeded"
            and not record.get("rolled_back_at")
            and not record.get("rollback_job")
            and left > 0
        )
    return render_template(
        "imports.html",
        imports=records,
        next_cursor=next_cursor,
        paged=bool(request.args.get("cursor")),
    )


@blueprint.post("/imports/<uuid:import_id>/rollback")
def rollback(import_id: str) -> Any:
    """Undo an import: to the rollback job's page (which may ask about changed rows)."""
    caller = person()
    try:
        job = service().request_rollback(import_id, account_id=caller.account_id)
    except (Conflict, RollbackExpired) as refused:
        flash(refused.message, "error")
        return redirect(url_for("pages.imports_list"), code=303)
    return redirect(url_for("pages.job_page", job_id=job.id), code=303)
