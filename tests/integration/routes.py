"""Every route of a real app, as (method, URL) pairs a test can call."""

from __future__ import annotations

import re
import uuid

from flask import Flask

_ARGUMENT = re.compile(r"<(?:[a-z]+:)?(\w+)>")


def every_route(app: Flask, *, job_id: str | None = None) -> list[tuple[str, str]]:
    """(method, URL) of each API rule of `app`, path ids filled with `job_id` (or a new
    UUID). The HTML pages answer as pages (sign-in first, CSRF): tests/integration/
    test_pages.py covers them."""
    filled = job_id or str(uuid.uuid4())
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("pages."):
            continue
        url = _ARGUMENT.sub(filled, rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, url))
    return sorted(found)


def id_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, rule) of each rule that takes an id in its path."""
    return [
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.arguments
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]
