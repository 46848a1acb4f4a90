"""One translation of Ferry's errors into HTTP answers: `{"error": {code, message, details}}`.

A database or Redis that cannot be reached is a 503 with `Retry-After` on every endpoint
(SPEC 9), whichever layer noticed: the driver's own exceptions are translated here, so no
store or view has to remember to.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from shared.errors import FerryError
from shared.store.storage import UploadTooLarge

log = logging.getLogger(__name__)

# Seconds a client should wait before trying again after a 503.
RETRY_AFTER_SECONDS = 5

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
    "too_many_streams": 429,
    "rollback_expired": 409,
    "database_error": 503,
    "storage_error": 503,
}

# Driver errors that mean "the service is not reachable (now)", not "Ferry has a bug".
UNREACHABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,  # connection refused or lost, timeouts, server shutdown
    sqlalchemy.exc.InterfaceError,  # a connection that is already closed
    sqlalchemy.exc.TimeoutError,  # no pooled connection came free in time
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,  # the broker (Redis) refused a publish
)


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
    status = status or STATUS_BY_CODE.get(code, 500)
    response = jsonify(body)
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response, status


def unreachable_response(exc: BaseException) -> tuple[Response, int]:
    """The 503 for a database or Redis that did not answer."""
    in_redis = isinstance(exc, redis.exceptions.RedisError | kombu.exceptions.KombuError)
    what = "Redis" if in_redis else "the database"
    log.warning("%s is unreachable: %s: %s", what, type(exc).__name__, str(exc).strip()[:200])
    return error_response(
        "database_error", f"{what} is not reachable right now; try again shortly", status=503
    )


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

    for kind in UNREACHABLE:
        app.register_error_handler(kind, unreachable_response)

    @app.errorhandler(sqlalchemy.exc.DBAPIError)
    def database_failed(exc: sqlalchemy.exc.DBAPIError) -> tuple[Response, int]:
        if exc.connection_invalidated:
            return unreachable_response(exc)
        return unexpected(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.code or 500, "internal")
        response, status = error_response(code, exc.description or exc.name, status=exc.code)
        # Keep what the exception says besides its body, e.g. `Allow` on a 405.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response("internal", "internal error", status=500)
