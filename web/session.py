"""The pages' session: an API token kept in Flask's signed cookie, and a CSRF token.

Flask's session is a cookie signed with SECRET_KEY (itsdangerous): the browser cannot
change it, and the app sets it `HttpOnly` and `SameSite=Lax`. The token in it is checked
on every request like a bearer token (`authenticate`), so a revoked token signs the page
out at once. CSRF: a random token per session, compared in constant time on every POST
(a form field, or the `X-CSRF-Token` header for script-sent uploads). Flask-WTF would do
the same with a dependency and a form-class layer the pages do not otherwise need.
"""

from __future__ import annotations

import hmac
import secrets
from typing import cast

from flask import Flask, current_app, g, request, session

from shared.errors import FerryError
from shared.store.accounts import Principal, authenticate

TOKEN_KEY = "token"
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class CsrfRefused(FerryError):
    """Raised when a form arrives without this session's CSRF token."""

    code = "bad_request"


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def check_csrf() -> None:
    """Refuse a state-changing request whose CSRF token is not this session's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_KEY)
    # The header first: an upload sent by script is checked before its body is read.
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfRefused(
            "this form is out of date or was not sent by Ferry's page; reload the page and"
            " send it again"
        )


def signed_in() -> Principal | None:
    """Who the session belongs to (None when not signed in, or the token was revoked)."""
    if "page_principal" in g:
        return cast(Principal | None, g.page_principal)
    token = session.get(TOKEN_KEY)
    found = None
    if isinstance(token, str) and token:
        found = authenticate(current_app.extensions["ferry"].engine, token)
        if found is None:
            session.pop(TOKEN_KEY, None)
    g.page_principal = found
    g.principal = found  # the request log names the caller, as for the API
    return found


def sign_in(token: str) -> Principal | None:
    """Start a session for a known token (a fresh CSRF token too); None when unknown."""
    token = token.strip()
    found = authenticate(current_app.extensions["ferry"].engine, token) if token else None
    if found is None:
        return None
    session.clear()  # nothing of a session from before the sign-in is kept (fixation)
    session[TOKEN_KEY] = token
    session[CSRF_KEY] = secrets.token_urlsafe(32)
    g.page_principal = found
    return found


def sign_out() -> None:
    """Forget the session (the cookie is cleared in the answer)."""
    session.clear()
    g.page_principal = None


def init_app(app: Flask) -> None:
    """Cookie settings of the session."""
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="ferry_session",
    )
