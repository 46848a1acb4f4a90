"""What every HTML page shares: who is signed in, CSRF on every POST, errors as pages.

Tenancy is the API's: a person's pages scope every read by their account (another
account's job is a 404 page), and the operators' pages need an ops token (a 403 page).
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for

from shared.errors import FerryError
from shared.service import JobService
from shared.store.accounts import Principal
from web import present
from web.errors import RETRY_AFTER_SECONDS, STATUS_BY_CODE, UNREACHABLE, unreachable_response
from web.session import csrf_token, signed_in

TITLES = {
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible now",
    410: "Gone",
    413: "File too large",
    422: "Please check the form",
    503: "Try again shortly",
}


class SignInNeeded(FerryError):
    """Raised when a page needs a session and there is none."""

    code = "unauthorized"


class OpsOnly(FerryError):
    """Raised when an operators' page is asked for with a user's token."""

    code = "forbidden"


def service() -> JobService:
    """The same JobService the API uses."""
    return cast(JobService, current_app.extensions["ferry"].service)


def person() -> Principal:
    """The signed-in caller (SignInNeeded otherwise)."""
    found = signed_in()
    if found is None:
        raise SignInNeeded("sign in with your token to see this page")
    return found


def operator() -> Principal:
    """The signed-in caller with an ops token (OpsOnly for a user token)."""
    found = person()
    if not found.is_ops:
        raise OpsOnly("this page is for operators: sign in with an ops token")
    return found


def safe_next(target: str | None) -> str:
    """A path on this site to go to after signing in (never another host)."""
    if not target:
        return url_for("pages.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.home")
    return target


def error_page(exc: FerryError) -> Response | tuple[str, int]:
    """A FerryError raised by a page, as a page (sign-in needed: to the sign-in form)."""
    if isinstance(exc, SignInNeeded):
        return redirect(url_for("pages.home", next=request.full_path.rstrip("?")))  # type: ignore[return-value]
    status = STATUS_BY_CODE.get(exc.code, 500)
    title = TITLES.get(status, "Something went wrong")
    html = render_template("error.html", title=title, message=exc.message, status=status)
    return html, status


def unreachable_page(exc: Exception) -> Response:
    """The database or Redis did not answer: a page saying so, 503 with Retry-After."""
    unreachable_response(exc)  # logs it the same way as for the API
    g.page_principal = None  # who it is cannot be read now: the page shows no account
    html = render_template(
        "error.html",
        title=TITLES[503],
        message="Ferry cannot reach its database or Redis right now. Try again in a moment.",
        status=503,
    )
    return Response(html, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def template_globals() -> dict[str, Any]:
    """What every template may use."""
    return {
        "csrf_token": csrf_token,
        "viewer": signed_in(),
        "words": present,
    }


def install(blueprint: Blueprint) -> None:
    """Give a pages blueprint the session check, CSRF and error pages."""
    from web.session import check_csrf

    blueprint.before_request(check_csrf)
    blueprint.register_error_handler(FerryError, error_page)
    for kind in UNREACHABLE:
        blueprint.register_error_handler(kind, unreachable_page)
    blueprint.app_context_processor(template_globals)

    @blueprint.after_request
    def no_store(response: Response) -> Response:
        # Pages show one account's data: never kept by shared caches or the back button
        # after signing out.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
