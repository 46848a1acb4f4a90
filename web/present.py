"""What the pages show of a job, in words: phases, percentages, ETAs, errors. Pure.

Everything here works on the API's Job object (`JobService.view`), so a page says what the
API says, only readably.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.jobs.states import PHASES, JobType
from shared.tables.columns import TABLES

PHASE_WORDS = {
    "prepare": "Preparing",
    "places": "Places",
    "items": "Timeline items",
    "samples": "Samples",
    "finalize": "Finishing",
    "unpack": "Unpacking",
    "validate": "Checking",
    "stage": "Staging",
    "apply": "Applying",
    "edges": "Linking items",
    "rows": "Rows",
    "read": "Reading",
    "check": "Checking",
    "restore": "Restoring",
}

TYPE_WORDS = {
    JobType.EXPORT_ARCHIVE.value: "Archive export",
    JobType.IMPORT_ARCHIVE.value: "Archive import",
    JobType.EXPORT_TABLE.value: "Table export",
    JobType.IMPORT_TABLE.value: "Table import",
    JobType.IMPORT_ROLLBACK.value: "Import undo",
}

STATUS_WORDS = {
    "queued": "Queued",
    "running": "Running",
    "awaiting_confirmation": "Waiting for you",
    "cancelling": "Cancelling",
    "cancelled": "Cancelled",
    "failed": "Failed",
    "succeeded": "Succeeded",
}

# What each error code means to the person who asked for the job, and what to do next.
ERROR_ADVICE = {
    "bad_request": "The request could not be understood. Check the form and send it again.",
    "validation_failed": (
        "Some records did not pass the checks, so nothing was imported. Fix them in the"
        " file, or import again and choose to skip invalid records."
    ),
    "bad_archive": (
        "The file is not an archive Ferry can read (or it is damaged). Export it again"
        " from the app, zip the export folder, and upload that."
    ),
    "bad_file": "The file could not be read as a table. Save it as CSV or XLSX and try again.",
    "unsupported_version": (
        "The archive was written by a version of the app that Ferry does not read. Export"
        " it again with a current version of the app."
    ),
    "conflict": "The job could not go on as asked; the message says why.",
    "rollback_expired": "The time to undo this import has passed; it can no longer be undone.",
    "storage_error": (
        "Ferry could not write or read its files. Nothing partial was kept; retry in a"
        " while, and tell an operator if it fails again."
    ),
    "database_error": (
        "The database did not answer in time. Nothing partial was kept; retry in a while."
    ),
    "interrupted": (
        "The worker running the job stopped too many times (a restart or a crash). Retry it;"
        " what was finished is kept."
    ),
    "internal": "Ferry hit a fault of its own. Retry; if it fails again, tell an operator.",
}


@dataclass(frozen=True, slots=True)
class PhaseLine:
    """One phase as the job page lists it."""

    name: str
    label: str
    state: str  # "done", "current" or "pending"
    done: int | None
    total: int | None
    percent: int | None


def percent(progress: dict[str, Any] | None, status: str) -> int:
    """The job's overall progress in whole percent (100 only once it succeeded)."""
    if status == "succeeded":
        return 100
    if not progress:
        return 0
    return min(99, int(float(progress.get("overall") or 0.0) * 100))


def phase_lines(job: dict[str, Any]) -> list[PhaseLine]:
    """Every phase of the job's type with what is known of it."""
    progress = job.get("progress") or {}
    names = [name for name, _ in PHASES.get(JobType(job["type"]), ())] if _known(job) else []
    current = progress.get("phase")
    if not names and current:
        names = [current]
    index = names.index(current) if current in names else -1
    finished = job["status"] == "succeeded"
    lines = []
    for position, name in enumerate(names):
        label = PHASE_WORDS.get(name, name.capitalize())
        if finished or position < index:
            lines.append(PhaseLine(name, label, "done", None, None, 100))
        elif position == index:
            done, total = progress.get("phase_done"), progress.get("phase_total")
            share = None
            if isinstance(done, int) and isinstance(total, int) and total > 0:
                share = min(100, int(done * 100 / total))
            lines.append(PhaseLine(name, label, "current", done, total, share))
        else:
            lines.append(PhaseLine(name, label, "pending", None, None, None))
    return lines


def _known(job: dict[str, Any]) -> bool:
    try:
        return JobType(job["type"]) in PHASES
    except ValueError:
        return False


def eta_words(progress: dict[str, Any] | None, status: str) -> str:
    """'about 2 min left', or '' when nothing sensible can be said."""
    if status not in ("running", "cancelling") or not progress:
        return ""
    seconds = progress.get("eta_seconds")
    if not isinstance(seconds, int | float) or seconds < 0:
        return ""
    return f"about {duration_words(seconds)} left"


def duration_words(seconds: float) -> str:
    """A duration as a person says it: '45 s', '3 min', '2 h 5 min', '3 d'."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{round(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d"


def age_words(then: datetime | None, now: datetime) -> str:
    """How long ago `then` was ('' when there is none)."""
    if then is None:
        return ""
    return duration_words(max(timedelta(0), now - then).total_seconds())


def error_advice(error: dict[str, Any] | None) -> str:
    """What to do about an error, in words."""
    if not error:
        return ""
    return ERROR_ADVICE.get(str(error.get("code")), ERROR_ADVICE["internal"])


def table_columns(table: str | None) -> tuple[str, ...]:
    """The Ferry columns of a table (for the mapping form); none for an unknown table."""
    found = TABLES.get(table or "")
    return found.names if found else ()


def count_words(value: int | None) -> str:
    """A count with thousands separators ('—' when unknown)."""
    return "—" if value is None else f"{value:,}"
