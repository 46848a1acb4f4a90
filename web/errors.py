"""One translation of Ferry's errors into HTTP answers: `{"error": {code, message, details}}`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from shared.errors import FerryError
from shared.store.storage import UploadTooLarge

log = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "gone": 410,
    "payload_too_large": 413,
    "validation_failed": 422,
    "database_error": 503,
    "storage_error": 503,
}


class Unauthorized(FerryError):
    """Raised when a request has no token, or an unknown one."""

    code = "unauthorized"


class Forbidden(FerryError):
    """Raised when a token's role does not allow the request."""

    code = "forbidden"


def error_response(
    code: str, message: str, details: dict[str, Any] | None = None, status: int | None = None
) -> tuple[Response, int]:
    """The JSON error answer."""
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return jsonify(body), status or STATUS_BY_CODE.get(code, 500)


def init_app(app: Flask) -> None:
    """Install the error handlers."""

    @app.errorhandler(FerryError)
    def ferry_error(exc: FerryError) -> tuple[Response, int]:
        response, status = error_response(exc.code, exc.message, exc.details)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="ferry"'
        return response, status

    @app.errorhandler(UploadTooLarge)
    def too_large(exc: UploadTooLarge) -> tuple[Response, int]:
        return error_response("payload_too_large", str(exc), {"field": "file"})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.code or 500, "internal")
        return error_response(code, exc.description or exc.name, status=exc.code)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response("internal", "internal error", status=500)
