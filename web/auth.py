"""Bearer-token authentication for the API."""

from __future__ import annotations

from typing import cast

from flask import current_app, g, request

from shared.store.accounts import Principal, authenticate
from web.errors import Forbidden, Unauthorized


def principal() -> Principal:
    """The caller of the current request (set by the view's declaration)."""
    return cast(Principal, g.principal)


def current_principal() -> Principal | None:
    """The caller, when the request was authenticated (for logs)."""
    return cast(Principal | None, g.get("principal"))


def authenticate_request(*, ops: bool) -> Principal:
    """The caller of a known, unrevoked token (401 otherwise); 403 when `ops` and it is not."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an 'Authorization: Bearer <token>' header is required")
    found = authenticate(current_app.extensions["ferry"].engine, token.strip())
    if found is None:
        raise Unauthorized("the token is not known (or was revoked)")
    g.principal = found  # known even when refused below, so the request log names it
    if ops and not found.is_ops:
        raise Forbidden("this endpoint needs an ops token")
    return found
