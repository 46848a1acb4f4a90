"""Bearer-token authentication for the API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from shared.store.accounts import Principal, authenticate
from web.errors import Forbidden, Unauthorized

F = TypeVar("F", bound=Callable[..., Any])


def principal() -> Principal:
    """The caller of the current request (set by `require_token`)."""
    return cast(Principal, g.principal)


def _authenticate() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("an 'Authorization: Bearer <token>' header is required")
    found = authenticate(current_app.extensions["ferry"].engine, token.strip())
    if found is None:
        raise Unauthorized("the token is not known")
    return found


def require_token(view: F) -> F:
    """Let the view run only for a known token."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        g.principal = _authenticate()
        return view(*args, **kwargs)

    return cast(F, wrapped)


def require_ops(view: F) -> F:
    """Let the view run only for an ops token (403 for a user token)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        g.principal = _authenticate()
        if not g.principal.is_ops:
            raise Forbidden("this endpoint needs an ops token")
        return view(*args, **kwargs)

    return cast(F, wrapped)
