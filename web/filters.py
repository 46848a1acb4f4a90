"""The job store's filter from what an operator asked (the ops API and the ops pages)."""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app

from shared.errors import NotFound, ValidationFailed
from shared.jobs.store import JobFilter
from shared.store.accounts import get_account
from shared.timefmt import parse_iso


def ops_filter(
    *,
    account: str | None = None,
    status: Sequence[str] | None = None,
    type: str | None = None,
    error_code: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> JobFilter:
    """A JobFilter; an `account` (name or id) that names no account is a 422 naming it."""
    account_id = None
    if account:
        try:
            account_id = get_account(current_app.extensions["ferry"].engine, account).id
        except NotFound:
            raise ValidationFailed(
                "account: no such account", details={"field": "account"}
            ) from None
    return JobFilter(
        account_id=account_id,
        status=list(status) if status else None,
        type=type or None,
        error_code=error_code or None,
        since=parse_iso(since) if since else None,
        until=parse_iso(until) if until else None,
    )
