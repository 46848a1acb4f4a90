"""The job page's live updates: the API's event stream, as HTML the page swaps in.

Same follower (`shared.jobs.follow`), same per-account stream slots and lifetime as
`/api/v1/jobs/{id}/events`; only the session authenticates it and each event carries
the rendered fragment instead of JSON. Two fragments: `progress` (status, bars, phases;
on every event) and `actions` (buttons; only when the status changes, so a person whose
keyboard focus is on Cancel keeps it while the bars move).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, render_template, stream_with_context

from shared.jobs.follow import follow
from web.page_kit import person
from web.pages import blueprint
from web.pages_jobs import findings
from web.sse import RETRY_MS
from web.streams import TooManyStreams


def sse_event(name: str, html: str) -> str:
    """One SSE event whose data is `html` (one `data:` line per line of it)."""
    lines = html.strip().splitlines() or [""]
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


@blueprint.get("/jobs/<uuid:job_id>/live")
def job_live(job_id: str) -> Any:
    """Server-Sent Events of the job page: `progress` and `actions` fragments, `end` last."""
    resources = current_app.extensions["ferry"]
    caller = person()
    resources.service.get(job_id, account_id=caller.account_id)  # 404 before a slot
    try:
        slot = resources.streams.take(caller.account_id)
    except TooManyStreams as refused:
        response = Response("too many open event streams", status=429, mimetype="text/plain")
        response.headers["Retry-After"] = str(refused.retry_after)
        return response

    def events() -> Iterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        job: dict[str, Any] | None = None
        for update in follow(
            resources.service, resources.live, job_id, seconds=resources.settings.stream_seconds
        ):
            if update.kind in ("end", "reconnect"):
                slot.release()
            else:
                slot.refresh()
            if update.kind == "quiet":
                yield ": keep-alive\n\n"
                continue
            if update.kind == "reconnect":
                return
            if update.kind == "progress" and job is not None:
                job = {**job, "progress": update.progress}
                yield sse_event("progress", render_template("_progress.html", job=job))
                continue
            if update.job is None:
                continue
            job = update.job
            yield sse_event("progress", render_template("_progress.html", job=job))
            actions = render_template("_actions.html", job=job) + render_template(
                "_preview.html", job=job, findings=findings(job, {})
            )
            yield sse_event("actions", actions)
            if update.kind == "end":
                yield sse_event("end", "")

    response = Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(slot.release)
    return response
