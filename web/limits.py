"""Request body limits (SPEC 9): JSON up to 1 MiB, uploads up to FERRY_MAX_UPLOAD_BYTES.

The limit comes from the route's declaration and the body's content type: only a
multipart body sent to a route that takes an upload may be large. A declared
`Content-Length` over the limit is refused before a byte is read; a body without one
(chunked) is read at most one byte past the limit, and then refused with the same 413.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, request

from shared.errors import FerryError

# Largest JSON body any endpoint reads (SPEC 9); only multipart uploads may be larger.
MAX_JSON_BYTES = 1024 * 1024


class PayloadTooLarge(FerryError):
    """Raised when a request body is larger than its route accepts (HTTP 413)."""

    code = "payload_too_large"


_UPLOAD_ATTRIBUTE = "ferry_takes_upload"
F = TypeVar("F", bound=Callable[..., Any])


def takes_upload(view: F) -> F:
    """Mark a page's view as taking a multipart upload (the API's views say it in their
    declaration)."""
    setattr(view, _UPLOAD_ATTRIBUTE, True)
    return view


def body_limit() -> int:
    """The largest body the current request may carry."""
    from web.contract import declared

    view = current_app.view_functions.get(request.endpoint or "")
    found = declared(view)
    uploads = getattr(view, _UPLOAD_ATTRIBUTE, False) or (
        found is not None and found.body_kind == "multipart"
    )
    if uploads and request.mimetype.startswith("multipart/"):
        # Uploads have their own limit; the multipart framing around the file is small.
        return int(current_app.extensions["ferry"].settings.max_upload_bytes) + MAX_JSON_BYTES
    return MAX_JSON_BYTES


def _too_large(size: str, limit: int) -> PayloadTooLarge:
    field = "file" if limit > MAX_JSON_BYTES else "body"
    return PayloadTooLarge(
        f"the request body is {size} bytes; this endpoint takes at most {limit}",
        details={"field": field, "limit": limit},
    )


def read_body() -> bytes:
    """The whole (JSON) body of the current request, refused past its limit."""
    data = request.get_data(cache=False)
    limit = body_limit()
    if len(data) > limit:
        raise _too_large("more than", limit)
    return data


def init_app(app: Flask) -> None:
    """Check every request's body size before its view runs."""

    @app.before_request
    def limit_body() -> None:
        limit = body_limit()
        length = request.content_length
        if length is not None and length > limit:
            raise _too_large(str(length), limit)
        # Werkzeug stops reading a chunked body at this many bytes. It stops silently (the
        # body looks shorter than it is), so it may read one byte more than the limit, and
        # `read_body` and the upload size check refuse a body that long.
        request.max_content_length = limit + 1
