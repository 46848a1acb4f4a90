"""How the CLI shows jobs: tables, details and a live progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.jobs.store import Job, JobEvent
from shared.timefmt import format_iso

BAR_WIDTH = 30


def short_time(value: Any) -> str:
    """A compact UTC time for tables."""
    if value is None:
        return "-"
    return format_iso(value).replace("T", " ")[:19]


def progress_line(progress: dict[str, Any] | None, status: str) -> str:
    """One line: bar, percent, phase, rows and ETA."""
    if not progress:
        return f"[{' ' * BAR_WIDTH}]   0.0%  {status}"
    overall = float(progress.get("overall") or 0.0)
    filled = round(overall * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    parts = [
        f"[{bar}] {overall * 100:5.1f}%",
        f"{progress['phase']} {progress['phase_index'] + 1}/{progress['phase_count']}",
    ]
    if progress.get("rows_total"):
        parts.append(f"{progress['rows_done']:,}/{progress['rows_total']:,} rows")
    eta = progress.get("eta_seconds")
    if eta is not None and status == "running":
        parts.append(f"ETA {_duration(float(eta))}")
    parts.append(status)
    return "  ".join(parts)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def jobs_table(jobs: list[Job], accounts: dict[str, str]) -> str:
    """A fixed-width table of jobs."""
    headers = ("ID", "TYPE", "STATUS", "ATT", "ACCOUNT", "CREATED", "PROGRESS", "ERROR")
    rows = []
    for job in jobs:
        overall = (job.progress or {}).get("overall")
        rows.append(
            (
                job.id,
                job.type,
                job.status,
                str(job.attempt),
                accounts.get(job.account_id, job.account_id[:8]),
                short_time(job.created_at),
                "-" if overall is None else f"{float(overall) * 100:.0f}%",
                (job.error or {}).get("code", ""),
            )
        )
    return table(headers, rows)


def table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A fixed-width text table, one column per header."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def job_details(view: dict[str, Any], history: list[JobEvent], account: str) -> str:
    """Everything about one job, with its error and attempt history."""
    lines = [
        f"id:        {view['id']}",
        f"type:      {view['type']}",
        f"account:   {account}",
        f"status:    {view['status']}",
        f"attempt:   {view['attempt']}",
        f"created:   {view['created_at']}",
        f"started:   {view['started_at'] or '-'}",
        f"finished:  {view['finished_at'] or '-'}",
        f"params:    {view['params']}",
        f"progress:  {progress_line(view['progress'], view['status'])}",
    ]
    error = view.get("error")
    if error:
        lines.append(
            f"error:     {error['code']}: {error['message']}"
            f" (retryable: {str(error.get('retryable', False)).lower()})"
        )
    result = view.get("result")
    if result:
        lines.append("result:")
        lines.extend(f"  {key}: {value}" for key, value in result.items())
    lines.append("history:")
    for event in history:
        detail = ""
        if event.detail:
            detail = "  " + ", ".join(f"{k}={v}" for k, v in event.detail.items() if k != "kept")
        lines.append(f"  {short_time(event.at)}  attempt {event.attempt}  {event.kind}{detail}")
    return "\n".join(lines)


def table_preview(preview: dict[str, Any]) -> str:
    """A table import's preview (SPEC 13): what was read, the counts, the first errors."""
    counts = preview.get("counts") or {}
    mapping = preview.get("mapping") or {}
    lines = [
        f"file: {preview.get('format')}, encoding {preview.get('encoding') or '-'},"
        f" delimiter {preview.get('delimiter')!r}",
        "mapping: "
        + (
            ", ".join(f"{k} -> {v or '(ignored)'}" for k, v in mapping.items() if k != v)
            or "by name"
        )
        + f" ({sum(1 for v in mapping.values() if v)} columns read)",
    ]
    if preview.get("unmapped"):
        lines.append("unmapped: " + ", ".join(preview["unmapped"]))
    lines.append(
        "rows {rows}: valid {valid}, invalid {invalid}; would create {would_create},"
        " update {would_update}, unchanged {unchanged}".format(
            **{
                k: counts.get(k, 0)
                for k in ("rows", "valid", "invalid", "would_create", "would_update", "unchanged")
            }
        )
    )
    errors = preview.get("errors") or []
    lines.append(
        f"{preview.get('error_total', 0)} error(s), {preview.get('warning_total', 0)} warning(s)"
    )
    for error in errors[:10]:
        where = f"row {error['row']}" + (f", {error['column']}" if error.get("column") else "")
        value = "" if error.get("value") is None else f" ({error['value']!r})"
        lines.append(f"  error: {where}: {error['reason']}{value}")
    for warning in (preview.get("warnings") or [])[:5]:
        lines.append(
            f"  warning: row {warning['row']}, {warning.get('column')}: {warning['reason']}"
        )
    return "\n".join(lines)
