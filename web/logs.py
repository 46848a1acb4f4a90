"""One log line per request, and a handler so the web process's INFO lines are seen.

Each line is `key=value` pairs an operator can grep:

    request id=4f1c… method=POST path=/api/v1/exports status=202 ms=12.4 account=ann job=…

The request id is the client's `X-Request-ID` when it sends a sane one, else a new one;
either way it comes back in the response's `X-Request-ID` header, so a client's report and
the server's log meet.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

import orjson
from flask import Flask, Response, g, request

from web.auth import current_principal

log = logging.getLogger("web.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def note_job(job_id: str) -> None:
    """Name the job this request is about in its log line (a job just created, say)."""
    g.log_job_id = job_id


def request_id() -> str:
    """The current request's id."""
    return str(g.get("request_id", "-"))


def _quoted(value: str) -> str:
    # Values an operator greps for stay bare; anything else is a JSON string, so a path
    # holding spaces, quotes or newlines can never forge a second log line.
    if value and re.fullmatch(r"[!#-<>-~]+", value):
        return value
    return orjson.dumps(value).decode()


def ensure_handler() -> None:
    """Give Ferry's loggers a stderr handler at INFO unless logging is configured already."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    for name in ("web", "shared"):
        logging.getLogger(name).setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    """Stamp every request with an id and log it when it is answered."""
    ensure_handler()

    @app.before_request
    def start() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id()
        started = g.get("request_started", time.perf_counter())
        caller = current_principal()
        args = request.view_args or {}
        job = g.get("log_job_id") or args.get("job_id")
        fields = {
            "id": request_id(),
            "method": request.method,
            "path": request.path,
            "status": str(response.status_code),
            "ms": f"{(time.perf_counter() - started) * 1000:.1f}",
            "account": caller.account_name if caller else "-",
            "job": str(job) if job else "-",
        }
        log.info("request %s", " ".join(f"{k}={_quoted(v)}" for k, v in fields.items()))
        return response
