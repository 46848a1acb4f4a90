"""Request body limits (SPEC 9): JSON up to 1 MiB, uploads up to FERRY_MAX_UPLOAD_BYTES.

The limit comes from the route's declaration and the body's content type: only a
multipart body sent to a route that takes an upload may be large. A declared
`Content-Length` over the limit is refused before a byte is read; a body without one
(chunked) is cut off with the same 413 as soon as it passes the limit while being read.
"""

from __future__ import annotations

from flask import Flask, current_app, request

from shared.errors import FerryError
from web.contract import MAX_JSON_BYTES, declared


class PayloadTooLarge(FerryError):
    """Raised when a request body is larger than its route accepts (HTTP 413)."""

    code = "payload_too_large"


def body_limit() -> int:
    """The largest body the current request may carry."""
    view = current_app.view_functions.get(request.endpoint or "")
    found = declared(view)
    if (
        found is not None
        and found.body_kind == "multipart"
        and request.mimetype.startswith("multipart/")
    ):
        return found.max_body_bytes
    return MAX_JSON_BYTES


def init_app(app: Flask) -> None:
    """Check every request's body size before its view runs."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_JSON_BYTES

    @app.before_request
    def limit_body() -> None:
        limit = body_limit()
        # Werkzeug enforces this while the body is read, chunked bodies included.
        request.max_content_length = limit
        length = request.content_length
        if length is not None and length > limit:
            field = "file" if limit > MAX_JSON_BYTES else "body"
            raise PayloadTooLarge(
                f"the request body is {length} bytes; this endpoint takes at most {limit}",
                details={"field": field, "limit": limit},
            )
