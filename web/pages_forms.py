"""People's forms: a new export (archive or table) and a new import (an archive upload).

The forms are turned into the API's request bodies and handed to the same service calls
as `POST /exports` and `POST /imports`, so every rule (and every refusal, naming its field)
is the API's.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from flask import Response, redirect, render_template, request, stream_with_context, url_for

from shared.errors import FerryError, ValidationFailed
from shared.params import COMPRESS_CHOICES, ImportArchiveParams
from shared.service import QueuedExport
from shared.tables.columns import TABLES
from shared.tables.params import FORMATS, TableImportParams, parse_table_import
from web.limits import takes_upload
from web.page_kit import person, service
from web.pages import blueprint
from web.uploads import adopted, display_name

ZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo")


def _day(value: str, field: str, *, end: bool = False) -> str | None:
    """A date field as the API's ISO time: the start of that day in UTC (of the next day
    for an end date, so the day given is included)."""
    value = value.strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            f"{field}: must be a date (YYYY-MM-DD)", details={"field": field}
        ) from None
    if end:
        day += timedelta(days=1)
    return f"{day.isoformat()}T00:00:00Z"


def archive_body(form: Any) -> dict[str, Any]:
    """`POST /exports` body of the archive form."""
    body: dict[str, Any] = {"type": "archive", "compress": form.get("compress", "samples")}
    scope = form.get("scope", "full")
    if scope == "incremental":
        body["incremental"] = True
    elif scope == "range":
        start, end = _day(form.get("from", ""), "from"), _day(form.get("to", ""), "to", end=True)
        if start is None and end is None:
            raise ValidationFailed(
                "from: give a first day, a last day or both", details={"field": "from"}
            )
        if start:
            body["from"] = start
        if end:
            body["to"] = end
    return body


def table_body(form: Any) -> dict[str, Any]:
    """`POST /exports` body of the table form: the checked columns in the order given."""
    table = form.get("table", "samples")
    body: dict[str, Any] = {
        "type": "table",
        "table": table,
        "format": form.get("format", "csv"),
        "timezone": form.get("timezone", "UTC").strip() or "UTC",
        "bom": form.get("bom") == "true",
    }
    chosen = form.getlist(f"columns_{table}")
    if chosen:

        def position(name: str) -> tuple[float, int]:
            try:
                return float(form.get(f"order_{table}_{name}", "")), chosen.index(name)
            except ValueError:
                return float("inf"), chosen.index(name)

        body["columns"] = sorted(chosen, key=position)
    start, end = _day(form.get("from", ""), "from"), _day(form.get("to", ""), "to", end=True)
    if start:
        body["from"] = start
    if end:
        body["to"] = end
    return body


def _export_form(error: FerryError | None = None, kind: str = "archive") -> tuple[str, int]:
    columns = {name: table.names for name, table in TABLES.items()}
    html = render_template(
        "export_new.html",
        compress_choices=COMPRESS_CHOICES,
        formats=FORMATS,
        zones=ZONES,
        columns=columns,
        form=request.form,
        kind=request.form.get("kind", kind),
        error=error,
        error_field=(error.details or {}).get("field") if error else None,
    )
    return html, 422 if error else 200


@blueprint.get("/exports/new")
def export_new() -> Any:
    """The new export form (archive or table)."""
    return _export_form(kind=request.args.get("kind", "archive"))


@blueprint.post("/exports/new")
def export_submit() -> Any:
    """Start the export: to its job's page, or (a small table export) the file itself."""
    caller = person()
    try:
        body = (
            table_body(request.form)
            if request.form.get("kind") == "table"
            else (archive_body(request.form))
        )
        answer = service().request_export(caller.account_id, body)
    except ValidationFailed as refused:
        return _export_form(refused)
    if isinstance(answer, QueuedExport):
        return redirect(url_for("pages.job_page", job_id=answer.job.id), code=303)
    return Response(
        stream_with_context(answer.chunks),
        mimetype=None,
        content_type=answer.content_type,
        headers={"Content-Disposition": answer.disposition},
    )


def _import_form(error: str | None = None, status: int = 200) -> tuple[str, int]:
    html = render_template(
        "import_new.html", error=error, tables=list(TABLES), zones=ZONES, form=request.form
    )
    return html, status


@blueprint.get("/imports/new")
def import_new() -> Any:
    """The new import form: an archive or a table file."""
    return _import_form()


def _import_params(form: Any) -> ImportArchiveParams | TableImportParams:
    """The import's parameters from the form (archive or table), checked as the API does."""
    confirm = form.get("confirm") == "true"
    skip_invalid = form.get("skip_invalid") == "true"
    if form.get("kind") == "table":
        return parse_table_import(
            table=form.get("table", ""),
            mode=form.get("mode", "upsert"),
            timezone=form.get("timezone", "").strip() or None,
            sheet=form.get("sheet", "").strip() or None,
            confirm=confirm,
            skip_invalid=skip_invalid,
        )
    on_conflict = form.get("on_conflict", "skip")
    if on_conflict not in ("skip", "newer"):
        raise ValidationFailed(
            "on_conflict: choose what to do with records that exist already",
            details={"field": "on_conflict"},
        )
    return ImportArchiveParams(confirm=confirm, on_conflict=on_conflict, skip_invalid=skip_invalid)


@blueprint.post("/imports/new")
@takes_upload
def import_submit() -> Any:
    """Queue the import of the uploaded archive or table and go to its job page (the
    preview)."""
    caller = person()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _import_form("Choose the file to upload.", 422)
    received = Path(upload.stream.name)  # streamed into storage by FerryRequest
    upload.stream.close()
    try:
        params = _import_params(request.form)
    except ValidationFailed as refused:
        return _import_form(refused.message, 422)
    job = service().submit_import(
        caller.account_id,
        received=received,
        filename=display_name(upload.filename),
        params=params,
    )
    adopted(str(received))
    return redirect(url_for("pages.job_page", job_id=job.id), code=303)
