"""Liveness and readiness, without auth."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from web import schemas
from web.contract import Reply, operation
from web.errors import RETRY_AFTER_SECONDS

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
@operation(
    "healthz",
    tags=("health",),
    auth=None,
    replies={200: Reply("the process answers", schemas.Liveness)},
)
def healthz() -> Any:
    """Liveness: the process answers (it touches neither the database nor Redis)."""
    return jsonify(status="ok")


@blueprint.get("/readyz")
@operation(
    "readyz",
    tags=("health",),
    auth=None,
    replies={
        200: Reply("the database and Redis answer", schemas.Readiness),
        503: Reply(
            "the database or Redis does not answer",
            schemas.Readiness,
            headers={"Retry-After": "seconds to wait before asking again"},
        ),
    },
)
def readyz() -> Any:
    """Readiness: the database and Redis answer."""
    resources = current_app.extensions["ferry"]
    checks: dict[str, str] = {}
    try:
        with resources.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        resources.live.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return jsonify(status="ready", checks=checks)
    response = jsonify(status="not ready", checks=checks)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response, 503
